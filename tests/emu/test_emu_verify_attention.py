"""verify_attention kernels (tt_specdec/ops/verify_attention/kernels/) on the emulator against
the plain-loop reference: T 1..8 query rows, GQA ratios 1..8 packed into one 32-row tile, D 32 to
128, positions across tile and page boundaries, contiguous and paged caches, bf16 and fp32, the
chunks of one (b, h) split over 1..5 cores and merged (idle splits on short contexts included);
token trees (tree_mask, up to 32 rows, forests included) the same ways, and a chain's tree mask
giving the chain program's bits.

Tolerance, what a card meets: the matrix unit reads fp32 as TF32 (10 mantissa bits), so
|out - ref| <= 2^-8 (1 + |ref|) for fp32 inputs and 2^-7 (1 + |ref|) for bf16 (its output rounding on top)."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec.ops.verify_attention import reference, tree_mask_from_parents
from tt_specdec.ops.verify_attention.reference import random_parents
from tt_specdec.ops.verify_attention.program import verify_attention_emu
from tt_specdec.runtime import emu


def make_case(B, T, Hq, Hkv, S, D, pos, dtype, seed=0, block_size=None):
    """(q, k, v, pos, page_table). block_size: a paged cache of S / block_size blocks per sequence,
    shuffled over the pool, blocks past pos + T - 1 left unallocated (-1)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, Hq, D, generator=g).to(dtype)
    pos = torch.tensor(pos)
    page_table = None
    if block_size is None:
        k = torch.randn(B, Hkv, S, D, generator=g).to(dtype)
        v = torch.randn(B, Hkv, S, D, generator=g).to(dtype)
    else:
        max_blocks = -(-S // block_size)
        pool = B * max_blocks + 3
        k = torch.randn(pool, Hkv, block_size, D, generator=g).to(dtype)
        v = torch.randn(pool, Hkv, block_size, D, generator=g).to(dtype)
        ids = torch.randperm(pool, generator=g)[:B * max_blocks].view(B, max_blocks)
        used = (pos + T - 1).div(block_size, rounding_mode="floor") + 1  # blocks holding keys 0 .. pos + T - 1
        page_table = torch.where(torch.arange(max_blocks).view(1, -1) < used.view(-1, 1), ids, -1)
    return q, k, v, pos, page_table


def check(B, T, Hq, Hkv, S, D, pos, dtype, seed=0, block_size=None, kv_splits=None, tree_mask=None):
    """The kernels against the reference on make_case's inputs; tree_mask [B, T, T] or the staircase."""
    q, k, v, pos, page_table = make_case(B, T, Hq, Hkv, S, D, pos, dtype, seed, block_size)
    out, result = verify_attention_emu(q, k, v, pos, page_table=page_table, kv_splits=kv_splits, tree_mask=tree_mask)
    ref = reference.verify_attention(q, k, v, pos, page_table=page_table, tree_mask=tree_mask).double()
    # What a card meets: the matrix unit's sources are TF32 (fp32 loses 13 mantissa bits, up to 2^-10
    # relative per operand, on P, V, l and the fp32 intermediates), so errors scale with the values summed
    # (|V| ~ 1 here), not with the output alone; bf16 output adds its own rounding.
    tol = 2**-8 if dtype == torch.float32 else 2**-7
    err = (out.double() - ref).abs()
    assert bool((err <= tol * (1 + ref.abs())).all()), f"max error {err.max().item()}"
    return result


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 4), T=st.integers(1, 8), Hkv=st.integers(1, 4), group=st.sampled_from([1, 2, 4, 8]),
       D=st.sampled_from([32, 64, 128]), dtype=st.sampled_from([torch.bfloat16, torch.float32]),
       block_size=st.sampled_from([None, 32, 64]), kv_splits=st.sampled_from([None, 1, 2, 3, 5]), data=st.data())
