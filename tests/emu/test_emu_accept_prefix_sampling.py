"""accept_prefix sampling kernels (tt_specdec/ops/accept_prefix/kernels/*_sampling.cpp) on the emulator: seeded
results equal the plain-loop reference token for token (same counter-based uniforms, the integer
procedure of sampling.fixed_params: no rounding edge anywhere, top-p's included), with temperature,
top-k and top-p, with and without draft probabilities, over B 1..8, k 1..15, edge vocabularies,
tie-heavy logits, bf16 and fp32; each row is read from DRAM once."""
import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec.ops import accept_prefix
from tt_specdec.ops.accept_prefix import reference
from tt_specdec.ops.accept_prefix.program import accept_prefix_sampling_emu, split_vocab
from tt_specdec.runtime import emu
from tt_specdec.sampling import exp2_tables, process_logits

VOCABS = [2, 31, 33, 100, 2047, 2049, 4103, 6001]


def make_case(B, k, V, dtype, seed, draft_kind):
    """Logits [B, k+1, V]; drafts [B, k] and draft_probs [B, k, V] | None.
    draft_kind: 'sampled' (q a softmax, d ~ q), 'target' (q = the target's own p: residual all
    zero at a rejection), 'deterministic' (no q; drafts mostly the target argmax), 'ties' (logits
    from 6 values, so the k-th largest and the nucleus edge are shared by many tokens; no q)."""
    g = torch.Generator().manual_seed(seed)
    if draft_kind == "ties":
        logits = (torch.randint(-3, 3, (B, k + 1, V), generator=g) * 0.7).to(dtype)
        return logits, torch.randint(0, V, (B, k), generator=g), None
    logits = (torch.randn(B, k + 1, V, generator=g) * 2).to(dtype)
    if draft_kind == "deterministic":
        drafts = logits.argmax(-1)[:, :k].clone()
        flip = torch.rand(B, k, generator=g) < 0.3
        drafts[flip] = torch.randint(0, V, (int(flip.sum()),), generator=g)
        return logits, drafts, None
    if draft_kind == "target":
        q = process_logits(logits[:, :k], 1.0).float()
    else:
        q = torch.softmax(torch.randn(B, k, V, generator=g) * 2, -1)
    drafts = torch.multinomial(q.reshape(-1, V).double(), 1, generator=g).view(B, k)
    return logits, drafts, q


def check(logits, drafts, q, num_draft, temperature, seed, max_cores=8, top_k=0, top_p=1.0):
    n, out, result = accept_prefix_sampling_emu(logits, drafts, draft_probs=q, num_draft=num_draft,
                                                temperature=temperature, seed=seed, top_k=top_k, top_p=top_p,
                                                max_cores=max_cores)
    ref_n, ref_out = reference.accept_prefix(logits, drafts, draft_probs=q, num_draft=num_draft,
                                             temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    assert torch.equal(n, ref_n), (n, ref_n)
    assert torch.equal(out, ref_out), (out, ref_out)
    return n, out, result


SETTINGS = st.tuples(st.sampled_from([0.3, 1.0, 2.5]),  # temperature
                     st.sampled_from([0, 1, 2, 7, -1, 0x7FFFFFFF]),  # top_k; -1: V - 1, 0x7FFFFFFF: past V
                     st.sampled_from([1.0, 0.95, 0.61, 0.2, 0.01]),  # top_p
                     st.integers(0, 2**32 - 1))  # seed


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), case_seed=st.integers(0, 999),
       draft_kind=st.sampled_from(["sampled", "target", "deterministic", "ties"]), dynamic_k=st.booleans(),
       max_cores=st.sampled_from([1, 3, 8]), runs=st.lists(SETTINGS, min_size=3, max_size=3))
