"""accept_prefix: output invariants, named edge cases, vectorized == plain-loop reference
(greedy and seeded sampling), a chi-square test that speculative sampling keeps the
target's distribution, and argument checks."""
import itertools
import math
import random
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tt_specdec.ops import PLACEHOLDER, accept_prefix
from tt_specdec.ops.accept_prefix import reference
from tt_specdec.sampling import (STREAM_DRAFT, STREAM_SAMPLE, process_logits, row_seeds, sample_inverse_cdf,
                                     uniform)


def check_invariants(n, out, drafts, V, num_draft=None):
    """n [B], out [B, k+1]: the contract every call must meet, whatever the logits."""
    B, k = drafts.shape
    assert n.shape == (B,) and out.shape == (B, k + 1)
    assert n.dtype == torch.int64 and out.dtype == torch.int64
    for b in range(B):
        k_eff = k if num_draft is None else int(num_draft[b])
        if k_eff < 0:
            assert int(n[b]) == PLACEHOLDER and bool((out[b] == PLACEHOLDER).all())
            continue
        nb = int(n[b])
        assert 0 <= nb <= k_eff
        # the accepted prefix is contiguous: exactly d_1 .. d_n
        assert out[b, :nb].tolist() == drafts[b, :nb].tolist()
        assert 0 <= int(out[b, nb]) < V
        assert bool((out[b, nb + 1:] == PLACEHOLDER).all())
        assert int((out[b] != PLACEHOLDER).sum()) == nb + 1


def check_greedy_values(logits, drafts, n, out, num_draft=None):
    """Argmax compared by the value of the logit at the returned index, so ties cannot fail it;
    plus the tie rule itself: the first maximum wins, as torch.argmax."""
    B, k = drafts.shape
    for b in range(B):
        nb = int(n[b])
        if nb < 0:
            continue
        row_max = logits[b].max(-1).values  # [k+1]
        for t in range(nb):
            assert logits[b, t, drafts[b, t]] == row_max[t]
        token = int(out[b, nb])
        assert logits[b, nb, token] == row_max[nb]
        assert token == int((logits[b, nb] == row_max[nb]).nonzero()[0])
        k_eff = k if num_draft is None else int(num_draft[b])
        if nb < k_eff:
            first_max = int((logits[b, nb] == row_max[nb]).nonzero()[0])
            assert int(drafts[b, nb]) != first_max


@st.composite
def greedy_cases(draw):
    B = draw(st.integers(1, 5))
    k = draw(st.integers(1, 6) | st.just(31))
    V = draw(st.sampled_from([2, 3, 8, 33]))
    ties = draw(st.booleans())
    match_rate = draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
    with_num_draft = draw(st.booleans())
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    # small integer logits make ties common
    logits = torch.randint(-2, 3, (B, k + 1, V), generator=g).float() if ties else torch.randn(B, k + 1, V, generator=g)
    agree = torch.rand(B, k, generator=g) < match_rate
    drafts = torch.where(agree, logits[:, :k].argmax(-1), torch.randint(0, V, (B, k), generator=g))
    num_draft = torch.randint(-1, k + 1, (B,), generator=g) if with_num_draft else None
    return logits, drafts, num_draft


@settings(deadline=None, max_examples=60)
@given(greedy_cases())
def test_greedy_matches_reference(case):
    logits, drafts, num_draft = case
    n, out = accept_prefix(logits, drafts, num_draft=num_draft)
    check_invariants(n, out, drafts, logits.shape[-1], num_draft)
    check_greedy_values(logits, drafts, n, out, num_draft)
    ref_n, ref_out = reference.accept_prefix(logits, drafts, num_draft=num_draft)
    assert torch.equal(n, ref_n) and torch.equal(out, ref_out)


@st.composite
def sampling_cases(draw):
    B = draw(st.integers(1, 5))
    k = draw(st.integers(1, 6) | st.just(31))
    V = draw(st.sampled_from([2, 3, 8, 33]))
    temperature = draw(st.sampled_from([0.5, 1.0, 1.7]))
    top_k = draw(st.sampled_from([0, 1, 3, V]))
    top_p = draw(st.sampled_from([1.0, 0.9, 0.5, 0.05]))
    with_probs = draw(st.booleans())
    with_num_draft = draw(st.booleans())
    row_seeded = draw(st.booleans())
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logits = 2.0 * torch.randn(B, k + 1, V, generator=g)
    if with_probs:
        # drafts sampled from a distribution of their own
        draft_probs = torch.softmax(2.0 * torch.randn(B, k, V, generator=g), -1)
        drafts = torch.multinomial(draft_probs.view(-1, V), 1, generator=g).view(B, k)
    else:
        draft_probs = None
        drafts = torch.where(torch.rand(B, k, generator=g) < 0.5, logits[:, :k].argmax(-1),
                             torch.randint(0, V, (B, k), generator=g))
    num_draft = torch.randint(-1, k + 1, (B,), generator=g) if with_num_draft else None
    seed = torch.randint(0, 2**32, (B,), generator=g) if row_seeded else int(torch.randint(0, 2**32, (1,), generator=g))
    return logits, drafts, dict(draft_probs=draft_probs, num_draft=num_draft, temperature=temperature,
                                top_k=top_k, top_p=top_p, seed=seed)


@settings(deadline=None, max_examples=60)
@given(sampling_cases())
def test_sampling_matches_reference(case):
    logits, drafts, kwargs = case
    n, out = accept_prefix(logits, drafts, **kwargs)
    check_invariants(n, out, drafts, logits.shape[-1], kwargs["num_draft"])
    ref_n, ref_out = reference.accept_prefix(logits, drafts, **kwargs)
    assert torch.equal(n, ref_n) and torch.equal(out, ref_out)


def one_hot_logits(tokens, V, scale=1.0):
    """[B, k+1] token ids -> logits [B, k+1, V] whose argmax is that token; a large scale makes
    the sampled distribution one-hot too (exp(-1000) == 0 in float64)."""
    return scale * torch.nn.functional.one_hot(tokens, V).float()


@pytest.mark.parametrize("sampling", [False, True])
def test_perfect_match(sampling):
    tokens = torch.tensor([[3, 1, 4, 1, 5], [2, 7, 1, 8, 2]])  # [B, k+1]; drafts = the first k
    drafts, k = tokens[:, :4], 4
    if sampling:
        logits = one_hot_logits(tokens, 10, scale=1000.0)
        n, out = accept_prefix(logits, drafts, temperature=1.0, seed=7)
    else:
        n, out = accept_prefix(one_hot_logits(tokens, 10), drafts)
    assert n.tolist() == [k, k]
    assert torch.equal(out, tokens)  # every draft, then the bonus = argmax of row k


@pytest.mark.parametrize("temperature", [1e-30, 1e-18])
def test_a_vanishing_temperature_samples_as_greedy(temperature):
    """Issue 15: the target's sampled rows were NaN at such temperatures on torch (every draft rejected, id V-1
    emitted). The target is one-hot in the limit: drafts equal to its argmax are all accepted, then its argmax."""
    logits = torch.randn(2, 4, 50, generator=torch.Generator().manual_seed(0)) * 3  # [B, k+1, V]
    greedy = logits.argmax(-1)
    n, out = accept_prefix(logits, greedy[:, :3], temperature=temperature, seed=1)
    assert n.tolist() == [3, 3] and torch.equal(out, greedy)

