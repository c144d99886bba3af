"""accept_prefix greedy kernels (tt_specdec/ops/accept_prefix/kernels/) on the emulator against the
plain-loop reference: shapes drawn over B 1..8, k 1..15, V with edge sizes (not multiples
of 32, slice and chunk boundaries) up to 128,256, bf16 and fp32 logits."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec.ops import PLACEHOLDER, accept_prefix
from tt_specdec.ops.accept_prefix import reference
from tt_specdec.ops.accept_prefix.program import accept_prefix_emu, split_vocab
from tt_specdec.runtime import emu

# edge sizes: 1, around 32, around the 2048-entry chunk / slice, not multiples of 32
VOCABS = [1, 2, 31, 32, 33, 100, 2047, 2048, 2049, 4103, 6001]


def make_case(B, k, V, dtype, seed, tie_heavy, flip_rate):
    """Logits [B, k+1, V] and drafts [B, k] that agree with the target argmax except where flipped."""
    g = torch.Generator().manual_seed(seed)
    if tie_heavy:  # few distinct values: many rows have several maxima
        logits = torch.randint(0, 4, (B, k + 1, V), generator=g).to(dtype)
    else:
        logits = (torch.randn(B, k + 1, V, generator=g) * 3).to(dtype)
    drafts = logits.argmax(-1)[:, :k].clone()
    flip = torch.rand(B, k, generator=g) < flip_rate
    drafts[flip] = torch.randint(0, V, (int(flip.sum()),), generator=g)
    return logits, drafts


def check_against_reference(logits, drafts, num_draft=None, max_cores=8):
    n, out, result = accept_prefix_emu(logits, drafts, num_draft, max_cores=max_cores)
    ref_n, ref_out = reference.accept_prefix(logits, drafts, num_draft=num_draft)
    B, k = drafts.shape
    # argmax by value at the returned index: every emitted target token is a row maximum
    for b in range(B):
        nb = int(n[b])
        if nb == PLACEHOLDER:
            continue
        for t in range(nb + 1):
            tok = int(out[b, t])
            assert logits[b, t, tok] == logits[b, t].max(), f"row ({b}, {t}): token {tok} is not a maximum"
    # and exactly the reference: first maximum wins, like torch.argmax
    assert torch.equal(n, ref_n), (n, ref_n)
    assert torch.equal(out, ref_out), (out, ref_out)
    return result


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**31 - 1),
       tie_heavy=st.booleans(), flip_rate=st.sampled_from([0.0, 0.1, 0.5]), dynamic_k=st.booleans(),
       max_cores=st.sampled_from([1, 3, 8]))
def test_greedy_matches_reference(B, k, V, dtype, seed, tie_heavy, flip_rate, dynamic_k, max_cores):
    logits, drafts = make_case(B, k, V, dtype, seed, tie_heavy, flip_rate)
    num_draft = None
    if dynamic_k:  # per-row effective k, -1 = finished row
        num_draft = torch.randint(-1, k + 1, (B,), generator=torch.Generator().manual_seed(seed))
    check_against_reference(logits, drafts, num_draft, max_cores)


@pytest.mark.parametrize("V,dtype", [(49152, torch.bfloat16), (128256, torch.float32), (128256, torch.bfloat16)])
def test_large_vocab_matches_reference(V, dtype):
    logits, drafts = make_case(2, 3, V, dtype, seed=V, tie_heavy=False, flip_rate=0.3)
    assert len(split_vocab(V)) == 8  # V is really split over cores
    check_against_reference(logits, drafts)


def test_largest_shape_matches_torch_op():
    """B 8, k 15, V 128,256: the plain-loop reference would take minutes here, the torch op is
    itself tested against it in tests/ops."""
    logits, drafts = make_case(8, 15, 128256, torch.bfloat16, seed=7, tie_heavy=False, flip_rate=0.05)
    n, out = accept_prefix(logits, drafts, backend="emu")
    ref_n, ref_out = accept_prefix(logits, drafts)
    assert torch.equal(n, ref_n) and torch.equal(out, ref_out)


def test_ties_across_cores_keep_first_index():
    V = 12000
    slices = split_vocab(V)
    assert len(slices) > 2
    logits = torch.zeros(1, 3, V)
    # row 0: equal maxima in core 2's and core 1's slices, and twice in core 1's: the first wins
    i1, i2 = slices[1][0] + 5, slices[2][0] + 1
    logits[0, 0, [i1, i1 + 7, i2]] = 4.0
    # row 1: +0.0 and -0.0 maxima compare equal: the first wins
    logits[0, 1] = -1.0
    logits[0, 1, slices[-1][0] + 3] = -0.0
    logits[0, 1, slices[1][0] + 3] = 0.0
    logits[0, 2, V - 1] = 1.0  # the last entry of the last (partial) slice
    drafts = torch.tensor([[i1, slices[1][0] + 3]])
    n, out, _ = accept_prefix_emu(logits, drafts)
    assert n.tolist() == [2] and out.tolist() == [[i1, slices[1][0] + 3, V - 1]]


def test_named_edge_cases():
    logits = torch.eye(4)[[1, 2, 0, 3]].unsqueeze(0)  # target argmax per row: 1, 2, 0, 3
    perfect = accept_prefix(logits, torch.tensor([[1, 2, 0]]), backend="emu")
    assert perfect[0].tolist() == [3] and perfect[1].tolist() == [[1, 2, 0, 3]]  # bonus token
    early = accept_prefix(logits, torch.tensor([[3, 2, 0]]), backend="emu")
    assert early[0].tolist() == [0] and early[1].tolist() == [[1, -1, -1, -1]]  # recovered at row 0
    skipped = accept_prefix(logits.expand(2, 4, 4), torch.tensor([[1, 2, 0], [1, 2, 0]]),
                            num_draft=torch.tensor([-1, 0]), backend="emu")
    assert skipped[0].tolist() == [-1, 0] and skipped[1].tolist() == [[-1] * 4, [1, -1, -1, -1]]


def test_reads_the_logits_once():
    B, k, V = 4, 4, 49152
    logits, drafts = make_case(B, k, V, torch.bfloat16, seed=1, tie_heavy=False, flip_rate=0.2)
    result = check_against_reference(logits, drafts)
    logits_bytes = logits.numel() * logits.element_size()
    read = result.total("dram_bytes_read")
    assert logits_bytes <= read <= 1.02 * logits_bytes, (read, logits_bytes)


def test_finished_rows_and_short_k_read_less():
    B, k, V = 4, 7, 8192
    logits, drafts = make_case(B, k, V, torch.float32, seed=2, tie_heavy=False, flip_rate=0.0)
    num_draft = torch.tensor([-1, 0, 3, 7])
    result = check_against_reference(logits, drafts, num_draft)
    rows_read = 0 + 1 + 4 + 8
    assert result.bytes_by_kernel()["reader_accept_prefix"] == rows_read * V * 4 + 4 * B * len(split_vocab(V))


def test_program_cache_hit_on_new_step():
    """Two steps with different logits, drafts and effective k compile nothing new."""
    B, k, V = 3, 5, 3000
    logits, drafts = make_case(B, k, V, torch.bfloat16, seed=3, tie_heavy=False, flip_rate=0.3)
    check_against_reference(logits, drafts, torch.tensor([5, 5, 5]))
    before = emu.compile_stats.compiled, emu.compile_stats.disk_hits
    logits2, drafts2 = make_case(B, k, V, torch.bfloat16, seed=4, tie_heavy=True, flip_rate=0.1)
    check_against_reference(logits2, drafts2, torch.tensor([2, -1, 4]))
    assert (emu.compile_stats.compiled, emu.compile_stats.disk_hits) == before