def test_sampling_matches_reference(B, k, V, dtype, case_seed, draft_kind, dynamic_k, max_cores, runs):
    """Temperature, top-k, top-p and seeds are runtime args: several runs per compiled shape.
    max_cores 1 puts a whole row in one core's L1; 8 splits it at slice edges."""
    logits, drafts, q = make_case(B, k, V, dtype, case_seed, draft_kind)
    num_draft = torch.randint(-1, k + 1, (B,), generator=torch.Generator().manual_seed(case_seed)) if dynamic_k else None
    for temperature, top_k, top_p, seed in runs:
        top_k = V - 1 if top_k == -1 else top_k
        check(logits, drafts, q, num_draft, temperature, seed, max_cores, top_k, top_p)  # integers: no edge to skip


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_per_row_seeds_and_large_vocab(dtype):
    V = 128256
    assert len(split_vocab(V)) == 8
    logits, drafts, q = make_case(2, 3, V, dtype, 5, "sampled")
    check(logits, drafts, q, None, 1.0, torch.tensor([11, 2**32 - 7]), top_k=40000, top_p=0.9)


def test_public_op_with_top_k_top_p_on_the_emulator_equals_torch():
    logits, drafts, q = make_case(3, 4, 49152, torch.bfloat16, 4, "sampled")
    for kwargs in (dict(draft_probs=q, top_k=50, top_p=0.8), dict(draft_probs=None, top_k=0, top_p=0.3)):
        emu_n, emu_out = accept_prefix(logits, drafts, temperature=0.8, seed=21, backend="emu", **kwargs)
        n, out = accept_prefix(logits, drafts, temperature=0.8, seed=21, **kwargs)
        assert torch.equal(emu_n, n) and torch.equal(emu_out, out)


def test_top_k_applies_before_top_p():
    """Logits [3, 2, 2, 0, ...]: top-k 3 first gives token 0 a mass of 0.58 among the three, so
    top-p 0.55 keeps it alone; top-p first (0.21 of the whole row) would keep 0, 1, 2 and more,
    and top-k 3 then 0, 1, 2. A draft of token 1 must therefore always be rejected, and the
    recovered token is always 0."""
    V = 64
    row = torch.zeros(V)
    row[:3] = torch.tensor([3.0, 2.0, 2.0])
    logits = row.view(1, 1, V).expand(1, 2, V).contiguous()
    right = process_logits(row, 1.0, 3, 0.55)
    wrong = process_logits(process_logits(row, 1.0, 0, 0.55).log().clamp(min=-1e4), 1.0, 3, 1.0)  # top-p, then top-k
    assert (right > 0).nonzero().flatten().tolist() == [0]
    assert (wrong > 0).nonzero().flatten().tolist() == [0, 1, 2]
    for seed in range(12):
        n, out, _ = check(logits, torch.tensor([[1]]), None, None, 1.0, seed, 3, 3, 0.55)
        assert int(n) == 0 and int(out[0, 0]) == 0


def test_top_p_ties_keep_the_lowest_indices_across_cores():
    """Eight equal maxima spread over three cores' slices (0.124 of the mass each); top-p 0.3 keeps
    the first three in index order, as the reference: two on core 0, one of core 1's two. The
    draws never leave them; a draft tied with them past the cut (core 1's second) has p = 0."""
    V = 6001
    slices = split_vocab(V, 3)
    logits = torch.zeros(1, 2, V)
    tied = [10, 20, slices[1][0] + 5, slices[1][0] + 6, slices[2][0], slices[2][0] + 1, V - 2, V - 1]
    logits[0, :, tied] = 12.0
    p = process_logits(logits[0, 0], 1.0, 0, 0.3)
    kept = p.nonzero().flatten().tolist()
    assert kept == tied[:3]  # 0.3 of the mass: three of the eight tied tokens, the lowest indices
    tokens = set()
    for seed in range(16):
        # draft = a tied token past the cut: p(d) = 0, always rejected
        n, out, _ = check(logits, torch.tensor([[tied[3]]]), None, None, 1.0, seed, 3, 0, 0.3)
        assert int(n) == 0
        tokens.add(int(out[0, 0]))
        # draft = a tied token inside the cut on core 1: accepted with probability p(d) = 1/3
        check(logits, torch.tensor([[tied[2]]]), None, None, 1.0, seed, 3, 0, 0.3)
    assert tokens <= set(tied[:3]) and len(tokens) > 1, tokens