@pytest.mark.parametrize("sampling", [False, True])
def test_early_mismatch(sampling):
    tokens = torch.tensor([[3, 1, 4, 1], [2, 7, 1, 8]])
    drafts = torch.tensor([[0, 1, 4], [5, 7, 1]])  # d_1 wrong, the rest would match
    if sampling:
        n, out = accept_prefix(one_hot_logits(tokens, 10, scale=1000.0), drafts, temperature=0.8, seed=1)
    else:
        n, out = accept_prefix(one_hot_logits(tokens, 10), drafts)
    assert n.tolist() == [0, 0]
    assert out.tolist() == [[3, -1, -1, -1], [2, -1, -1, -1]]  # the recovered token only


def test_mismatch_in_the_middle():
    tokens = torch.tensor([[3, 1, 4, 1]])
    n, out = accept_prefix(one_hot_logits(tokens, 10), torch.tensor([[3, 1, 9]]))
    assert n.tolist() == [2] and out.tolist() == [[3, 1, 4, -1]]


def test_empty_sequence():
    # no rows at all
    for kwargs in (dict(), dict(temperature=1.0, seed=0, draft_probs=torch.zeros(0, 3, 8))):
        n, out = accept_prefix(torch.zeros(0, 4, 8), torch.zeros(0, 3, dtype=torch.int64), **kwargs)
        assert n.shape == (0,) and out.shape == (0, 4) and n.dtype == out.dtype == torch.int64
    # no drafts in a row (num_draft = 0): the step is plain decoding, one token from row 0
    tokens = torch.tensor([[5, 1, 2], [6, 1, 2]])
    for kwargs in (dict(), dict(temperature=1.0, seed=3)):
        n, out = accept_prefix(one_hot_logits(tokens, 8, 1000.0), tokens[:, :2], num_draft=torch.tensor([0, 0]),
                               **kwargs)
        assert n.tolist() == [0, 0] and out.tolist() == [[5, -1, -1], [6, -1, -1]]


def test_num_draft_respected():
    tokens = torch.tensor([[3, 1, 4, 1]] * 4)
    logits = one_hot_logits(tokens, 10)
    n, out = accept_prefix(logits, tokens[:, :3], num_draft=torch.tensor([-1, 0, 2, 3]))
    assert n.tolist() == [-1, 0, 2, 3]
    assert out.tolist() == [[-1, -1, -1, -1], [3, -1, -1, -1], [3, 1, 4, -1], [3, 1, 4, 1]]


def test_greedy_ties_pick_the_first_maximum():
    logits = torch.tensor([[[1.0, 5.0, 5.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 3.0, 3.0]]])
    # d_1 = 2 ties with the max but is not the first one: rejected, recovered = 1
    n, out = accept_prefix(logits, torch.tensor([[2, 0]]))
    assert n.tolist() == [0] and out.tolist() == [[1, -1, -1]]
    n, out = accept_prefix(logits, torch.tensor([[1, 0]]))
    assert n.tolist() == [2] and out.tolist() == [[1, 0, 2]]


def test_top_p_ties_keep_the_lower_indices():
    """40 equal logits: top-p keeps the first of them in index order, as the plain-loop reference
    does (an unstable sort keeps an arbitrary subset), and the op samples only those."""
    V = 64
    row = torch.zeros(V)
    row[:40] = 5.0
    p = process_logits(row, 1.0, 0, 0.3)
    kept = p.nonzero().flatten().tolist()
    assert 1 < len(kept) < 40 and kept == list(range(len(kept)))
    assert torch.equal(p > 0, torch.tensor(reference.process_row(row.tolist(), 1.0, 0, 0.3)) > 0)
    logits = row.expand(16, 2, V)
    n, out = accept_prefix(logits, torch.full((16, 1), 39), temperature=1.0, top_p=0.3, seed=torch.arange(16))
    assert n.tolist() == [0] * 16  # draft 39 ties with the kept tokens but lies past the cut: p = 0
    assert set(out[:, 0].tolist()) <= set(kept)


def test_draft_equal_to_target_accepts_everything():
    # q == p: u * q < p holds for every u < 1
    g = torch.Generator().manual_seed(0)
    B, k, V = 64, 5, 12
    logits = torch.randn(B, k + 1, V, generator=g)
    p = process_logits(logits, 0.9, 0, 0.9)
    seeds = row_seeds(5, B)
    drafts = torch.stack([sample_inverse_cdf(p[:, t], uniform(seeds, STREAM_DRAFT, t)) for t in range(k)], 1)
    n, out = accept_prefix(logits, drafts, draft_probs=p[:, :k], temperature=0.9, top_p=0.9, seed=seeds)
    assert n.tolist() == [k] * B


def test_deterministic_when_seeded():
    g = torch.Generator().manual_seed(0)
    B, k, V = 64, 4, 16
    logits = torch.randn(B, k + 1, V, generator=g)
    draft_probs = torch.softmax(torch.randn(B, k, V, generator=g), -1)
    drafts = torch.multinomial(draft_probs.view(-1, V), 1, generator=g).view(B, k)
    kwargs = dict(draft_probs=draft_probs, temperature=0.8, top_k=8, top_p=0.95)
    seeds = row_seeds(1234, B)
    first = accept_prefix(logits, drafts, seed=seeds, **kwargs)
    again = accept_prefix(logits, drafts, seed=seeds.clone(), **kwargs)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = accept_prefix(logits, drafts, seed=row_seeds(99, B), **kwargs)
    assert not torch.equal(first[1], other[1])
    # a row's result does not depend on the rest of the batch
    for b in (0, 17, 63):
        n, out = accept_prefix(logits[b:b + 1], drafts[b:b + 1], seed=seeds[b:b + 1], draft_probs=draft_probs[b:b + 1],
                               temperature=0.8, top_k=8, top_p=0.95)
        assert int(n) == int(first[0][b]) and torch.equal(out[0], first[1][b])


def chi_square(samples, probs):
    """Pearson statistic and degrees of freedom of token ids [N] against probs [V]; a token
    with probability 0 must never be drawn."""
    counts = torch.bincount(samples, minlength=probs.shape[0]).double()
    support = probs > 0
    assert counts[~support].sum() == 0, "sampled a token the target gives probability 0"
    expected = samples.shape[0] * probs[support]
    assert float(expected.min()) >= 5, "too few samples per bin for the chi-square approximation"
    return float(((counts[support] - expected) ** 2 / expected).sum()), int(support.sum()) - 1


