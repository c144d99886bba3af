"""tt_specdec._cpu's integer rows of the sampled accept rule (csrc/cpu/fixed_rows.cpp) against torch_impl's numpy
(the specification) and reference.py's plain loops, bit for bit; the whole op with the engine against the op
without it; the engine's argument checks."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ops.test_accept_prefix import EXTREME_LOGITS, sampled_tree_cases, sampling_cases
from tt_specdec import _cpu
from tt_specdec.ops.accept_prefix import accept_prefix, accept_tree, reference, torch_impl
from tt_specdec.sampling import exp2_tables, fixed_params


def engine_probs(logits: torch.Tensor, scale: int, shift: int, top_k: int, top_p_fixed: int, tables=None,
                 avx512=True):
    """_cpu.fixed_probs_rows of logits [R, V] (fp32): (w [R, V], z [R]) int64 numpy; avx512=False: its scalar loop
    (else the AVX-512 one where this CPU has it, _cpu.fixed_rows_avx512())."""
    rows = logits.float().contiguous()
    w, z = torch.empty(rows.shape, dtype=torch.int64), torch.empty(rows.shape[0], dtype=torch.int64)
    finite = _cpu.fixed_probs_rows(rows, scale, shift, top_k, top_p_fixed,
                                   torch_impl.exp2_table_tensor() if tables is None else tables, w, z, avx512=avx512)
    assert finite
    return w.numpy(), z.numpy()


def logit_rows(kind: str, R: int, V: int, dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """[R, V]: normal (3 randn), ties (a few values, many repeats) or extreme (3 of EXTREME_LOGITS a row: exponents
    far apart, subnormals, +-0, near fp32's limit), in dtype."""
    if kind == "extreme":
        values = torch.tensor(EXTREME_LOGITS)[torch.randperm(len(EXTREME_LOGITS), generator=g)[:3]]
        return values[torch.randint(0, 3, (R, V), generator=g)].to(dtype)
    if kind == "ties":
        return (torch.randint(-3, 3, (R, V), generator=g) * 0.7).to(dtype)
    return (3 * torch.randn(R, V, generator=g)).to(dtype)


@settings(deadline=None, max_examples=80)
@given(R=st.integers(1, 4), V=st.integers(1, 200),
       temperature=st.sampled_from([1e-300, 1e-30, 0.05, 0.7, 1.0, 3.0, 1e30, 1e300]),
       top_k=st.sampled_from([0, 1, 2, 5, 40, 199]), top_p=st.sampled_from([1.0, 1 - 2**-30, 0.9, 0.5, 0.01, 1e-9]),
       kind=st.sampled_from(["normal", "ties", "extreme"]), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]))
def test_engine_weights_equal_numpy_and_the_plain_loop(R, V, temperature, top_k, top_p, kind, seed, dtype):
    """fixed_probs_rows = torch_impl.fixed_probs (all rows at once, and one row: the wide rows' path) =
    reference.fixed_row, over extreme temperatures and logits, ties, top-k / top-p at their edges, R > 1."""
    logits = logit_rows(kind, R, V, dtype, torch.Generator().manual_seed(seed))
    scale, shift, top_p_fixed = fixed_params(temperature, top_p)
    top_k = top_k if top_k < V else 0
    w, z = engine_probs(logits, scale, shift, top_k, top_p_fixed)
    spec_w, spec_z = torch_impl.fixed_probs(torch_impl.fp32_bits(logits), scale, shift, top_k, top_p_fixed)
    assert np.array_equal(w, spec_w) and np.array_equal(z, spec_z)
    scalar_w, scalar_z = engine_probs(logits, scale, shift, top_k, top_p_fixed, avx512=False)
    assert np.array_equal(scalar_w, spec_w) and np.array_equal(scalar_z, spec_z)
    assert np.array_equal(w[0], torch_impl.fixed_probs(torch_impl.fp32_bits(logits[0]), scale, shift, top_k,
                                                       top_p_fixed)[0])
    assert w.tolist() == [reference.fixed_row(row, temperature, top_k, top_p) for row in logits.float().tolist()]
    assert (z > 0).all()