def test_one_core_whole_row_with_draft_probs():
    logits, drafts, q = make_case(2, 3, 6001, torch.float32, 3, "sampled")
    for seed in range(3):
        check(logits, drafts, q, None, 1.0, seed, max_cores=1, top_k=100, top_p=0.9)


def test_accepts_and_rejects_both_happen():
    """Over many seeds the kernel accepts and rejects (so the tests above exercise both paths)."""
    logits, drafts, q = make_case(8, 4, 300, torch.float32, 9, "sampled")
    counts = torch.cat([check(logits, drafts, q, None, 1.0, s)[0] for s in range(4)])
    assert int(counts.min()) == 0 and int(counts.max()) >= 1


def test_new_temperature_top_k_top_p_and_seed_compile_nothing():
    logits, drafts, q = make_case(3, 4, 3000, torch.bfloat16, 1, "sampled")
    check(logits, drafts, q, torch.tensor([4, 2, -1]), 0.7, 1)
    before = emu.compile_stats.compiled, emu.compile_stats.disk_hits
    check(logits, drafts, q, torch.tensor([1, 4, 0]), 1.9, 2, top_k=17, top_p=0.5)
    assert (emu.compile_stats.compiled, emu.compile_stats.disk_hits) == before


def test_too_many_cores_is_refused_naming_max_cores():
    logits, drafts, q = make_case(1, 2, 64, torch.float32, 0, "sampled")
    with pytest.raises(ValueError, match="max_cores: got 9"):
        accept_prefix_sampling_emu(logits, drafts, draft_probs=q, num_draft=None, temperature=1.0, seed=0,
                                   max_cores=9)


@pytest.mark.parametrize("draft_kind,top_k,top_p", [("deterministic", 0, 1.0), ("sampled", 0, 1.0),
                                                    ("sampled", 50, 0.9)])
def test_each_row_is_read_once_and_rows_after_a_rejection_never(draft_kind, top_k, top_p):
    """DRAM reads: rows 0..n of each sequence (its slice kept in L1 for all rounds, the residual
    included), q's row n at a rejection with draft probabilities, and a few small pages."""
    B, k, V = 4, 4, 49152
    logits, drafts, q = make_case(B, k, V, torch.bfloat16, 6, draft_kind)
    n, _, result = check(logits, drafts, q, None, 1.0, 3, top_k=top_k, top_p=top_p)
    row_bytes = V * logits.element_size()
    expected = int((n + 1).sum()) * row_bytes
    if q is not None:
        expected += int((n < k).sum()) * V * 4
    small = B * (4 + 4 + k * 4 + k * 32)  # seeds, num_draft, drafts, one q entry per accept test
    assert expected <= result.total("dram_bytes_read") <= expected + small
    assert int(n.min()) < k  # a rejection happened: its later rows were skipped


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_negative_zero_ties_with_zero_at_the_top_k_cut(dtype):
    """Logits [1, 0, -0, 0, -1, ...] with top-k 2: the 2nd largest is 0 and -0 >= 0, so tokens
    0..3 are kept (as the reference); ordering -0 below +0 would drop token 2, the draft."""
    V = 40
    row = torch.full((V,), -1.0)
    row[:4] = torch.tensor([1.0, 0.0, -0.0, 0.0])
    logits = row.to(dtype).view(1, 1, V).expand(1, 2, V).contiguous()
    assert (process_logits(logits[0, 0], 1.0, 2) > 0).nonzero().flatten().tolist() == [0, 1, 2, 3]
    accepted = [int(check(logits, torch.tensor([[2]]), None, None, 1.0, seed, 1, 2)[0]) for seed in range(8)]
    assert 0 < sum(accepted) < 8  # p(2) = 0.15: some seeds accept the -0 draft


