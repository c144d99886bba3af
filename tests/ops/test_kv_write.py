"""kv_write (torch) against the plain-loop reference: contiguous and paged caches, rows at any offset (across
block boundaries, not block aligned), finished rows skipped; refused arguments name what is wrong."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tt_specdec.ops.kv_write import kv_write
from tt_specdec.ops.kv_write import reference


def make_case(B, T, Hkv, D, S, seed, block_size=None, dtype=torch.float32):
    """New rows, caches, positions (some -1) and, when paged, a shuffled page table covering every write."""
    g = torch.Generator().manual_seed(seed)
    k_new, v_new = (torch.randn(B, T, Hkv, D, generator=g).to(dtype) for _ in range(2))
    pos = torch.randint(0, S - T + 1, (B,), generator=g)
    pos[torch.rand(B, generator=g) < 0.2] = -1
    if block_size is None:
        kc, vc = (torch.randn(B, Hkv, S, D, generator=g).to(dtype) for _ in range(2))
        return k_new, v_new, kc, vc, pos, None
    max_blocks = S // block_size
    blocks = B * max_blocks + 3
    kc, vc = (torch.randn(blocks, Hkv, block_size, D, generator=g).to(dtype) for _ in range(2))
    table = torch.randperm(blocks, generator=g)[:B * max_blocks].view(B, max_blocks)
    return k_new, v_new, kc, vc, pos, table


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 4), T=st.integers(1, 9), Hkv=st.integers(1, 3), D=st.sampled_from([1, 4, 32]),
       paged=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_kv_write_matches_the_reference(B, T, Hkv, D, paged, seed):
    block = 8 if paged else None
    k_new, v_new, kc, vc, pos, table = make_case(B, T, Hkv, D, 32, seed, block)
    want_k, want_v = reference.kv_write(k_new, v_new, kc, vc, pos, page_table=table)
    kv_write(k_new, v_new, kc, vc, pos, page_table=table)
    assert torch.equal(kc, want_k) and torch.equal(vc, want_v)


def test_rows_across_a_block_boundary_land_in_two_blocks():
    kc, vc = torch.zeros(4, 1, 4, 1), torch.zeros(4, 1, 4, 1)
    new = torch.arange(1.0, 4.0).view(1, 3, 1, 1)  # tokens 1, 2, 3 at slots 3, 4, 5
    kv_write(new, new, kc, vc, torch.tensor([3]), page_table=torch.tensor([[2, 0]]))
    assert kc[2, 0, 3, 0] == 1 and kc[0, 0, 0, 0] == 2 and kc[0, 0, 1, 0] == 3
    assert int((kc != 0).sum()) == 3


def test_a_finished_row_is_left_as_it_was():
    kc, vc = torch.zeros(2, 1, 8, 2), torch.zeros(2, 1, 8, 2)
    kv_write(torch.ones(2, 2, 1, 2), torch.ones(2, 2, 1, 2), kc, vc, torch.tensor([-1, 4]))
    assert not kc[0].any() and kc[1, 0, 4:6].eq(1).all() and int(kc[1].count_nonzero()) == 4


@pytest.mark.parametrize("pos, table, match", [
    (torch.tensor([7]), None, "pos: got"),  # 7 + 2 > 8
    (torch.tensor([2]), torch.tensor([[0, -1]]), "page_table: row 0"),  # slots 2, 3 in block 0 ... fine; see below
])
def test_bad_arguments_are_refused_naming_them(pos, table, match):
    if table is not None:
        pos = torch.tensor([3])  # slots 3, 4: block 1 is unallocated
        kc = vc = torch.zeros(2, 1, 4, 2)
    else:
        kc = vc = torch.zeros(1, 1, 8, 2)
    with pytest.raises(ValueError, match=match):
        kv_write(torch.ones(1, 2, 1, 2), torch.ones(1, 2, 1, 2), kc, vc.clone(), pos, page_table=table)
