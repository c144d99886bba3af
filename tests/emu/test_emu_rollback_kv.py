"""rollback_kv kernels (tt_specdec/ops/rollback_kv/kernels/) on the emulator against the plain-loop reference,
contiguous and paged, positions across block boundaries, finished rows skipped; the compaction
kernels copy accepted KV rows, moving exactly the rows that move."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec.ops import rollback_kv
from tt_specdec.ops.rollback_kv import reference
from tt_specdec.ops.rollback_kv.program import rollback_kv_emu
from tt_specdec.runtime import emu


def make_step(B, k, seed, block_size=None, max_blocks=None):
    """A consistent step: num_accepted in -1..k, output rows with n+1 tokens then -1, and a
    page table covering every row's KV up to pos + k (blocks of the row, -1 past them)."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(-1, k + 1, (B,), generator=g)
    out = torch.full((B, k + 1), -1)
    for b in range(B):
        if n[b] >= 0:
            out[b, :n[b] + 1] = torch.randint(0, 50000, (int(n[b]) + 1,), generator=g)
    if block_size is None:
        return torch.randint(0, 4000, (B,), generator=g), torch.randint(0, 50000, (B,), generator=g), n, out, None
    pos = torch.randint(0, (max_blocks * block_size) - k, (B,), generator=g)
    table = torch.full((B, max_blocks), -1)
    ids = torch.randperm(B * max_blocks, generator=g)
    for b in range(B):
        used = -(-(int(pos[b]) + k + 1) // block_size)  # blocks holding slots 0 .. pos + k
        table[b, :used] = ids[b * max_blocks:b * max_blocks + used]
    return pos, torch.randint(0, 50000, (B,), generator=g), n, out, table


def check(pos, last, n, out, table=None, block_size=None):
    got, result = rollback_kv_emu(pos, last, n, out, page_table=table, block_size=block_size)
    want = reference.rollback_kv(pos, last, n, out, page_table=table, block_size=block_size)
    assert torch.equal(got.pos, want.pos) and torch.equal(got.last, want.last)
    if table is None:
        assert got.page_table is None and got.freed is None
    else:
        assert torch.equal(got.page_table, want.page_table), (got.page_table, want.page_table)
        assert torch.equal(got.freed, want.freed), (got.freed, want.freed)
    return result


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(0, 15), seed=st.integers(0, 2**31 - 1), paged=st.booleans(),
       block_size=st.sampled_from([1, 4, 16, 32]), max_blocks=st.sampled_from([16, 33, 64]))
def test_rollback_matches_reference(B, k, seed, paged, block_size, max_blocks):
    if paged and max_blocks * block_size <= k + 1:
        max_blocks = k + 2
    step = make_step(B, k, seed, *((block_size, max_blocks) if paged else ()))
    check(*step, block_size=block_size if paged else None)


def test_new_step_compiles_nothing():
    """Two steps with different positions, accepted counts and finished rows: kernels reused."""
    check(*make_step(4, 5, 1, 16, 20), block_size=16)
    before = emu.compile_stats.compiled, emu.compile_stats.disk_hits
    check(*make_step(4, 5, 2, 16, 20), block_size=16)
    assert (emu.compile_stats.compiled, emu.compile_stats.disk_hits) == before


def test_finished_rows_read_no_tokens():
    pos, last, n, out, _ = make_step(4, 7, 3)
    n = torch.tensor([-1, 0, -1, 7])
    out[[0, 2]] = -1
    out[1, 1:] = -1
    out[3] = torch.arange(8)
    result = check(pos, last, n, out)
    # state: 3 x [4] int32; token rows: 2 live rows of 8 int32
    assert result.bytes_by_kernel()["reader_rollback_kv"] == 3 * 16 + 2 * 32


# ---- compaction kernels: accepted KV rows copied to their final slots -------------------------

def clone_step(step: dict) -> dict:
    return {name: x.clone() if isinstance(x, torch.Tensor) else x for name, x in step.items()}


def moved_row_bytes(step: dict) -> int:
    """Bytes of the KV rows that move (j <= n of a live row with accepted_slots[j] != j), over
    every layer and head, for one of K or V."""
    n, slots = step["num_accepted"], step["accepted_slots"]
    j = torch.arange(slots.shape[1]).view(1, -1)
    moved = int(((j <= n.view(-1, 1)) & (slots != j)).sum())  # n == -1 rows: j <= -1 never holds
    cache = step["k_cache"]
    layers = 1 if cache.dim() == 4 else cache.shape[0]
    return moved * layers * cache.shape[-3] * cache.shape[-1] * cache.element_size()


def cache_bytes(result, key: str) -> dict[str, int]:
    """DRAM bytes per cache tensor over all kernels of the run, for key dram_bytes_read|written."""
    total = {"k_cache": 0, "v_cache": 0}
    for s in result.stats:
        for name in total:
            total[name] += s[f"{key}_by_buffer"].get(name, 0)
    return total