def test_an_int_seed_is_one_seed_for_the_call_with_rows_independent():
    # identical rows: an int seed gives each row its own seed (sampling.row_seeds(seed, B)), as torch does
    # (whose chi-square test is in tests/ops/test_accept_prefix.py); before, every row drew the same
    from tt_specdec.sampling import row_seeds

    B, V = 64, 8
    logits = torch.randn(2, V, generator=torch.Generator().manual_seed(3)).expand(B, 2, V).contiguous()
    drafts = torch.full((B, 1), 1, dtype=torch.int64)
    n, out = accept_prefix(logits, drafts, temperature=1.0, seed=9, backend="emu")
    assert len(set(out[:, 0].tolist())) >= 4, out[:, 0].tolist()
    for kwargs in (dict(seed=9), dict(seed=row_seeds(9, B), backend="emu")):
        n_other, out_other = accept_prefix(logits, drafts, temperature=1.0, **kwargs)
        assert torch.equal(n, n_other) and torch.equal(out, out_other)


def test_the_kernel_header_holds_the_exp2_tables_of_sampling():
    """The kernels' T1..T3 (accept_prefix_common.hpp) are sampling.exp2_tables, number for number."""
    header = (Path(reference.__file__).parent / "kernels" / "accept_prefix_common.hpp").read_text()
    for j, table in enumerate(exp2_tables(), 1):
        body = re.search(rf"EXP2_T{j}\[256\] = \{{(.*?)\}};", header, re.S).group(1)
        assert [int(v) for v in re.findall(r"(\d+)u", body)] == list(table)


EXTREME_LOGITS = [3e38, -3e38, 1e30, -1e30, 7e4, 1.0, 1e-40, -1e-40, 1e-45, 0.0, -0.0, -7e4]
EXTREME_Q = [1e-45, 1e-40, 1e-30, 0.25, 1.0, 3.0, 1e20, 3e38]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1e-30, 1e-3, 1.0, 1e30])
def test_extreme_logits_probabilities_and_temperatures_match_the_reference(dtype, temperature):
    """Every branch of the integer procedure: exponents more than 38 apart (the right shift), subnormal
    logits and q, x past 2^30 / 2^24 (r <= 0), q >= 1 (no residual) and q >= 2^47 (the accept test's g < 0)."""
    g = torch.Generator().manual_seed(int(temperature > 1))
    B, k, V = 3, 3, 64
    # each row mixes 3 of the values, so that its largest varies and other tokens keep a weight
    picks = torch.rand(B, k + 1, len(EXTREME_LOGITS), generator=g).argsort(-1)[..., :3]  # [B, k+1, 3]
    row_values = torch.tensor(EXTREME_LOGITS)[picks]
    logits = row_values.gather(-1, torch.randint(0, 3, (B, k + 1, V), generator=g)).to(dtype)
    q = torch.tensor(EXTREME_Q)[torch.randint(0, len(EXTREME_Q), (B, k, V), generator=g)]
    # drafts: the row's largest logit (p > 0: the accept test runs on q) or any token
    drafts = torch.where(torch.rand(B, k, generator=g) < 0.7, logits[:, :k].float().argmax(-1),
                         torch.randint(0, V, (B, k), generator=g))
    for seed in range(6):
        for probs, top_k, top_p in ((q, 5 * (seed % 3), (1.0, 0.7, 0.3)[seed % 3]), (None, 0, 0.5)):
            n, out, _ = check(logits, drafts, probs, None, temperature, seed, 2, top_k, top_p)
            torch_n, torch_out = accept_prefix(logits, drafts, draft_probs=probs, temperature=temperature,
                                               top_k=top_k, top_p=top_p, seed=seed)
            assert torch.equal(torch_n, n) and torch.equal(torch_out, out)