def chi_square_critical(df):
    """Upper critical value at alpha = 0.001: Wilson-Hilferty approximation with z = 3.0902 (the
    0.999 normal quantile); within 1% of the exact value for df >= 3 (df = 10: 29.75 vs 29.59)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + 3.0902 * math.sqrt(a)) ** 3


def speculative_samples(temperature, top_k, top_p, recover_from_target=False):
    """One accept_prefix call over a large batch with fixed target rows p and a different
    draft distribution q; returns (drafts [B, k], n [B], out [B, k+1], expected target rows [k+1, V]).
    recover_from_target: the deliberately wrong sampler, recovered token drawn from p_n
    instead of norm(max(0, p_n - q_n))."""
    B, k, V = 30000, 2, 10
    g = torch.Generator().manual_seed(2023)
    target = 0.8 * torch.randn(k + 1, V, generator=g)
    q = torch.softmax(0.8 * torch.randn(k, V, generator=g), -1)  # [k, V] draft distribution, not p
    seeds = row_seeds(11, B)
    drafts = torch.stack([sample_inverse_cdf(q[t].expand(B, V), uniform(seeds, STREAM_DRAFT, t)) for t in range(k)], 1)
    logits = target.expand(B, k + 1, V)
    n, out = accept_prefix(logits, drafts, draft_probs=q.expand(B, k, V), temperature=temperature, top_k=top_k,
                           top_p=top_p, seed=seeds)
    if recover_from_target:
        rows = torch.arange(B)
        p = process_logits(logits, temperature, top_k, top_p)
        wrong = sample_inverse_cdf(p[rows, n], uniform(seeds, STREAM_SAMPLE, 0))
        out[rows, n] = torch.where(n < k, wrong, out[rows, n])
    # the integer p of sampling.fixed_params, which the chain must emit; within its stated bound of the float one
    expected = torch.tensor([reference.fixed_probs_row(row, temperature, top_k, top_p) for row in target.tolist()],
                            dtype=torch.float64)
    softmax = torch.tensor([reference.process_row(row, temperature, top_k, top_p) for row in target.tolist()],
                           dtype=torch.float64)
    assert bool((expected - softmax).abs().le(fixed_point_bound(softmax)).all())
    return drafts, n, out, expected


def fixed_point_bound(softmax: torch.Tensor) -> torch.Tensor:
    """|p_fixed - softmax| [..., V] allowed by sampling.fixed_params's error statement (without top-p):
    2 * 4.5e-8 relative, plus (1 + V * e) * 2^-31 from the weights' last rounding, (1 + 1e-7) on top."""
    V = softmax.shape[-1]
    return (9e-8 * softmax + (1 + V * softmax) * 2.0 ** -31) * (1 + 1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("V", [2, 1000, 49152, 128256])
def test_fixed_point_p_is_softmax_within_its_bound(V, dtype):
    """The integer p (torch_impl.fixed_probs) against the float64 softmax of the same fp32 logits, over
    temperatures from 0.05 to 4 and logit spreads from 0.5 to 8, with and without top-k."""
    from tt_specdec.ops.accept_prefix.torch_impl import fixed_probs, fp32_bits
    from tt_specdec.sampling import fixed_params, process_logits_torch

    g = torch.Generator().manual_seed(V)
    worst = 0.0
    for temperature in (0.05, 0.3, 1.0, 2.5, 4.0):
        for spread in (0.5, 2.0, 8.0):
            logits = (spread * torch.randn(V, generator=g)).to(dtype)
            for top_k in (0, 50):
                scale, shift, _ = fixed_params(temperature, 1.0)
                w, z = fixed_probs(fp32_bits(logits), scale, shift, top_k if top_k < V else 0, 0)
                p = torch.from_numpy(w).double() / int(z)
                softmax = process_logits_torch(logits.float(), temperature, top_k, 1.0)
                error = (p - softmax).abs()
                assert bool(error.le(fixed_point_bound(softmax)).all()), float(error.max())
                assert float(error.sum()) < 1e-7 + V * 2.0 ** -30
                worst = max(worst, float(error.max()))
    assert worst > 0  # the comparison saw the rounding: it can fail


def test_bit_length_where_float64_rounds_up():
    """torch_impl.bit_length takes frexp's exponent: 2^k - 1 past 2^53 rounds up to 2^k, and is corrected."""
    import numpy as np

    from tt_specdec.ops.accept_prefix.torch_impl import bit_length

    values = [0] + [v for k in range(63) for v in ((1 << k) - 1, 1 << k, (1 << k) + 1) if v < 1 << 63]
    assert bit_length(np.array(values, dtype=np.int64)).tolist() == [v.bit_length() for v in values]


EXTREME_LOGITS = [3e38, -3e38, 1e30, -1e30, 7e4, 30.0, 1.0, 1e-40, -1e-40, 1e-45, 0.0, -0.0, -7e4]


@settings(deadline=None, max_examples=60)
@given(V=st.integers(1, 300), temperature=st.sampled_from([1e-30, 0.05, 0.7, 1.0, 3.0, 1e30]),
       top_k=st.integers(0, 40), top_p=st.sampled_from([1.0, 0.9, 0.5, 0.01]),
       kind=st.sampled_from(["normal", "ties", "extreme"]), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]))
def test_fixed_point_p_vectorised_equals_the_plain_loop(V, temperature, top_k, top_p, kind, seed, dtype):
    """One row (the wide rows' path: weights only above torch_impl.weight_cut_key) and a batch of rows, against
    the plain loop; extreme logits (exponents far apart, subnormals, +-0) and temperatures included."""
    import numpy as np

    from tt_specdec.ops.accept_prefix.torch_impl import fixed_probs, fp32_bits
    from tt_specdec.sampling import fixed_params

    g = torch.Generator().manual_seed(seed)
    if kind == "extreme":  # 3 of the values per row: its largest varies, and other tokens keep a weight
        values = torch.tensor(EXTREME_LOGITS)[torch.randperm(len(EXTREME_LOGITS), generator=g)[:3]]
        logits = values[torch.randint(0, 3, (2, V), generator=g)].to(dtype)
    else:
        logits = (torch.randint(-3, 3, (2, V), generator=g) * 0.7 if kind == "ties" else
                  3 * torch.randn(2, V, generator=g)).to(dtype)
    scale, shift, top_p_fixed = fixed_params(temperature, top_p)
    top_k = top_k if top_k < V else 0
    expected = [reference.fixed_row(row, temperature, top_k, top_p) for row in logits.float().tolist()]
    w, _ = fixed_probs(fp32_bits(logits[0]), scale, shift, top_k, top_p_fixed)
    assert w.tolist() == expected[0]
    rows, _ = fixed_probs(fp32_bits(logits), scale, shift, top_k, top_p_fixed)
    assert rows.tolist() == expected
    assert np.count_nonzero(rows) > 0


SAMPLING_SETTINGS = [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8)]


@pytest.mark.parametrize("temperature,top_k,top_p", SAMPLING_SETTINGS)
def test_speculative_sampling_keeps_target_distribution(temperature, top_k, top_p):
    drafts, n, out, p = speculative_samples(temperature, top_k, top_p)
    check_invariants(n[:200], out[:200], drafts[:200], p.shape[1])
    # first token ~ p_0, whether accepted or recovered
    stat, df = chi_square(out[:, 0], p[0])
    assert stat < chi_square_critical(df), (stat, df)
    # once d_1 is accepted the step restarts at row 1: the second token ~ p_1,
    # for all such rows and for those whose first token is one particular value
    accepted = n >= 1
    stat, df = chi_square(out[accepted, 1], p[1])
    assert stat < chi_square_critical(df), (stat, df)
    common = int(torch.bincount(out[accepted, 0]).argmax())
    stat, df = chi_square(out[accepted & (out[:, 0] == common), 1], p[1])
    assert stat < chi_square_critical(df), (stat, df)
    # both drafts accepted: the bonus token ~ p_2
    stat, df = chi_square(out[n == 2, 2], p[2])
    assert stat < chi_square_critical(df), (stat, df)


@pytest.mark.parametrize("temperature,top_k,top_p", SAMPLING_SETTINGS)
def test_chi_square_rejects_a_wrong_residual(temperature, top_k, top_p):
    # the same statistic must catch a sampler that recovers from p_n instead of the residual
    _, _, out, p = speculative_samples(temperature, top_k, top_p, recover_from_target=True)
    stat, df = chi_square(out[:, 0], p[0])
    assert stat > chi_square_critical(df), (stat, df)


def valid_args(B=2, k=3, V=8):
    return torch.zeros(B, k + 1, V), torch.zeros(B, k, dtype=torch.int64)


