"""rollback_kv kernels (kernels/rollback_kv/) on the emulator against the plain-loop reference,
contiguous and paged, positions across block boundaries, finished rows skipped."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec import emu
from tt_specdec.ops import reference
from tt_specdec.ops.rollback_kv_program import rollback_kv_emu


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
