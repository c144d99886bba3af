"""The fused sampling rows of tt_specdec._cpu against their torch definitions (ops.sampling's *_torch):
process_logits' probabilities to rounding with the same support, top-p's kept set exactly (ties at
the cut included), and the draw exactly."""
import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tt_specdec import _cpu
from tt_specdec.sampling import (nucleus, process_logits, process_logits_torch, sample_inverse_cdf,
                                     sample_inverse_cdf_torch)

TIES = ["none", "rounded", "plateau"]


def logits_rows(rows: int, V: int, scale: float, ties: str, seed: int) -> torch.Tensor:
    """[rows, V] fp32 logits; "rounded" and "plateau" make ties, a plateau one the top-p cut may fall inside."""
    x = torch.randn(rows, V, generator=torch.Generator().manual_seed(seed)) * scale
    if ties == "rounded":
        x = x.round()
    elif ties == "plateau":
        x[:, : max(1, V // 3)] = x.max() + 1.0
    return x


@settings(max_examples=200, deadline=None)
@given(V=st.integers(1, 700), scale=st.floats(0.0, 30.0), ties=st.sampled_from(TIES),
       temperature=st.floats(0.05, 3.0), top_k=st.integers(0, 50), top_p=st.floats(0.01, 1.0),
       seed=st.integers(0, 2**31 - 1))
@example(V=5, scale=0.0, ties="plateau", temperature=2.5, top_k=0, top_p=0.5, seed=0)  # a tie across the tail
def test_probs_rows_match_process_logits_torch(V, scale, ties, temperature, top_k, top_p, seed):
    x = logits_rows(3, V, scale, ties, seed)
    ours, ref = process_logits(x, temperature, top_k, top_p), process_logits_torch(x, temperature, top_k, top_p)
    assert ours.dtype == torch.float64 and ours.shape == x.shape
    # the two exps differ in the last bits: a token whose mass before it is within rounding of top_p may
    # fall on either side of the cut (ties are not such tokens: equal logits give equal values in each)
    unfiltered = process_logits_torch(x, temperature, top_k)
    sorted_p = torch.sort(unfiltered, dim=-1, descending=True, stable=True).values
    assume(top_p == 1.0 or not bool(((torch.cumsum(sorted_p, -1) - sorted_p - top_p).abs() < 1e-12).any()))
    assert torch.equal(ours > 0, ref > 0)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("V", range(1, 14))
def test_equal_logits_get_equal_probabilities_wherever_they_sit(V):
    """Every position, in a 4-lane block or in the tail, goes through the same exp: top-p's ties are then
    broken by index alone (an exp of its own for the tail had kept index 4 before index 2)."""
    x = torch.zeros(1, V)
    x[0, 0] = 1.0
    p = process_logits(x, 2.5)[0]
    assert len(set(p[1:].tolist())) <= 1
    keep = process_logits(x, 2.5, 0, 0.5)[0] > 0
    assert torch.equal(keep, process_logits_torch(x, 2.5, 0, 0.5)[0] > 0)


@settings(max_examples=200, deadline=None)
@given(V=st.integers(1, 3000), scale=st.floats(0.0, 12.0), ties=st.sampled_from(TIES),
       top_p=st.floats(0.01, 0.999999), seed=st.integers(0, 2**31 - 1))
def test_nucleus_rows_keep_the_full_sorts_set(V, scale, ties, top_p, seed):
    """The C++ nucleus reads the cut from the tokens above a power-of-two level; a stable sort of the whole
    row keeps exactly the same tokens, ties at the cut in index order."""
    p = torch.softmax(logits_rows(3, V, scale, ties, seed).double(), -1)
    ours = p.clone()
    _cpu.nucleus_rows(ours, top_p)
    keep = nucleus(p, top_p)
    assert torch.equal(ours > 0, keep & (p > 0))
    torch.testing.assert_close(ours, torch.where(keep, p, 0.0) / torch.where(keep, p, 0.0).sum(-1, keepdim=True),
                               rtol=1e-12, atol=0)


def test_nucleus_rows_fall_back_to_the_full_sort_near_top_p_one():
    """top_p within 1e-9 of the whole mass: no level is safe, every token is sorted (still exact)."""
    p = torch.softmax(torch.randn(2, 500, generator=torch.Generator().manual_seed(3)).double() * 4, -1)
    for top_p in (1 - 1e-12, 1 - 1e-10):
        ours = p.clone()
        _cpu.nucleus_rows(ours, top_p)
        assert torch.equal(ours > 0, nucleus(p, top_p))


@settings(max_examples=200, deadline=None)
@given(V=st.integers(1, 2000), zeros=st.floats(0.0, 0.99), seed=st.integers(0, 2**31 - 1))
def test_sample_rows_draw_the_same_ids_as_the_cumsum(V, zeros, seed):
    """Unnormalised rows with zeros, uniforms on the 2^-24 grid (0 included): the same ids as cumsum + searchsorted."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(4, V, generator=g, dtype=torch.float64) * (torch.rand(4, V, generator=g) >= zeros)
    p[0, -1] = max(float(p[0, -1]), 1e-3)  # a row with mass at its end
    u = (torch.randint(0, 1 << 24, (4,), generator=g) * (1.0 / (1 << 24))).double()
    u[1] = 0.0
    assert torch.equal(sample_inverse_cdf(p, u), sample_inverse_cdf_torch(p, u))


def test_sample_rows_broadcast_a_uniform_and_keep_the_leading_shape():
    p = torch.softmax(torch.randn(2, 3, 50, dtype=torch.float64), -1)
    u = torch.tensor(0.37, dtype=torch.float64)
    ids = sample_inverse_cdf(p, u)
    assert ids.shape == (2, 3) and torch.equal(ids, sample_inverse_cdf_torch(p, u))


@pytest.mark.parametrize("x", [-745.5, -745.0, -744.0, -708.5, -700.0, -300.0, -20.0, -1.0, -1e-3, 0.0])
def test_probs_rows_exp_underflows_as_libm_does(x):
    """A two-token row [0, x]: exp(x) down into the denormals, 0 past them, as torch's exp."""
    row = torch.tensor([[0.0, x]])
    torch.testing.assert_close(process_logits(row, 1.0), process_logits_torch(row, 1.0), rtol=1e-13, atol=1e-323)


@settings(max_examples=100, deadline=None)
@given(B=st.integers(1, 9), k=st.integers(1, 8), seed=st.integers(0, 2**32 - 1), counter=st.integers(-2**40, 2**40))
def test_small_hashes_as_python_ints_equal_the_array_path(B, k, seed, counter):
    """The counter hash of a few values (Python ints) and of arrays (numpy uint64) give the same integers,
    broadcast, negative and wide counters included."""
    import numpy as np

    from tt_specdec import sampling

    seeds = np.array([(seed + 7919 * b) % 2**32 for b in range(B)], dtype=np.int64).reshape(B, 1)
    args = (seeds, 3, np.arange(k).reshape(1, k) + counter)
    small = sampling._hash(*args)
    old, sampling.SMALL_HASH = sampling.SMALL_HASH, 0
    try:
        arrays = sampling._hash(*args)
    finally:
        sampling.SMALL_HASH = old
    assert small.shape == arrays.shape == (B, k) and np.array_equal(small, arrays)


def _row_calls():
    """(name, call, message) for each argument the sampling rows refuse at the C++ boundary (csrc/cpu/calls.cpp)."""
    import numpy as np

    x, p = torch.zeros(3, 5), torch.full((3, 5), 0.2, dtype=torch.float64)
    ids, u = torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.float64)
    return [
        ("probs x dtype", lambda: _cpu.probs_rows(x.double(), 1.0, 0, 1.0, p),
         r"x: got dtype torch.float64, expected torch.float32"),
        ("probs x strides", lambda: _cpu.probs_rows(torch.zeros(5, 3).t(), 1.0, 0, 1.0, p),
         r"x: got strides \[1, 3\], expected contiguous strides \[5, 1\]"),
        ("probs x rank", lambda: _cpu.probs_rows(torch.zeros(5), 1.0, 0, 1.0, p),
         r"x: got shape \[5\], expected \[R, V\] = \[\*, \*\]"),
        ("probs x numpy", lambda: _cpu.probs_rows(np.zeros((3, 5), np.float32), 1.0, 0, 1.0, p),
         r"x: got ndarray, expected a torch.Tensor"),
        ("probs x empty rows", lambda: _cpu.probs_rows(torch.zeros(3, 0), 1.0, 0, 1.0, torch.zeros(3, 0).double()),
         r"x: got shape \[3, 0\], expected \[R, V\] with V >= 1"),
        ("probs out shape", lambda: _cpu.probs_rows(x, 1.0, 0, 1.0, p[:2]),
         r"out: got shape \[2, 5\], expected \[R, V\] = \[3, 5\]"),
        ("probs out dtype", lambda: _cpu.probs_rows(x, 1.0, 0, 1.0, p.float()),
         r"out: got dtype torch.float32, expected torch.float64"),
        ("probs temperature 0", lambda: _cpu.probs_rows(x, 0.0, 0, 1.0, p), r"temperature: got 0.0+, expected"),
        ("probs temperature NaN", lambda: _cpu.probs_rows(x, float("nan"), 0, 1.0, p), r"temperature: got nan"),
        ("probs top_k", lambda: _cpu.probs_rows(x, 1.0, -1, 1.0, p), r"top_k: got -1, expected an integer >= 0"),
        ("probs top_p", lambda: _cpu.probs_rows(x, 1.0, 0, 0.0, p), r"top_p: got 0.0+, expected a value in \(0, 1\]"),
        ("argmax out dtype", lambda: _cpu.argmax_rows(x, ids.int()),
         r"out: got dtype torch.int32, expected torch.int64"),
        ("argmax prob shape", lambda: _cpu.argmax_rows(x, ids, torch.zeros(2)),
         r"prob: got shape \[2\], expected \[M\] = \[3\]"),
        ("nucleus p dtype", lambda: _cpu.nucleus_rows(p.float(), 0.5), r"p: got dtype torch.float32, expected"),
        ("nucleus top_p", lambda: _cpu.nucleus_rows(p, 1.5), r"top_p: got 1.50+, expected a value in \(0, 1\]"),
        ("sample u length", lambda: _cpu.sample_rows(p, u[:1], ids), r"u: got shape \[1\], expected \[R\] = \[3\]"),
        ("sample u strides", lambda: _cpu.sample_rows(p, torch.zeros(6, dtype=torch.float64)[::2], ids),
         r"u: got strides \[2\], expected contiguous strides \[1\]"),
        ("sample out dtype", lambda: _cpu.sample_rows(p, u, ids.double()),
         r"out: got dtype torch.float64, expected torch.int64"),
    ]


@pytest.mark.parametrize("case", range(len(_row_calls())), ids=[c[0] for c in _row_calls()])
def test_rows_refuse_a_wrong_tensor_naming_it(case):
    """The rows read and write through raw pointers: each tensor is checked first (dtype, shape, contiguous CPU
    memory) and the scalars that would make them compute nonsense, with a ValueError naming the argument."""
    _, call, message = _row_calls()[case]
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("x,temperature,expected", [
    ([1.0, 2.0, 30.0], 1e-30, [0.0, 0.0, 1.0]),  # issue 15: NaN when the max was scaled after the subtraction
    ([1.0, 2.0, 30.0], 1e-18, [0.0, 0.0, 1.0]),
    ([30.0, 1.0, 30.0], 1e-300, [0.5, 0.0, 0.5]),  # a tie at the top keeps both, equally
    ([-5.0, -7.0, -5.5], 1e-20, [1.0, 0.0, 0.0]),
    ([3e38, 1e38, -3e38, 3e38], 0.7, [0.5, 0.0, 0.0, 0.5]),  # logits near the float32 limit
    ([1.0, 2.0, 30.0], 1e300, [1 / 3, 1 / 3, 1 / 3]),
])
def test_probs_rows_at_extreme_temperatures_and_logits(x, temperature, expected):
    row = torch.tensor([x])
    for top_k, top_p in ((0, 1.0), (2, 1.0), (0, 0.5)):
        ref = process_logits_torch(row, temperature, top_k, top_p)
        torch.testing.assert_close(process_logits(row, temperature, top_k, top_p), ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(process_logits(row, temperature)[0], torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-12, atol=0)


def test_probs_rows_at_a_denormal_temperature_give_the_limit():
    """x / 1e-310 overflows float64: process_logits_torch's ops give NaN there; the rows give the limit (the
    temperature -> 0 one-hot on the largest logits)."""
    assert torch.equal(process_logits(torch.tensor([[1.0, 30.0, 2.0, 30.0]]), 1e-310),
                       torch.tensor([[0.0, 0.5, 0.0, 0.5]], dtype=torch.float64))


@settings(max_examples=300, deadline=None)
@given(V=st.integers(1, 300), log_scale=st.floats(-3.0, 38.0), ties=st.sampled_from(TIES),
       log_t=st.floats(-300.0, 300.0), top_k=st.integers(0, 20), top_p=st.floats(0.01, 1.0),
       seed=st.integers(0, 2**31 - 1))
@example(V=3, log_scale=1.0, ties="none", log_t=-30.0, top_k=0, top_p=1.0, seed=0)
def test_probs_rows_match_process_logits_torch_at_any_temperature(V, log_scale, ties, log_t, top_k, top_p, seed):
    """Temperatures 1e-300..1e300 and logits up to ~1e38, wherever x / T stays finite in float64 (the torch
    definition's own range). The torch ops round x / T before subtracting the max: their values carry an error
    of ~|x / T| 2^-53 in the exponent, which is what the tolerance allows beyond 1e-12; a token with nonzero
    probability is either tied with the max (no error in either) or within 745 / 2^-25 of it in x / T."""
    x = logits_rows(3, V, 1.0, ties, seed) * 10.0 ** log_scale
    x = x.clamp(-3e38, 3e38)
    temperature = 10.0 ** log_t
    top = float(x.abs().max()) / temperature
    assume(top < 1e300)
    ours, ref = process_logits(x, temperature, top_k, top_p), process_logits_torch(x, temperature, top_k, top_p)
    rtol = 1e-12 + 4 * 2.0 ** -53 * min(top, 745 * 2.0 ** 25)
    if top_p < 1.0:  # a token whose mass before it is within the tolerance of top_p may fall on either side
        sorted_p = torch.sort(process_logits_torch(x, temperature, top_k), dim=-1, descending=True, stable=True).values
        assume(not bool(((torch.cumsum(sorted_p, -1) - sorted_p - top_p).abs() < 4 * rtol).any()))
    assert not ours.isnan().any()
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=1e-300)


@settings(max_examples=100, deadline=None)
@given(V=st.integers(2, 500), log_t=st.floats(-300.0, -12.0), seed=st.integers(0, 2**31 - 1),
       u=st.integers(0, 2**24 - 1))
def test_a_draw_at_a_vanishing_temperature_is_the_argmax(V, log_t, seed, u):
    """Every other token's weight underflows: any uniform draws the (unique) largest logit, as greedy does
    (before the fix, NaN probabilities made every draw the last id, V - 1)."""
    x = torch.randn(2, V, generator=torch.Generator().manual_seed(seed)) * 4
    assume(bool((x.topk(2, -1).values.diff(dim=-1).abs() > 1e-3).all()))
    uniforms = torch.full((2,), u / 2**24, dtype=torch.float64)
    assert torch.equal(sample_inverse_cdf(process_logits(x, 10.0 ** log_t), uniforms), x.argmax(-1))