@pytest.mark.parametrize("make,match", [
    (lambda: (torch.zeros(2, 1, 8), torch.zeros(2, 0, dtype=torch.int64), {}), "target_logits"),  # k = 0
    (lambda: (torch.zeros(2, 33, 8), torch.zeros(2, 32, dtype=torch.int64), {}), "target_logits"),  # k = 32
    (lambda: (torch.zeros(2, 8), torch.zeros(2, 3, dtype=torch.int64), {}), "target_logits"),
    (lambda: (torch.zeros(2, 4, 8).index_fill_(2, torch.tensor([3]), float("nan")), valid_args()[1], {}),
     "target_logits"),
    (lambda: (torch.zeros(2, 4, 8).index_fill_(2, torch.tensor([3]), float("inf")), valid_args()[1], {}),
     "target_logits"),
    # sampling: a NaN in the last row, which drafts rejected at row 0 never reach, is still refused
    (lambda: (torch.zeros(2, 4, 8).index_fill_(1, torch.tensor([3]), float("nan")), torch.full((2, 3), 1),
              dict(temperature=1.0, seed=0)), "target_logits"),
    (lambda: (valid_args()[0], torch.full((2, 3), 8), {}), "draft_tokens"),
    (lambda: (valid_args()[0], torch.full((2, 3), -1), {}), "draft_tokens"),
    (lambda: (valid_args()[0], torch.zeros(2, 2, dtype=torch.int64), {}), "draft_tokens"),
    (lambda: (valid_args()[0], torch.zeros(3, 3, dtype=torch.int64), {}), "draft_tokens"),
    (lambda: (*valid_args(), dict(temperature=-0.5)), "temperature"),
    (lambda: (*valid_args(), dict(temperature=float("nan"))), "temperature"),
    (lambda: (*valid_args(), dict(temperature=1.0, seed=0, top_p=0.0)), "top_p"),
    (lambda: (*valid_args(), dict(temperature=1.0, seed=0, top_p=1.5)), "top_p"),
    (lambda: (*valid_args(), dict(temperature=1.0, seed=0, top_k=-1)), "top_k"),
    (lambda: (*valid_args(), dict(temperature=1.0)), "seed"),
    (lambda: (*valid_args(), dict(temperature=1.0, seed=0, draft_probs=torch.zeros(2, 4, 8))), "draft_probs"),
    (lambda: (*valid_args(), dict(temperature=1.0, seed=0, draft_probs=torch.full((2, 3, 8), float("nan")))),
     "draft_probs"),
    (lambda: (*valid_args(), dict(num_draft=torch.tensor([0, 4]))), "num_draft"),
    (lambda: (*valid_args(), dict(num_draft=torch.tensor([-2, 1]))), "num_draft"),
    (lambda: (*valid_args(), dict(num_draft=torch.tensor([1, 1, 1]))), "num_draft"),
])
def test_bad_inputs_name_the_argument(make, match):
    logits, drafts, kwargs = make()
    with pytest.raises(ValueError, match=match):
        accept_prefix(logits, drafts, **kwargs)


def test_float_draft_tokens_rejected():
    with pytest.raises(TypeError, match="draft_tokens"):
        accept_prefix(valid_args()[0], torch.zeros(2, 3))


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), width=st.integers(1, 70), ties=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_fast_argmax_is_torch_argmax(rows, width, ties, seed):
    """ops.sampling.argmax (a C++ loop for fp32 rows) gives torch.argmax's first maximum, ties included."""
    from tt_specdec.sampling import argmax

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, rows, width, generator=g) * 10 - 20  # all negative: a 0 start would be wrong
    if ties:  # the maximum repeated, anywhere (also in the tail past the last 8 lanes)
        x = x.round().clamp(min=-21)
    assert torch.equal(argmax(x), x.argmax(-1))
    assert argmax(x).flatten().tolist() == [reference.argmax_row(r) for r in x.reshape(-1, width).tolist()]
    assert torch.equal(argmax(x[:, :, ::2]), x[:, :, ::2].argmax(-1))  # not contiguous
    assert torch.equal(argmax(x.double()), x.double().argmax(-1))
    index, prob = argmax(x, with_prob=True)  # a greedy drafter's confidence: the maximum's softmax probability
    assert torch.equal(index, x.argmax(-1))
    assert torch.allclose(prob, torch.softmax(x, -1).amax(-1), rtol=1e-5, atol=0)


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 70), at=st.floats(0, 1, exclude_max=True), bad=st.sampled_from(["nan", "inf", "-inf"]))
def test_fast_argmax_check_names_a_non_finite_argument(width, at, bad):
    """check= finds a NaN or inf anywhere in the row (in the 8- or 16-lane part or the tail) in its max pass."""
    from tt_specdec.sampling import argmax

    x = torch.randn(3, width)
    assert torch.equal(argmax(x, check="scores"), x.argmax(-1))
    x[1, int(at * width)] = float(bad)
    with pytest.raises(ValueError, match="scores: got a non-finite value"):
        argmax(x, check="scores")