def check_compaction(step: dict):
    got, want = clone_step(step), clone_step(step)
    rollback, result = rollback_kv_emu(**got)
    expected = reference.rollback_kv(**want)
    assert torch.equal(rollback.pos, expected.pos) and torch.equal(rollback.last, expected.last)
    for name in ("k_cache", "v_cache"):
        assert torch.equal(got[name], want[name]), f"{name} differs from the reference"
    return result


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), block_size=st.sampled_from([None, 32, 64]),
       layers=st.sampled_from([None, 2]), hkv=st.integers(1, 2), head_dim=st.sampled_from([32, 64]),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**31 - 1))
def test_compaction_matches_reference(B, k, block_size, layers, hkv, head_dim, dtype, seed):
    step = reference.random_rollback_step(seed, B, k, block_size=block_size, layers=layers, hkv=hkv,
                                          head_dim=head_dim, dtype=dtype)
    result = check_compaction(step)
    moved = moved_row_bytes(step)
    # exactly the rows that move, read once and written once, in K and in V
    assert cache_bytes(result, "dram_bytes_read") == {"k_cache": moved, "v_cache": moved}
    assert cache_bytes(result, "dram_bytes_written") == {"k_cache": moved, "v_cache": moved}


@pytest.mark.parametrize("block_size", [None, 32])
def test_chain_moves_no_kv_bytes(block_size):
    step = reference.random_rollback_step(7, 4, 5, block_size=block_size, layers=2, dtype=torch.bfloat16)
    step["accepted_slots"] = torch.arange(6).repeat(4, 1)
    result = check_compaction(step)
    for key in ("dram_bytes_read", "dram_bytes_written"):
        assert cache_bytes(result, key) == {"k_cache": 0, "v_cache": 0}


@pytest.mark.parametrize("block_size", [None, 32])
def test_overlapping_slots_are_gathered_before_scattered(block_size):
    """A swap and a shift by one: a destination is also a source; the kernels read every moved row
    of a (sequence, layer, K|V, head) before writing any, as the reference does."""
    step = reference.random_rollback_step(9, 2, 4, block_size=block_size, layers=2, dtype=torch.float32)
    step["num_accepted"] = torch.tensor([3, 3])
    step["output_tokens"] = torch.tensor([[1, 2, 3, 4, -1], [1, 2, 3, 4, -1]])
    step["accepted_slots"] = torch.tensor([[0, 2, 1, 3, -1], [1, 2, 3, 4, -1]])
    check_compaction(step)


def test_compaction_step_compiles_nothing_new():
    """Different positions, accepted counts and slots: the compaction kernels are reused."""
    check_compaction(reference.random_rollback_step(1, 3, 6, block_size=32, layers=2))
    before = emu.compile_stats.compiled, emu.compile_stats.disk_hits
    check_compaction(reference.random_rollback_step(2, 3, 6, block_size=32, layers=2))
    assert (emu.compile_stats.compiled, emu.compile_stats.disk_hits) == before


def test_bad_compaction_input_leaves_caches_untouched():
    step = reference.random_rollback_step(4, 2, 3, layers=2)
    step["num_accepted"] = torch.tensor([3, 3])
    step["output_tokens"] = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])
    step["accepted_slots"] = torch.tensor([[0, 2, 1, 9], [0, 1, 2, 3]])
    before = clone_step(step)
    with pytest.raises(ValueError, match=r"accepted_slots: got 9 at \[0, 3\], expected a verify slot offset in 0..3"):
        rollback_kv(**step, backend="emu")
    assert torch.equal(step["k_cache"], before["k_cache"]) and torch.equal(step["v_cache"], before["v_cache"])


@pytest.mark.parametrize("block_size", [None, 32])
def test_kernels_skip_rows_the_host_would_refuse(block_size):
    """Device tensors are not validated on the host: the kernels skip an offset outside 0..k, a slot
    past the cache and an unallocated block rather than touch memory outside the caches."""
    step = reference.random_rollback_step(8, 2, 3, block_size=block_size, layers=2)
    step["num_accepted"] = torch.tensor([3, 3])
    step["output_tokens"] = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])
    step["accepted_slots"] = torch.tensor([[0, 9, -5, 3], [0, 1, 3, 3]])
    step["pos"] = torch.tensor([0, 10_000])  # row 1: every slot past the cache
    if block_size is not None:
        step["page_table"][0] = -1  # row 0: no block allocated
    got = clone_step(step)
    _, result = rollback_kv_emu(**got)
    assert cache_bytes(result, "dram_bytes_written") == {"k_cache": 0, "v_cache": 0}
    assert torch.equal(got["k_cache"], step["k_cache"]) and torch.equal(got["v_cache"], step["v_cache"])
