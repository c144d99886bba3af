"""accept_prefix: output invariants, named edge cases, vectorized == plain-loop reference
(greedy and seeded sampling), a chi-square test that speculative sampling keeps the
target's distribution, and argument checks."""
import math

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