def identical_rows(B, V=6, seed=2026):
    """B copies of one step (k = 1): target rows [B, 2, V], the same draft in every row, and the first
    token's distribution p_0 [V] (float64)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(2, V, generator=g)
    return target.expand(B, 2, V).contiguous(), torch.full((B, 1), 2, dtype=torch.int64), \
        process_logits(target[0], 1.0).double()


@pytest.mark.parametrize("op", [accept_prefix, reference.accept_prefix], ids=["torch", "reference"])
def test_an_int_seed_is_one_seed_for_the_call_with_rows_independent(op):
    # the same step in every row: with an int seed the first tokens are B independent samples of p_0
    # (before: every row drew the same uniforms, one token 20,000 times)
    B = 20000 if op is accept_prefix else 4000
    logits, drafts, p0 = identical_rows(B)
    n, out = op(logits, drafts, temperature=1.0, seed=7)
    stat, df = chi_square(out[:, 0], p0)
    assert stat < chi_square_critical(df), (stat, df)
    # an int seed means the row seeds sampling.row_seeds derives from it, as the loop passes them
    n_rows, out_rows = op(logits, drafts, temperature=1.0, seed=row_seeds(7, B))
    assert torch.equal(n, n_rows) and torch.equal(out, out_rows)


# ---- token trees (greedy): the longest accepted root-to-leaf path ---------------------------------

@st.composite
def tree_cases(draw):
    """A random tree whose target follows one of its paths for a while: logits [B, T, V], tokens, parents."""
    B, T, V = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(3, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    parents, tokens = torch.full((B, T), -1), torch.randint(0, V, (B, T), generator=g)
    for b in range(B):
        for t in range(1, T):
            p = int(torch.randint(0, t, (1,), generator=g))
            used = {int(tokens[b, s]) for s in range(1, t) if int(parents[b, s]) == p}
            free = [v for v in range(V) if v not in used]
            if not free:  # every token taken under p: hang the node under its left sibling instead
                p, free = t - 1, list(range(V))
            parents[b, t], tokens[b, t] = p, free[int(torch.randint(0, len(free), (1,), generator=g))]
    logits = torch.randn(B, T, V, generator=g)
    follow = torch.rand(B, T, generator=g) < draw(st.floats(0.0, 1.0))  # the target picks a child here
    for b in range(B):
        for t in range(T):
            children = [c for c in range(T) if int(parents[b, c]) == t]
            if children and bool(follow[b, t]):
                logits[b, t, tokens[b, children[int(torch.randint(0, len(children), (1,), generator=g))]]] += 10.0
    return logits, tokens, parents


@settings(deadline=None, max_examples=150)
@given(tree_cases())
def test_accept_tree_matches_reference_and_states_its_invariants(case):
    from tt_specdec.ops.accept_prefix import accept_tree

    logits, tokens, parents = case
    B, T, _ = logits.shape
    n, out, slots = accept_tree(logits, tokens, parents)
    rn, rout, rslots = reference.accept_tree(logits, tokens, parents)
    assert torch.equal(n, rn) and torch.equal(out, rout) and torch.equal(slots, rslots)
    target = logits.argmax(-1)
    for b in range(B):
        k = int(n[b])
        path = slots[b, :k + 1].tolist()
        assert path[0] == 0 and all(int(parents[b, path[j]]) == path[j - 1] for j in range(1, k + 1)), "a root path"
        assert all(int(out[b, j - 1]) == int(tokens[b, path[j]]) == int(target[b, path[j - 1]]) for j in range(1, k + 1))
        assert int(out[b, k]) == int(target[b, path[k]]), "then the target's own token at the path's end"
        assert (out[b, k + 1:] == PLACEHOLDER).all() and slots[b, k + 1:].tolist() == list(range(k + 1, T))
        assert not any(int(parents[b, c]) == path[k] and int(tokens[b, c]) == int(target[b, path[k]])
                       for c in range(T)), "no child of the end node is accepted: the path is the longest"


@pytest.mark.parametrize("k", [1, 4, 9])
def test_a_chain_tree_is_accept_prefix(k):
    from tt_specdec.ops.accept_prefix import accept_tree

    g = torch.Generator().manual_seed(k)
    for _ in range(20):
        logits, drafts = torch.randn(3, k + 1, 6, generator=g), torch.randint(0, 6, (3, k), generator=g)
        drafts[:, :k // 2] = logits[:, :k // 2].argmax(-1)  # accept a while
        n, out = accept_prefix(logits, drafts)
        tn, tout, slots = accept_tree(logits, torch.cat([torch.zeros(3, 1, dtype=torch.long), drafts], 1),
                                      torch.arange(-1, k).repeat(3, 1))
        assert torch.equal(tn, n) and torch.equal(tout, out)
        assert torch.equal(slots, torch.arange(k + 1).repeat(3, 1)), "a chain needs no compaction"


def test_accepted_path_kv_compacted_by_rollback():
    """rollback_kv's compaction with accept_tree's slots leaves path token j's KV at pos + j."""
    from tt_specdec.ops import rollback_kv
    from tt_specdec.ops.accept_prefix import accept_tree

    parents = torch.tensor([[-1, 0, 0, 2, 2, 4]])  # path 0 -> 2 -> 4 -> 5 when the target follows it
    tokens = torch.tensor([[7, 1, 2, 3, 4, 5]])
    logits = torch.zeros(1, 6, 8)
    logits[0, [0, 2, 4, 5], [2, 4, 5, 6]] = 1.0  # argmax: node 0 -> 2, node 2 -> 4, node 4 -> 5, node 5 -> 6
    n, out, slots = accept_tree(logits, tokens, parents)
    assert int(n) == 3 and out.tolist() == [[2, 4, 5, 6, -1, -1]] and slots.tolist() == [[0, 2, 4, 5, 4, 5]]
    pos = torch.tensor([10])
    k_cache, v_cache = torch.randn(2, 1, 2, 20, 4), torch.randn(2, 1, 2, 20, 4)  # [L, B, Hkv, S, D]
    before_k, before_v = k_cache.clone(), v_cache.clone()
    r = rollback_kv(pos, torch.tensor([7]), n, out, accepted_slots=slots, k_cache=k_cache, v_cache=v_cache)
    assert int(r.pos) == 14 and int(r.last) == 6
    for j, node in enumerate([0, 2, 4, 5]):
        assert torch.equal(k_cache[:, :, :, 10 + j], before_k[:, :, :, 10 + node])
        assert torch.equal(v_cache[:, :, :, 10 + j], before_v[:, :, :, 10 + node])


@pytest.mark.parametrize("change, message", [
    (dict(parents=torch.tensor([[0, 0, 1]])), r"parents: got \[0\] for node 0, expected -1"),
    (dict(parents=torch.tensor([[-1, 0, 2]])), "parents: got parent 2 for node 2 of sequence 0, expected 0 .. 1"),
    (dict(tokens=torch.tensor([[0, 3, 3]]), parents=torch.tensor([[-1, 0, 0]])),
     "tree_tokens: got nodes 1 and 2 of sequence 0 with the same parent and token 3"),
    (dict(tokens=torch.tensor([[0, 3, 9]])), "tree_tokens"),
])
def test_bad_tree_is_named(change, message):
    from tt_specdec.ops.accept_prefix import accept_tree

    args = dict(logits=torch.zeros(1, 3, 5), tokens=torch.tensor([[0, 1, 2]]), parents=torch.tensor([[-1, 0, 1]]))
    args |= change
    with pytest.raises(ValueError, match=message):
        accept_tree(args["logits"], args["tokens"], args["parents"])


# ---- token trees, sampled: recursive rejection over siblings --------------------------------------

@st.composite
def sampled_tree_cases(draw):
    """tree_cases' trees and logits with sampling settings; with draft_probs, siblings may repeat a token."""
    logits, tokens, parents = draw(tree_cases())
    B, T, V = logits.shape
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    draft_probs = None
    if draw(st.booleans()):
        if draw(st.booleans()):  # a node copies its left neighbour's token when they are siblings
            copy = (parents[:, 1:] == parents[:, :-1]) & (torch.rand(B, T - 1, generator=g) < 0.5)
            for t in range(1, T - 1):
                tokens[:, t + 1] = torch.where(copy[:, t], tokens[:, t], tokens[:, t + 1])
        # drafts likely under q, as a drafter's are
        draft_probs = torch.softmax(2.0 * torch.randn(B, T, V, generator=g) + 2.0 * torch.nn.functional.one_hot(
            tokens, V), -1)
    row_seeded = draw(st.booleans())
    seed = torch.randint(0, 2**32, (B,), generator=g) if row_seeded else draw(st.integers(0, 2**32))
    return logits, tokens, parents, dict(draft_probs=draft_probs, temperature=draw(st.sampled_from([0.5, 1.0, 1.7])),
                                         top_k=draw(st.sampled_from([0, 1, 3])), top_p=draw(st.sampled_from([1.0, 0.7])),
                                         seed=seed)


@settings(deadline=None, max_examples=150)
@given(sampled_tree_cases())
def test_sampled_tree_matches_reference_and_states_its_invariants(case):
    from tt_specdec.ops.accept_prefix import accept_tree

    logits, tokens, parents, kwargs = case
    B, T, V = logits.shape
    n, out, slots = accept_tree(logits, tokens, parents, **kwargs)
    rn, rout, rslots = reference.accept_tree(logits, tokens, parents, **kwargs)
    assert torch.equal(n, rn) and torch.equal(out, rout) and torch.equal(slots, rslots)
    for b in range(B):
        k = int(n[b])
        path = slots[b, :k + 1].tolist()
        assert path[0] == 0 and all(int(parents[b, path[j]]) == path[j - 1] for j in range(1, k + 1)), "a root path"
        assert out[b, :k].tolist() == tokens[b, path[1:]].tolist() and 0 <= int(out[b, k]) < V
        assert (out[b, k + 1:] == PLACEHOLDER).all() and slots[b, k + 1:].tolist() == list(range(k + 1, T))
        for node in path[1:]:  # a repeat of an earlier sibling's token is never accepted
            assert int(tokens[b, node]) not in [int(tokens[b, s]) for s in range(1, node)
                                                if int(parents[b, s]) == int(parents[b, node])]