@pytest.mark.parametrize("V,temperature,top_k,top_p", [(49152, 0.8, 0, 1.0), (49152, 0.8, 50, 0.9),
                                                       (128256, 0.8, 0, 0.9), (128256, 1e-3, 0, 0.5)])
def test_engine_weights_of_wide_rows_equal_numpy(V, temperature, top_k, top_p):
    """Full-size vocabularies (bf16 logits: many ties), against the numpy of one wide row and of a batch."""
    logits = logit_rows("normal", 2, V, torch.bfloat16, torch.Generator().manual_seed(V))
    scale, shift, top_p_fixed = fixed_params(temperature, top_p)
    w, z = engine_probs(logits, scale, shift, top_k, top_p_fixed)
    assert np.array_equal(w, engine_probs(logits, scale, shift, top_k, top_p_fixed, avx512=False)[0])
    for r in range(2):
        spec_w, spec_z = torch_impl.fixed_probs(torch_impl.fp32_bits(logits[r]), scale, shift, top_k, top_p_fixed)
        assert np.array_equal(w[r], spec_w) and z[r] == spec_z
    assert np.array_equal(w, torch_impl.fixed_probs(torch_impl.fp32_bits(logits), scale, shift, top_k, top_p_fixed)[0])


def test_the_engine_reads_the_tables_it_is_given():
    """One definition of the constants: the tables are sampling.exp2_tables(), passed in; other tables give other
    weights (so none are compiled into the engine)."""
    assert torch_impl.exp2_table_tensor().tolist() == [list(t) for t in exp2_tables()]
    logits = torch.tensor([[0.0, -0.3, -1.1, -2.5]])
    scale, shift, _ = fixed_params(1.0, 1.0)
    w, _ = engine_probs(logits, scale, shift, 0, 0)
    other = torch_impl.exp2_table_tensor().clone()
    other[0, 1:] -= 1
    w_other, _ = engine_probs(logits, scale, shift, 0, 0, tables=other)
    assert w[0, 0] == w_other[0, 0] == 2**31 and not np.array_equal(w, w_other)


@settings(deadline=None, max_examples=60)
@given(R=st.integers(1, 4), V=st.integers(1, 120), q_kind=st.sampled_from(["softmax", "one-hot", "extreme"]),
       temperature=st.sampled_from([0.05, 1.0, 3.0]), seed=st.integers(0, 2**31 - 1))
def test_engine_residuals_equal_numpy_and_the_plain_loop(R, V, q_kind, temperature, seed):
    """residual_rows = torch_impl.residual_weights = reference.residual_fixed (which also keeps r where the residual
    is all 0, as the callers do): softmax q, one-hot q (q >= 1 gives 0), q with subnormals, zeros, values near 1."""
    g = torch.Generator().manual_seed(seed)
    logits = logit_rows("normal", R, V, torch.float32, g)
    scale, shift, top_p_fixed = fixed_params(temperature, 0.9)
    pw, z = torch_impl.fixed_probs(torch_impl.fp32_bits(logits), scale, shift, 0, top_p_fixed)
    if q_kind == "softmax":
        q = torch.softmax(2 * torch.randn(R, V, generator=g), -1)
    elif q_kind == "one-hot":
        q = torch.nn.functional.one_hot(torch.randint(0, V, (R,), generator=g), V).float()
    else:
        q = torch.tensor([1e-45, 0.0, 1.0 - 2**-24, 0.5, 1e-38, 2**-40])[torch.randint(0, 6, (R, V), generator=g)]
    out = torch.empty(R, V, dtype=torch.int64)
    _cpu.residual_rows(torch.from_numpy(pw), torch.from_numpy(z), q, out)
    q_bits = q.view(torch.int32).numpy().astype(np.int64) & torch_impl.MASK32
    assert np.array_equal(out.numpy(), torch_impl.residual_weights(pw, z[:, None], q_bits))
    kept = [row if sum(row) > 0 else p for row, p in zip(out.tolist(), pw.tolist())]  # the callers' all-zero rule
    assert kept == [reference.residual_fixed(p, qr) for p, qr in zip(pw.tolist(), q.tolist())]