def test_matches_reference(B, T, Hkv, group, D, dtype, block_size, kv_splits, data):
    if T * group > 32:
        group = max(1, 32 // T)
    S = data.draw(st.sampled_from([32, 33, 64, 100, 160]))
    # positions at and around tile boundaries, with pos + T <= S
    edges = [p for p in (0, 1, 30, 31, 32, 33, 63, 64, S - T) if 0 <= p <= S - T]
    pos = data.draw(st.lists(st.sampled_from(edges), min_size=B, max_size=B))
    if kv_splits is not None:
        kv_splits = min(kv_splits, 64 // (B * Hkv))
    check(B, T, Hkv * group, Hkv, S, D, pos, dtype, seed=data.draw(st.integers(0, 1000)), block_size=block_size,
          kv_splits=kv_splits)


def test_kv_read_once_for_all_rows_and_heads():
    """T = 5 with 4 query heads per KV head reads the same KV bytes as T = 1 (same context)."""
    B, Hkv, S, D, pos = 2, 2, 1024, 64, [900, 900]  # pos + 5 stays inside the same 32-key chunk
    r1 = check(B, 1, 4 * Hkv, Hkv, S, D, pos, torch.bfloat16)
    r5 = check(B, 5, 4 * Hkv, Hkv, S, D, pos, torch.bfloat16)
    kv = lambda r: r.bytes_by_kernel("dram_bytes_read")["reader_verify_attention"]  # noqa: E731
    assert kv(r5) <= 1.05 * kv(r1), (kv(r5), kv(r1))
    # and only the chunks up to pos + T - 1 are read: 29 chunks of K and V per (b, h), bf16 tiles
    kv_bytes = B * Hkv * 2 * 29 * (D // 32) * 2048
    assert kv_bytes <= kv(r1) <= kv_bytes * 1.05


@pytest.mark.parametrize("pos", [31, 63, 100, 190])  # 31, 63: the last chunk holds only keys past pos
@pytest.mark.parametrize("kv_splits", [2, 3, 4, 7])
def test_kv_splits_share_the_chunks_and_merge(pos, kv_splits):
    """Each chunk is read once over all split cores: the KV bytes equal the unsplit kernel's;
    each active split reads its share (the last one also the chunk past pos)."""
    B, Hkv, S, D, T = 1, 2, 200, 64, 5
    one = check(B, T, 4 * Hkv, Hkv, S, D, [pos], torch.bfloat16, kv_splits=1)
    split = check(B, T, 4 * Hkv, Hkv, S, D, [pos], torch.bfloat16, kv_splits=kv_splits)
    per_core = [s["dram_bytes_read"] for s in split.stats if s["kernel"] == "reader_verify_attention"]
    q_and_pos, chunk = (D // 32) * 2048 + 32, 2 * (D // 32) * 2048  # per active core; K + V of one chunk
    full, chunks = pos // 32 + 1, -(-(pos + T) // 32)
    per = -(-full // kv_splits)
    active = -(-full // per)
    kv = lambda r: r.bytes_by_kernel("dram_bytes_read")["reader_verify_attention"] - B * Hkv * q_and_pos  # noqa
    assert kv(one) == B * Hkv * chunks * chunk
    idle_reads = (kv_splits - active) * B * Hkv * 32  # an idle split reads pos only
    assert kv(split) - (active - 1) * B * Hkv * q_and_pos - idle_reads == kv(one)
    shares = sorted(b - q_and_pos for b in per_core if b > 32)  # idle splits read only pos (32 bytes)
    assert len(shares) == B * Hkv * active
    assert max(shares) <= (per + chunks - full) * chunk


def test_unallocated_block_is_caught():
    q, k, v = torch.randn(1, 2, 2, 32), torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    with pytest.raises(emu.EmuError, match=r"reader_verify_attention.*ASSERT failed: block >= 0"):
        verify_attention_emu(q, k, v, torch.tensor([40]), page_table=torch.tensor([[2, -1, 0]]))


def test_llama_8b_shape_spreads_over_half_the_grid():
    """Llama-3.1-8B verify (Hkv 8, S 4096, T 5, GQA 4: 20 query rows in one 32-row tile): the KV
    chunks of each head split over 4 cores, 32 of the 64, and the merged result is right."""
    from tt_specdec.ops.verify_attention.program import auto_kv_splits
    B, T, Hq, Hkv, S, D = 1, 5, 32, 8, 4096, 128
    assert B * Hkv * auto_kv_splits(B, Hkv, S) >= 32
    result = check(B, T, Hq, Hkv, S, D, [S - T], torch.bfloat16)
    assert len({s["core"] for s in result.stats if s["kernel"] == "compute_verify_attention"}) >= 32


# ---- token trees: row t sees the cache and its ancestors (tree_mask), T <= 32 --------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 3), T=st.integers(1, 32), Hkv=st.integers(1, 2), group=st.sampled_from([1, 2, 4, 8]),
       D=st.sampled_from([32, 64]), dtype=st.sampled_from([torch.bfloat16, torch.float32]),
       block_size=st.sampled_from([None, 32, 64]), kv_splits=st.sampled_from([None, 1, 2, 3]),
       forest=st.booleans(), data=st.data())
def test_tree_matches_reference(B, T, Hkv, group, D, dtype, block_size, kv_splits, forest, data):
    """Random trees from random parent arrays; T * group > 32 runs as row blocks that keep pos."""
    S = data.draw(st.sampled_from([64, 100, 160]))
    edges = [p for p in (0, 1, 30, 31, 32, 33, 63, 64, S - T) if 0 <= p <= S - T]
    pos = data.draw(st.lists(st.sampled_from(edges), min_size=B, max_size=B))
    seed = data.draw(st.integers(0, 1000))
    tree = tree_mask_from_parents(random_parents(B, T, torch.Generator().manual_seed(seed), forest=forest))
    check(B, T, Hkv * group, Hkv, S, D, pos, dtype, seed=seed, block_size=block_size, kv_splits=kv_splits,
          tree_mask=tree)


@pytest.mark.parametrize("group, block_size", [(1, None), (2, 64)])  # one tile row; two row blocks of 16, paged
def test_tree_of_32_rows_across_chunks_split_over_cores(group, block_size):
    """32 tree rows whose keys pos .. pos + 31 straddle a chunk boundary, each (b, h)'s chunks dealt over
    3 cores and merged."""
    B, T, Hkv, S, D = 2, 32, 2, 320, 64
    tree = tree_mask_from_parents(random_parents(B, T, torch.Generator().manual_seed(7)))
    result = check(B, T, Hkv * group, Hkv, S, D, [70, 250], torch.bfloat16, seed=7, block_size=block_size,
                   kv_splits=3, tree_mask=tree)
    q_bytes, chunk_bytes = (D // 32) * 2048, 2 * (D // 32) * 2048
    with_chunks = [s for s in result.stats
                   if s["kernel"] == "reader_verify_attention" and s["dram_bytes_read"] >= q_bytes + chunk_bytes]
    assert len(with_chunks) == group * B * Hkv * 3  # each row block: all 3 splits of every (b, h) active


@pytest.mark.parametrize("pos", [0, 32, 63])
def test_rows_that_see_only_themselves(pos):
    """A forest of T roots: past the cache each row sees its own key alone, including the key at pos
    (no longer seen by every row), with a split starting at the chunk that holds pos."""
    B, T = 1, 8
    tree = torch.eye(T, dtype=torch.bool).view(1, T, T)
    check(B, T, 4, 2, 128, 32, [pos], torch.float32, kv_splits=2, tree_mask=tree)


@pytest.mark.parametrize("B, T, Hq, Hkv, S, D, pos, dtype, block_size, kv_splits", [
    (2, 6, 4, 2, 100, 32, [30, 64], torch.float32, None, 1),
    (2, 8, 8, 2, 320, 64, [31, 200], torch.bfloat16, 64, 3),
    (1, 12, 8, 1, 160, 32, [60], torch.bfloat16, None, 2),  # GQA 8: row blocks of 4 rows, at 60, 64, 68
    (1, 32, 1, 1, 128, 32, [40], torch.float32, 32, 2),
])
def test_chain_tree_mask_is_the_chain_bit_for_bit(B, T, Hq, Hkv, S, D, pos, dtype, block_size, kv_splits):
    """The staircase as a tree mask (parents t - 1) through the tree program gives the chain program's
    bits, and costs only each core's read of its bitmask row."""
    q, k, v, pos, page_table = make_case(B, T, Hq, Hkv, S, D, pos, dtype, 5, block_size)
    chain = tree_mask_from_parents(torch.arange(-1, T - 1).repeat(B, 1))
    out_tree, r_tree = verify_attention_emu(q, k, v, pos, page_table=page_table, kv_splits=kv_splits,
                                            tree_mask=chain)
    out_chain, r_chain = verify_attention_emu(q, k, v, pos, page_table=page_table, kv_splits=kv_splits)
    assert torch.equal(out_tree, out_chain)
    reads = lambda r: r.bytes_by_kernel("dram_bytes_read")["reader_verify_attention"]  # noqa: E731
    cores = sum(1 for s in r_tree.stats if s["kernel"] == "reader_verify_attention")
    rows = max(32 // (Hq // Hkv), 1)
    bitmask_bytes = sum(min(rows, T - t) * 4 for t in range(0, T, rows)) * B * Hkv * kv_splits
    assert cores == len(range(0, T, rows)) * B * Hkv * kv_splits
    assert reads(r_tree) - reads(r_chain) == bitmask_bytes


def test_tree_rows_past_32_are_refused_naming_tree_mask():
    q, k = torch.randn(1, 33, 1, 32), torch.randn(1, 1, 64, 32)
    tree = torch.ones(1, 33, 33, dtype=torch.bool).tril()
    with pytest.raises(NotImplementedError, match=r"tree_mask: got T=33 tree rows, the kernels take at most 32"):
        verify_attention_emu(q, k, k, torch.tensor([0]), tree_mask=tree)


def test_a_row_that_does_not_see_itself_is_caught_by_the_reader():
    """Bitmasks that bypass check_tree_mask (given to the program directly) are refused by the reader:
    row 0's own bit places the splits."""
    from tt_specdec.ops.verify_attention.program import host_inputs
    q, k = torch.randn(1, 2, 1, 32), torch.randn(1, 1, 64, 32)
    prog, tensors = host_inputs(q, k, k, torch.tensor([3]), tree_bits=torch.tensor([[0, 3]], dtype=torch.int32))
    with pytest.raises(emu.EmuError, match=r"reader_verify_attention.*ASSERT failed: seen\[0\] != 0"):
        emu.run(prog, tensors)