@settings(deadline=None, max_examples=80)
@given(sampling_cases())
def test_a_sampled_chain_tree_is_accept_prefix_bit_for_bit(case):
    from tt_specdec.ops.accept_prefix import accept_tree

    logits, drafts, kwargs = case
    kwargs.pop("num_draft")  # a tree has no per-row k
    n, out = accept_prefix(logits, drafts, **kwargs)
    B, k = drafts.shape
    q = kwargs.pop("draft_probs")
    tree_q = None if q is None else torch.cat([torch.zeros(B, 1, q.shape[2]), q], 1)  # node t + 1 is draft t
    tn, tout, slots = accept_tree(logits, torch.cat([torch.zeros(B, 1, dtype=torch.long), drafts], 1),
                                  torch.arange(-1, k).repeat(B, 1), draft_probs=tree_q, **kwargs)
    assert torch.equal(tn, n) and torch.equal(tout, out)
    assert torch.equal(slots, torch.arange(k + 1).repeat(B, 1)), "a chain needs no compaction"


def test_a_tree_drafted_from_the_target_accepts_its_first_children():
    """q = p at every node: u * p(x) < p(x) for every u < 1, so the first child is always accepted."""
    from tt_specdec.ops.accept_prefix import accept_tree

    parents = torch.tensor([-1, 0, 0, 1, 1, 3]).repeat(64, 1)  # first children: 1, 3, 5
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 6, 7, generator=g)
    q = process_logits(logits, 0.8, 0, 0.9)[:, parents[0].clamp(min=0)]  # node t drawn from p at its parent
    seeds = row_seeds(2, 64)
    tokens = torch.stack([sample_inverse_cdf(q[:, t], uniform(seeds, STREAM_DRAFT, t)) for t in range(6)], 1)
    n, out, slots = accept_tree(logits, tokens, parents, draft_probs=q, temperature=0.8, top_p=0.9, seed=seeds)
    assert n.tolist() == [3] * 64 and slots[:, :4].tolist() == [[0, 1, 3, 5]] * 64


def test_sampled_tree_is_deterministic_when_seeded_and_rows_independent():
    from tt_specdec.ops.accept_prefix import accept_tree

    g = torch.Generator().manual_seed(0)
    B, V = 32, 9
    parents = torch.tensor([-1, 0, 0, 0, 1, 2, 4]).repeat(B, 1)
    logits = torch.randn(B, 7, V, generator=g)
    q = torch.softmax(torch.randn(B, 7, V, generator=g), -1)
    tokens = torch.multinomial(q.view(-1, V), 1, generator=g).view(B, 7)
    kwargs = dict(draft_probs=q, temperature=0.9, top_k=6)
    first = accept_tree(logits, tokens, parents, seed=row_seeds(5, B), **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(first, accept_tree(logits, tokens, parents, seed=5, **kwargs)))
    assert not torch.equal(first[1], accept_tree(logits, tokens, parents, seed=6, **kwargs)[1])
    seeds = row_seeds(5, B)
    for b in (0, 13, 31):  # a row's result does not depend on the rest of the batch
        one = accept_tree(logits[b:b + 1], tokens[b:b + 1], parents[b:b + 1], seed=seeds[b:b + 1], draft_probs=q[b:b + 1],
                          temperature=0.9, top_k=6)
        assert all(torch.equal(x[0], y[b]) for x, y in zip(one, first))


def test_a_tree_without_rows_or_children():
    from tt_specdec.ops.accept_prefix import accept_tree

    # no sequences at all: empty results of the documented shapes, greedy or sampled
    for kwargs in (dict(), dict(temperature=1.0, seed=0, draft_probs=torch.zeros(0, 4, 8))):
        n, out, slots = accept_tree(torch.zeros(0, 4, 8), torch.zeros(0, 4, dtype=torch.long),
                                    torch.zeros(0, 4, dtype=torch.long), **kwargs)
        assert n.shape == (0,) and out.shape == slots.shape == (0, 4) and n.dtype == out.dtype == torch.int64
    # the root alone: plain decoding, the bonus token drawn from p_0 (one-hot here)
    logits = one_hot_logits(torch.tensor([[5], [2]]), 8, scale=1000.0)  # [B = 2, T = 1, V = 8]
    n, out, slots = accept_tree(logits, torch.tensor([[1], [1]]), torch.tensor([[-1], [-1]]), temperature=1.0, seed=3)
    assert n.tolist() == [0, 0] and out.tolist() == [[5], [2]] and slots.tolist() == [[0], [0]]


# The proof: for every drafted tree, tree_output_distribution gives the exact probability of each emitted
# sequence (fractions, no uniforms); summed over the drafter's trees and continued by the target up to the
# tree's depth + 1, it must equal the target's own distribution of that many tokens, exactly.
PROOF_PARENTS = [-1, 0, 0, 0, 1, 1, 4]  # three siblings at the root, two under node 1, depth 3: [T = 7]
PROOF_V = 3
PROOF_LENGTH = 4  # tokens compared: the deepest path (3) and its last token


def path_of(node, parents=PROOF_PARENTS):
    """The nodes from the root's child down to `node` (empty for the root)."""
    return path_of(parents[node], parents) + [node] if node > 0 else []


def random_dist(rng, V, zeros):
    """A random distribution [V] of Fractions; with zeros, some tokens get probability 0 (top-k, top-p)."""
    while True:
        weights = [rng.randint(0 if zeros else 1, 6) for _ in range(V)]
        if sum(weights):
            return [Fraction(x, sum(weights)) for x in weights]


def prefixes(V, depth):
    return [tuple(s) for d in range(depth + 1) for s in itertools.product(range(V), repeat=d)]


def continued(dist, target, length):
    """Emitted sequences {tokens: probability} continued by the target up to `length` tokens: their joint."""
    joint = {}
    todo = list(dist.items())
    while todo:
        seq, pr = todo.pop()
        if len(seq) == length:
            joint[seq] = joint.get(seq, 0) + pr
        else:
            todo += [(seq + (v,), pr * x) for v, x in enumerate(target[seq]) if x]
    return joint


def drafted_trees(q_of, parents=PROOF_PARENTS, V=PROOF_V):
    """Every tree the drafter can propose, with its probability and q rows: (probability, tokens [T], q [T][V]).
    q_of(prefix, earlier sibling tokens) is the distribution a node's token is drawn from."""
    T = len(parents)

    def grow(t, tokens, q, chance):
        if t == T:
            yield chance, tokens, q
            return
        prefix = tuple(tokens[s] for s in path_of(parents[t], parents))
        dist = q_of(prefix, [tokens[s] for s in range(1, t) if parents[s] == parents[t]])
        for x in range(V):
            if dist[x]:
                yield from grow(t + 1, tokens + [x], q + [dist], chance * dist[x])

    return grow(1, [0], [[Fraction(1, V)] * V], Fraction(1))


