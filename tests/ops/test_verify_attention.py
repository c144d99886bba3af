"""verify_attention against the plain-loop reference: contiguous and paged caches, GQA,
staircase mask, positions at and around tile (32) and page boundaries."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tt_specdec.ops import verify_attention
from tt_specdec.ops.verify_attention import reference, tree_mask_from_parents
from tt_specdec.ops.verify_attention.reference import random_parents

# fp32: same math up to summation order; bf16: scores, probabilities and output are rounded
# to 8 mantissa bits by the op (2^-8 relative each), against a float64 reference
TOLERANCE = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}
TILE = 32


def boundary_positions(block_size: int, T: int) -> list[int]:
    """Query row 0 or the last row (pos+T-1) landing at and around tile and page boundaries."""
    edges = {0, 1, TILE - 1, TILE, TILE + 1, 2 * TILE - 1, 2 * TILE, 2 * TILE + 1,
             block_size - 1, block_size, block_size + 1, 2 * block_size - 1, 2 * block_size, 2 * block_size + 1}
    return sorted({e for e in edges} | {e - T + 1 for e in edges if e - T + 1 >= 0})


@st.composite
def attention_cases(draw):
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, 9))
    Hkv = draw(st.sampled_from([1, 2]))
    group = draw(st.integers(1, 8))  # GQA ratio Hq / Hkv
    D = draw(st.sampled_from([8, 16, 32]))
    block_size = draw(st.sampled_from([16, 32]))
    paged = draw(st.booleans())
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16]))
    pos = draw(st.lists(st.sampled_from(boundary_positions(block_size, T)) | st.integers(0, 70),
                        min_size=B, max_size=B))
    scale = draw(st.sampled_from([None, 0.125]))
    seed = draw(st.integers(0, 2**31 - 1))
    return B, T, Hkv, group, D, block_size, paged, dtype, pos, scale, seed


def make_case(B, T, Hkv, group, D, block_size, paged, dtype, pos, seed):
    """Random q and caches; slots past each row's last key hold large garbage that the mask must hide."""
    g = torch.Generator().manual_seed(seed)
    pos_t = torch.tensor(pos)
    length = max(pos) + T
    S = length + int(torch.randint(0, 5, (1,), generator=g))
    q = torch.randn(B, T, Hkv * group, D, generator=g)
    k = torch.randn(B, Hkv, S, D, generator=g)
    v = torch.randn(B, Hkv, S, D, generator=g)
    stale = torch.arange(S).view(1, 1, S, 1) >= (pos_t + T).view(B, 1, 1, 1)
    k = torch.where(stale, 50.0 * k, k)
    v = torch.where(stale, 50.0 * v, v)
    if not paged:
        return q.to(dtype), k.to(dtype), v.to(dtype), pos_t, None
    max_blocks = -(-S // block_size) + 1
    spare = 3
    # shuffled block ids; blocks a row never reaches stay unallocated (-1)
    ids = torch.randperm(B * max_blocks + spare, generator=g)[:B * max_blocks].view(B, max_blocks)
    needed = -(-(pos_t + T) // block_size)
    page_table = torch.where(torch.arange(max_blocks).view(1, -1) < needed.view(B, 1), ids, -1)
    k_paged = 50.0 * torch.randn(B * max_blocks + spare, Hkv, block_size, D, generator=g)
    v_paged = 50.0 * torch.randn(B * max_blocks + spare, Hkv, block_size, D, generator=g)
    for b in range(B):
        for j in range(pos[b] + T):
            block, slot = int(page_table[b, j // block_size]), j % block_size
            k_paged[block, :, slot] = k[b, :, j]
            v_paged[block, :, slot] = v[b, :, j]
    return q.to(dtype), k_paged.to(dtype), v_paged.to(dtype), pos_t, page_table


@settings(deadline=None, max_examples=40)
@given(attention_cases())
def test_matches_reference(case):
    B, T, Hkv, group, D, block_size, paged, dtype, pos, scale, seed = case
    q, k, v, pos_t, page_table = make_case(B, T, Hkv, group, D, block_size, paged, dtype, pos, seed)
    out = verify_attention(q, k, v, pos_t, page_table=page_table, scale=scale)
    expected = reference.verify_attention(q, k, v, pos_t, page_table=page_table, scale=scale)
    assert out.shape == (B, T, Hkv * group, D) and out.dtype == dtype
    torch.testing.assert_close(out.float(), expected.float(), **TOLERANCE[dtype])


def test_reference_paged_equals_contiguous():
    # the reference's two cache layouts agree (in float64: the same sums in the same order)
    q, k, v, pos, page_table = make_case(3, 5, 2, 4, 16, 16, True, torch.float64, [15, 32, 47], seed=1)
    qc, kc, vc, _, _ = make_case(3, 5, 2, 4, 16, 16, False, torch.float64, [15, 32, 47], seed=1)
    torch.testing.assert_close(reference.verify_attention(q, k, v, pos, page_table=page_table),
                               reference.verify_attention(qc, kc, vc, pos), atol=0, rtol=0)


@settings(deadline=None, max_examples=20)
@given(B=st.integers(1, 4), Hkv=st.sampled_from([1, 2, 4]), group=st.sampled_from([1, 2, 4, 8]),
       pos=st.sampled_from([0, 1, 31, 32, 33, 63, 64]), seed=st.integers(0, 2**31 - 1))
def test_single_row_is_ordinary_decode(B, Hkv, group, pos, seed):
    # T = 1: softmax(q k^T / sqrt(D)) v over keys 0..pos, i.e. plain decode attention
    g = torch.Generator().manual_seed(seed)
    D, S = 16, pos + 1 + 7
    q = torch.randn(B, 1, Hkv * group, D, generator=g)
    k = torch.randn(B, Hkv, S, D, generator=g)
    v = torch.randn(B, Hkv, S, D, generator=g)
    positions = torch.randint(0, pos + 1, (B,), generator=g)
    out = verify_attention(q, k, v, positions)
    for b in range(B):
        n = int(positions[b]) + 1
        keys = k[b, :, :n].repeat_interleave(group, 0)  # [Hq, n, D]
        values = v[b, :, :n].repeat_interleave(group, 0)
        weights = torch.softmax(q[b, 0].unsqueeze(1) @ keys.transpose(-1, -2) / math.sqrt(D), -1)  # [Hq, 1, n]
        torch.testing.assert_close(out[b, 0], (weights @ values).squeeze(1), atol=1e-5, rtol=1e-5)


def test_rows_see_the_staircase():
    # row t must not see key pos+t+1: changing it changes rows > t only
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(1, 4, 2, 8, generator=g), torch.randn(1, 2, 40, 8, generator=g), torch.randn(1, 2, 40, 8, generator=g)
    pos = torch.tensor([30])
    before = verify_attention(q, k, v, pos)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 32] += 1.0
    v2[:, :, 32] += 1.0
    after = verify_attention(q, k2, v2, pos)
    assert torch.equal(before[:, :2], after[:, :2])
    assert not torch.allclose(before[:, 2:], after[:, 2:])


def test_empty_batch():
    out = verify_attention(torch.zeros(0, 3, 4, 8), torch.zeros(0, 2, 16, 8), torch.zeros(0, 2, 16, 8),
                           torch.zeros(0, dtype=torch.int64))
    assert out.shape == (0, 3, 4, 8)


def test_bad_inputs_name_the_argument():
    q, k, v = torch.zeros(2, 3, 4, 8), torch.zeros(2, 2, 16, 8), torch.zeros(2, 2, 16, 8)
    pos = torch.tensor([0, 5])
    with pytest.raises(ValueError, match="pos"):
        verify_attention(q, k, v, torch.tensor([0, 14]))  # 14 + 3 > 16
    with pytest.raises(ValueError, match="pos"):
        verify_attention(q, k, v, torch.tensor([0]))
    with pytest.raises(ValueError, match="q"):
        verify_attention(torch.zeros(2, 3, 3, 8), k, v, pos)  # 3 heads over 2 KV heads
    with pytest.raises(ValueError, match="v_cache"):
        verify_attention(q, k, torch.zeros(2, 2, 15, 8), pos)
    with pytest.raises(ValueError, match="k_cache"):
        verify_attention(q, torch.zeros(2, 2, 16, 4), v, pos)
    with pytest.raises(ValueError, match="page_table"):
        verify_attention(q, k, v, pos, page_table=torch.zeros(3, 2, dtype=torch.int64))


# ---- token trees: row t sees the cache and its ancestors ------------------------------------------

@settings(deadline=None, max_examples=40)
@given(attention_cases())
def test_tree_mask_matches_reference(case):
    B, T, Hkv, group, D, block_size, paged, dtype, pos, scale, seed = case
    q, k, v, pos_t, table = make_case(B, T, Hkv, group, D, block_size, paged, dtype, pos, seed)
    tree = tree_mask_from_parents(random_parents(B, T, torch.Generator().manual_seed(seed)))
    ours = verify_attention(q, k, v, pos_t, page_table=table, scale=scale, tree_mask=tree)
    ref = reference.verify_attention(q, k, v, pos_t, page_table=table, scale=scale, tree_mask=tree)
    torch.testing.assert_close(ours.float(), ref.float(), **TOLERANCE[dtype])


def test_chain_tree_mask_is_the_staircase_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    B, T = 2, 7
    q, k, v = torch.randn(B, T, 4, 16, generator=g), torch.randn(B, 2, 40, 16, generator=g), torch.randn(B, 2, 40, 16, generator=g)
    pos = torch.tensor([5, 30])
    chain = tree_mask_from_parents(torch.arange(-1, T - 1).repeat(B, 1))
    assert torch.equal(chain, torch.ones(T, T, dtype=torch.bool).tril().repeat(B, 1, 1))
    assert torch.equal(verify_attention(q, k, v, pos, tree_mask=chain), verify_attention(q, k, v, pos))


def test_a_tree_row_sees_only_its_ancestors():
    """Siblings and cousins do not move a row: garbage in their KV slots leaves it unchanged, and it
    equals the chain of its root-to-node path laid out contiguously."""
    g = torch.Generator().manual_seed(4)
    parents = torch.tensor([[-1, 0, 0, 1, 2, 3]])  # root; 1, 2 siblings; 3 under 1; 4 under 2; 5 under 3
    tree = tree_mask_from_parents(parents)
    T, pos = 6, torch.tensor([9])
    q, k, v = torch.randn(1, T, 2, 8, generator=g), torch.randn(1, 1, 20, 8, generator=g), torch.randn(1, 1, 20, 8, generator=g)
    out = verify_attention(q, k, v, pos, tree_mask=tree)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 9 + 2], v2[:, :, 9 + 4] = 100.0, -100.0  # nodes 2 and 4: not on node 5's path 0-1-3-5
    assert torch.equal(verify_attention(q, k2, v2, pos, tree_mask=tree)[:, [0, 1, 3, 5]], out[:, [0, 1, 3, 5]])
    path = [0, 1, 3, 5]
    kc, vc = k.clone(), v.clone()
    kc[:, :, 9:13], vc[:, :, 9:13] = k[:, :, [9 + p for p in path]], v[:, :, [9 + p for p in path]]
    chain = verify_attention(q[:, path], kc, vc, pos)
    torch.testing.assert_close(chain, out[:, path], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("mask, message", [
    (torch.ones(1, 3, 3, dtype=torch.bool).tril()[:, :2], r"tree_mask: got shape \[1, 2, 3\], expected \[1, 3, 3\]"),
    (torch.ones(1, 3, 3).tril(), "tree_mask: got dtype torch.float32, expected torch.bool"),
    (torch.ones(1, 3, 3, dtype=torch.bool).tril(-1), r"tree_mask: got a row that does not see itself"),
    (torch.ones(1, 3, 3, dtype=torch.bool), r"tree_mask: got row 0 of sequence 0 seeing row 1 > 0"),
])
def test_bad_tree_mask_is_named(mask, message):
    q, k = torch.zeros(1, 3, 2, 8), torch.zeros(1, 1, 8, 8)
    with pytest.raises((ValueError, TypeError), match=message):
        verify_attention(q, k, k, torch.tensor([2]), tree_mask=mask)
    with pytest.raises((ValueError, TypeError), match=message):  # the kernels' path checks it the same
        verify_attention(q, k, k, torch.tensor([2]), tree_mask=mask, backend="emu")