@settings(deadline=None, max_examples=60)
@given(R=st.integers(1, 4), V=st.integers(1, 120), zeros=st.floats(0, 0.95), big=st.booleans(),
       u_kind=st.sampled_from(["random", "0", "max"]), seed=st.integers(0, 2**31 - 1))
def test_engine_draws_equal_numpy_and_the_plain_loop(R, V, zeros, big, u_kind, seed):
    """sample_fixed_rows = torch_impl.sample_fixed = reference.sample_fixed: rows with zeros (all zeros too), weights
    up to 2^31 (sums past 2^32), uniforms at their ends."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(0, 2**31 + 1 if big else 5, (R, V), generator=g) * (torch.rand(R, V, generator=g) >= zeros)
    u = {"random": torch.randint(0, 2**24, (R,), generator=g), "0": torch.zeros(R, dtype=torch.int64),
         "max": torch.full((R,), 2**24 - 1)}[u_kind]
    out = torch.empty(R, dtype=torch.int64)
    _cpu.sample_fixed_rows(w, u, out)
    assert out.tolist() == [torch_impl.sample_fixed(row.numpy(), int(ub)) for row, ub in zip(w, u)]
    assert out.tolist() == [reference.sample_fixed(row.tolist(), int(ub)) for row, ub in zip(w, u)]


@pytest.fixture
def without_engine(monkeypatch):
    """torch_impl as where tt_specdec._cpu lacks the integer rows: numpy alone."""
    monkeypatch.setattr(torch_impl, "engine", lambda: None)


def both_paths(call, monkeypatch):
    """call() with the engine, then with numpy alone."""
    with_engine = call()
    monkeypatch.setattr(torch_impl, "engine", lambda: None)
    without = call()
    monkeypatch.undo()
    return with_engine, without


@settings(deadline=None, max_examples=30)
@given(case=sampling_cases(), V=st.sampled_from([None, 2049, 5000]), dtype=st.sampled_from([torch.float32,
                                                                                           torch.bfloat16]))
def test_accept_prefix_with_the_engine_is_without_it(case, V, dtype):
    """The op, sampled, engine or numpy: the same tokens; narrow rows (all at once) and wide rows (row by row:
    V > torch_impl.SMALL_ROW), draft probs and one-hot, B > 1, bf16 and fp32 logits."""
    logits, drafts, kwargs = case
    if V is not None:  # the same case widened: drafts and q stay in the first columns
        B, k1, V0 = logits.shape
        g = torch.Generator().manual_seed(V0)
        logits = torch.cat([logits, 2 * torch.randn(B, k1, V - V0, generator=g)], -1)
        if kwargs["draft_probs"] is not None:
            kwargs["draft_probs"] = torch.cat([kwargs["draft_probs"], torch.zeros(B, k1 - 1, V - V0)], -1)
    logits = logits.to(dtype)
    mp = pytest.MonkeyPatch()
    (n, out), (spec_n, spec_out) = both_paths(lambda: accept_prefix(logits, drafts, **kwargs), mp)
    assert torch.equal(n, spec_n) and torch.equal(out, spec_out)


@settings(deadline=None, max_examples=30)
@given(sampled_tree_cases())
def test_accept_tree_with_the_engine_is_without_it(case):
    logits, tokens, parents, kwargs = case
    mp = pytest.MonkeyPatch()
    got, spec = both_paths(lambda: accept_tree(logits, tokens, parents, **kwargs), mp)
    assert all(torch.equal(a, b) for a, b in zip(got, spec))


def test_non_finite_logits_are_named_on_the_engine_path():
    """The engine checks finiteness in its key pass; torch_impl then names the first bad index."""
    logits = torch.zeros(1, 3000)
    logits[0, 2500] = float("nan")
    scale, shift, top_p_fixed = fixed_params(1.0, 0.9)
    with pytest.raises(ValueError, match="target_logits"):
        torch_impl.probs_of(logits, scale, shift, 0, top_p_fixed)


def _calls():
    """(name, call, message) for each argument the integer rows refuse at the C++ boundary (csrc/cpu/calls.cpp)."""
    x, w, z = torch.zeros(3, 5), torch.zeros(3, 5, dtype=torch.int64), torch.zeros(3, dtype=torch.int64)
    t = torch_impl.exp2_table_tensor()
    scale, shift, _ = fixed_params(1.0, 1.0)
    return [
        ("probs x dtype", lambda: _cpu.fixed_probs_rows(x.double(), scale, shift, 0, 0, t, w, z),
         r"x: got dtype torch.float64, expected torch.float32"),
        ("probs x rank", lambda: _cpu.fixed_probs_rows(x[0], scale, shift, 0, 0, t, w, z),
         r"x: got shape \[5\], expected \[R, V\] = \[\*, \*\]"),
        ("probs x empty rows", lambda: _cpu.fixed_probs_rows(x[:, :0], scale, shift, 0, 0, t, w[:, :0], z),
         r"x: got shape \[3, 0\], expected \[R, V\] with 1 <= V < 2\^31"),
        ("probs scale", lambda: _cpu.fixed_probs_rows(x, 2**31, shift, 0, 0, t, w, z),
         r"scale: got 2147483648, expected 2\^30 <= scale < 2\^31"),
        ("probs shift", lambda: _cpu.fixed_probs_rows(x, scale, 10**6, 0, 0, t, w, z),
         r"shift: got 1000000, expected -4096 \.\. 4096"),
        ("probs top_k", lambda: _cpu.fixed_probs_rows(x, scale, shift, -1, 0, t, w, z),
         r"top_k: got -1, expected an integer >= 0"),
        ("probs top_p_fixed", lambda: _cpu.fixed_probs_rows(x, scale, shift, 0, 2**32, t, w, z),
         r"top_p_fixed: got 4294967296, expected 0 \.\. 2\^32 - 1"),
        ("probs tables shape", lambda: _cpu.fixed_probs_rows(x, scale, shift, 0, 0, t[:2], w, z),
         r"tables: got shape \[2, 256\], expected \[3, 256\] = \[3, 256\]"),
        ("probs tables values", lambda: _cpu.fixed_probs_rows(x, scale, shift, 0, 0, t * 2, w, z),
         r"tables: got 4294967296 at 0, expected values in 0 \.\. 2\^31"),
        ("probs w dtype", lambda: _cpu.fixed_probs_rows(x, scale, shift, 0, 0, t, w.int(), z),
         r"w: got dtype torch.int32, expected torch.int64"),
        ("probs z shape", lambda: _cpu.fixed_probs_rows(x, scale, shift, 0, 0, t, w, z[:2]),
         r"z: got shape \[2\], expected \[R\] = \[3\]"),
        ("residual q dtype", lambda: _cpu.residual_rows(w, z, x.double(), w.clone()),
         r"q: got dtype torch.float64, expected torch.float32"),
        ("residual out strides", lambda: _cpu.residual_rows(w, z, x, torch.zeros(5, 3, dtype=torch.int64).t()),
         r"out: got strides \[1, 3\], expected contiguous strides \[5, 1\]"),
        ("residual z negative", lambda: _cpu.residual_rows(w, z - 1, x, w.clone()),
         r"z: got -1 at row 0, expected a sum of weights >= 0"),
        ("sample w dtype", lambda: _cpu.sample_fixed_rows(x, z, z.clone()),
         r"w: got dtype torch.float32, expected torch.int64"),
        ("sample u range", lambda: _cpu.sample_fixed_rows(w, z + 2**24, z.clone()),
         r"u: got 16777216 at row 0, expected 0 \.\. 2\^24 - 1"),
        ("sample out shape", lambda: _cpu.sample_fixed_rows(w, z, z[:1].clone()),
         r"out: got shape \[1\], expected \[R\] = \[3\]"),
    ]


@pytest.mark.parametrize("case", range(len(_calls())), ids=[c[0] for c in _calls()])
def test_integer_rows_refuse_a_wrong_argument_naming_it(case):
    _, call, message = _calls()[case]
    with pytest.raises(ValueError, match=message):
        call()