def method_joint(target, trees, told=None):
    """The method's output over the drafter's trees, continued by the target to PROOF_LENGTH tokens.
    told(q) is the q the method is given (default: the drafter's own)."""
    joint = {}
    for chance, tokens, q in trees:
        p = [target[tuple(tokens[s] for s in path_of(t))] for t in range(len(tokens))]
        dist = reference.tree_output_distribution(p, q if told is None else told(q), tokens, PROOF_PARENTS)
        for seq, pr in continued(dist, target, PROOF_LENGTH).items():
            joint[seq] = joint.get(seq, 0) + chance * pr
    return joint


def one_hot(x, V=PROOF_V):
    return [Fraction(int(v == x)) for v in range(V)]


def without(dist, taken):
    """dist with the tokens already taken removed, renormalised: drawing siblings without replacement."""
    kept = [0 if v in taken else x for v, x in enumerate(dist)]
    return [x / sum(kept) for x in kept]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("drafter", ["deterministic", "deterministic, siblings repeat", "i.i.d. children",
                                     "children without replacement"])
def test_sampled_tree_output_is_exactly_the_target_distribution(drafter, seed):
    rng = random.Random(seed)
    V, depth = PROOF_V, 3
    target = {s: random_dist(rng, V, zeros=True) for s in prefixes(V, depth)}
    base = {s: random_dist(rng, V, zeros=drafter == "i.i.d. children") for s in prefixes(V, depth - 1)}
    expected = continued({(): Fraction(1)}, target, PROOF_LENGTH)
    if drafter.startswith("deterministic"):
        # each fixed tree on its own: all token assignments (repeats: one-hot draft_probs), or distinct siblings
        trees = list(drafted_trees(lambda prefix, taken: [Fraction(1, V)] * V))
        if drafter == "deterministic":
            trees = [t for t in trees if all(t[1][a] != t[1][b] for a in range(1, 7) for b in range(a + 1, 7)
                                             if PROOF_PARENTS[a] == PROOF_PARENTS[b])]
        assert len(trees) == (6 * 6 * 3 if drafter == "deterministic" else 3 ** 6)
        for _, tokens, _ in trees:
            assert method_joint(target, [(1, tokens, [one_hot(x) for x in tokens])]) == expected, tokens
    elif drafter == "i.i.d. children":
        assert method_joint(target, drafted_trees(lambda prefix, taken: base[prefix])) == expected
    else:
        assert method_joint(target, drafted_trees(lambda prefix, taken: without(base[prefix], taken))) == expected


def test_the_proof_rejects_a_q_that_did_not_draw_the_tree():
    """The same enumeration must see the error when the method is told another q than the one that drew the
    drafts: children drawn i.i.d. from q, the method told they were drawn uniformly."""
    rng = random.Random(0)
    target = {s: random_dist(rng, PROOF_V, zeros=True) for s in prefixes(PROOF_V, 3)}
    base = {s: random_dist(rng, PROOF_V, zeros=False) for s in prefixes(PROOF_V, 2)}
    trees = list(drafted_trees(lambda prefix, taken: base[prefix]))
    expected = continued({(): Fraction(1)}, target, PROOF_LENGTH)
    assert method_joint(target, trees) == expected
    wrong = method_joint(target, trees, told=lambda q: [[Fraction(1, PROOF_V)] * PROOF_V] * len(q))
    assert sum(wrong.values()) == 1 and wrong != expected  # still a distribution, not the target's


def lumped_chi_square(ids, probs, min_expected=5.0):
    """chi_square with the least likely bins merged into one until every bin expects min_expected samples
    (the approximation needs ~5 a bin): ids [N] in 0 .. len(probs) - 1, probs [M]."""
    N, merged, mass = ids.shape[0], [], 0.0
    for i in probs.argsort().tolist():  # least likely first
        if N * float(probs[i]) >= min_expected and not 0 < N * mass < min_expected:
            break
        merged.append(i)
        mass += float(probs[i])
    keep = torch.tensor([i for i in range(probs.shape[0]) if i not in merged], dtype=torch.long)
    new_id = torch.full((probs.shape[0],), keep.shape[0], dtype=torch.long)  # merged bins: the last id
    new_id[keep] = torch.arange(keep.shape[0])
    return chi_square(new_id[ids], torch.cat([probs[keep], torch.tensor([mass], dtype=probs.dtype)]))


STAT_PARENTS = [-1, 0, 0, 0, 1, 2]  # [T = 6]: three siblings at the root, one child under each of two
STAT_B, STAT_V = 20000, 4


def stat_case(temperature, top_k, top_p, seed=2024):
    """One drafted tree in every row: logits [T, V], processed p [T, V] (float64), q [T, V], tokens [T] where
    node 3 repeats node 1's token."""
    g = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(6, STAT_V, generator=g)
    q = torch.softmax(1.5 * torch.randn(6, STAT_V, generator=g), -1)
    tokens = torch.tensor([0, 1, 2, 1, 0, 3])
    return logits, process_logits(logits, temperature, top_k, top_p), q, tokens


def emitted_ids(n, out, outcomes):
    """Each row's emitted tokens (out[b, :n+1]) as its index in the list `outcomes`."""
    index = {seq: i for i, seq in enumerate(outcomes)}
    return torch.tensor([index[tuple(row[:k + 1])] for k, row in zip(n.tolist(), out.tolist())])


@pytest.mark.parametrize("temperature,top_k,top_p", SAMPLING_SETTINGS)
@pytest.mark.parametrize("deterministic", [True, False], ids=["one-hot q", "q"])
def test_sampled_tree_draws_what_the_enumeration_says(temperature, top_k, top_p, deterministic):
    """The op's outcomes over 20000 seeds against tree_output_distribution, whose exactness the proof shows:
    Pearson chi-square at alpha = 0.001 (with fixed seeds the test is deterministic; a correct sampler on
    other seeds fails it one time in a thousand)."""
    from tt_specdec.ops.accept_prefix import accept_tree

    logits, p, q, tokens = stat_case(temperature, top_k, top_p)
    if deterministic:
        tokens = torch.tensor([0, 1, 2, 3, 0, 3])  # siblings distinct
    q_rows = [one_hot(x, STAT_V) for x in tokens.tolist()] if deterministic else q.tolist()
    dist = reference.tree_output_distribution(p.tolist(), q_rows, tokens.tolist(), STAT_PARENTS)
    outcomes = sorted(dist)
    B = STAT_B
    n, out, _ = accept_tree(logits.expand(B, 6, STAT_V), tokens.expand(B, 6), torch.tensor(STAT_PARENTS).expand(B, 6),
                            draft_probs=None if deterministic else q.expand(B, 6, STAT_V), temperature=temperature,
                            top_k=top_k, top_p=top_p, seed=row_seeds(17, B))
    stat, df = lumped_chi_square(emitted_ids(n, out, outcomes), torch.tensor([float(dist[s]) for s in outcomes], dtype=torch.float64))
    assert stat < chi_square_critical(df), (stat, df)


def drafted_and_continued(temperature, top_k, top_p, told_uniform=False):
    """The whole step over STAT_B rows: each row drafts STAT_PARENTS' tree i.i.d. from q (node t's token from
    q[t], whatever its path), the target is a function of the prefix (a table), accept_tree emits, and the
    target continues each row's emission to 3 tokens (the depth + 1). Returns the 3-token sequences as ids
    [B] (base V) and the target's joint probabilities of them [V^3]. told_uniform: the method is given a
    uniform q instead of the q that drew the tree."""
    from tt_specdec.ops.accept_prefix import accept_tree

    B, V, T = STAT_B, STAT_V, len(STAT_PARENTS)
    g = torch.Generator().manual_seed(7)
    table = 1.5 * torch.randn(1 + V + V * V, V, generator=g)  # logits after prefix (), (a,), (a, b)
    p_table = process_logits(table, temperature, top_k, top_p)
    q = torch.softmax(1.5 * torch.randn(T, V, generator=g), -1)
    seeds = row_seeds(23, B)
    tokens = torch.stack([torch.zeros(B, dtype=torch.long)] + [sample_inverse_cdf(q[t].expand(B, V), uniform(
        seeds, STREAM_DRAFT, t)) for t in range(1, T)], 1)

    def prefix_row(seq):  # the table row of a prefix of at most 2 tokens
        return 0 if not seq else 1 + seq[0] if len(seq) == 1 else 1 + V + V * seq[0] + seq[1]

    rows = torch.tensor([[prefix_row(tuple(tokens[b, s].item() for s in path_of(t, STAT_PARENTS))) for t in range(T)]
                         for b in range(B)])
    n, out, _ = accept_tree(table[rows], tokens, torch.tensor(STAT_PARENTS).expand(B, T),
                            draft_probs=torch.full((B, T, V), 1.0 / V) if told_uniform else q.expand(B, T, V),
                            temperature=temperature, top_k=top_k, top_p=top_p, seed=seeds)
    seqs = [row[:k + 1] for k, row in zip(n.tolist(), out.tolist())]
    u = torch.rand(B, 3, generator=g, dtype=torch.float64)
    for j in range(3):  # the target's own continuation, token j where the emission stopped short
        short = [b for b in range(B) if len(seqs[b]) == j]
        if short:
            drawn = sample_inverse_cdf(p_table[[prefix_row(tuple(seqs[b])) for b in short]], u[short, j])
            for b, x in zip(short, drawn.tolist()):
                seqs[b].append(x)
    ids = torch.tensor([(a * V + b) * V + c for a, b, c in seqs])
    joint = torch.tensor([float(p_table[0, a] * p_table[prefix_row((a,)), b] * p_table[prefix_row((a, b)), c])
                          for a, b, c in itertools.product(range(V), repeat=3)], dtype=torch.float64)
    return ids, joint


@pytest.mark.parametrize("temperature,top_k,top_p", SAMPLING_SETTINGS)
def test_sampled_tree_step_keeps_the_target_distribution(temperature, top_k, top_p):
    """Drafting, accept_tree and the target's own continuation together: the 3-token sequences against the
    target's joint, Pearson chi-square at alpha = 0.001 (fixed seeds: deterministic; a correct sampler on
    other seeds fails one time in a thousand)."""
    ids, joint = drafted_and_continued(temperature, top_k, top_p)
    stat, df = lumped_chi_square(ids, joint)
    assert stat < chi_square_critical(df), (stat, df)


@pytest.mark.parametrize("temperature,top_k,top_p", SAMPLING_SETTINGS)
def test_the_tree_chi_square_rejects_a_wrong_q(temperature, top_k, top_p):
    ids, joint = drafted_and_continued(temperature, top_k, top_p, told_uniform=True)
    stat, df = lumped_chi_square(ids, joint)
    assert stat > chi_square_critical(df), (stat, df)


def tree_args(**change):
    """A valid sampled accept_tree call (B = 1, T = 3, V = 5), with `change` applied."""
    args = dict(target_logits=torch.zeros(1, 3, 5), tree_tokens=torch.tensor([[0, 1, 2]]),
                parents=torch.tensor([[-1, 0, 0]]), draft_probs=torch.full((1, 3, 5), 0.2), temperature=1.0, seed=0)
    return args | change


@pytest.mark.parametrize("change, error, message", [
    (dict(draft_probs=torch.full((1, 2, 5), 0.2)), ValueError, r"draft_probs: got shape \[1, 2, 5\], expected \[1, 3, 5\]"),
    (dict(draft_probs=torch.full((1, 3, 5), 0.2).index_fill_(2, torch.tensor([1]), -0.1)), ValueError,
     "draft_probs: got -0.1"),
    (dict(draft_probs=torch.full((1, 3, 5), float("nan"))), ValueError, "draft_probs: got a non-finite"),
    # node 2 drew token 2, which its q says is impossible; the root's row is not a draft and may be anything
    (dict(draft_probs=torch.full((1, 3, 5), 0.2).index_fill_(2, torch.tensor([0, 2]), 0.0)), ValueError,
     r"draft_probs: got q=0.0 for the drafted token 2 at \[0, 2\]"),
    (dict(draft_probs=torch.ones(1, 3, 5, dtype=torch.int64)), TypeError, "draft_probs: got dtype torch.int64"),
    (dict(seed=None), ValueError, "seed: got None"),
    (dict(seed=torch.tensor([1, 2])), ValueError, r"seed: got shape \[2\]"),
    (dict(temperature=-1.0), ValueError, "temperature: got -1.0"),
    (dict(top_p=0.0), ValueError, "top_p: got 0.0"),
    (dict(top_k=-2), ValueError, "top_k: got -2"),
    (dict(parents=torch.tensor([[-1.0, 0.0, 0.0]])), TypeError, "parents: got dtype torch.float32"),
    (dict(target_logits=torch.zeros(1, 3, 5, dtype=torch.int64)), TypeError, "target_logits: got dtype torch.int64"),
    # a NaN in a row the walk never reaches (node 2's: node 1 is accepted, a leaf) is still refused
    (dict(target_logits=torch.tensor([[[0.0, 1e3, 0, 0, 0]] * 2 + [[float("nan")] * 5]])), ValueError,
     r"target_logits: got a non-finite value \(NaN or inf\) at index \[0, 2, 0\]"),
    # a deterministic drafter's repeated sibling could never be accepted: refused, as greedy refuses it
    (dict(tree_tokens=torch.tensor([[0, 1, 1]]), draft_probs=None), ValueError,
     r"tree_tokens: got nodes 1 and 2 of sequence 0 with the same parent and token 1, .*deterministic drafter"),
])
def test_bad_sampled_tree_arguments_are_named(change, error, message):
    from tt_specdec.ops.accept_prefix import accept_tree

    args = tree_args(**change)
    with pytest.raises(error, match=message):
        accept_tree(args.pop("target_logits"), args.pop("tree_tokens"), args.pop("parents"), **args)


def test_repeated_siblings_with_draft_probs_are_tested_and_never_accepted():
    """i.i.d. children repeat tokens: allowed with draft_probs. Node 2 repeats node 1's token 1: node 1 is
    accepted with probability p/q = 0.72; where it is rejected the residual is 0 at token 1, and node 2 is
    never accepted."""
    from tt_specdec.ops.accept_prefix import accept_tree

    B = 2000
    args = tree_args(tree_tokens=torch.tensor([[0, 1, 1]]), target_logits=torch.tensor([[[0.0, 2.0, 0, 0, 0]] * 3]),
                     draft_probs=torch.tensor([[[0.025, 0.9, 0.025, 0.025, 0.025]] * 3]))  # p(1) = 0.65 < q(1)
    args = {k: v.expand(B, *v.shape[1:]) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    n, out, slots = accept_tree(args.pop("target_logits"), args.pop("tree_tokens"), args.pop("parents"),
                                **(args | dict(seed=row_seeds(1, B))))
    assert 0 < int((n == 0).sum()) < int((n == 1).sum()), "node 1 accepted in most rows, not in all"
    assert set(slots[n == 1, 1].tolist()) == {1}, "node 2, the repeat, never accepted"
    assert int((out[n == 0, 0] == 1).sum()) == 0, "nor drawn from the residual"
