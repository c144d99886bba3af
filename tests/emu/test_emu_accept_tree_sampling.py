"""Sampled accept_tree kernels (reader_accept_prefix_sampling.cpp, writer_accept_tree_sampling.cpp: recursive
rejection over siblings) on the emulator against the torch op and the plain-loop reference, bit for bit:
random trees (T 1..16) over B 1..3, edge vocabularies split over 1..8 cores and SmolLM2's 49,152, bf16 and
fp32, temperature / top-k / top-p with top-p's boundaries (ties at the nucleus key across cores, a target
met exactly), i.i.d. siblings repeating tokens, q = p (every rejection of probability 0); a chain passed as a
tree gives accept_prefix's sampled result on both backends; each reached row is read once; bad input is
refused as on the torch backend."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec.ops import accept_prefix
from tt_specdec.ops.accept_prefix import accept_tree, reference
from tt_specdec.ops.accept_prefix.program import accept_tree_sampling_emu, split_vocab
from tt_specdec.ops.accept_prefix.reference import random_tree
from tt_specdec.ops.verify_attention.reference import random_parents
from tt_specdec.runtime import emu
from tt_specdec.sampling import process_logits

VOCABS = [1, 2, 31, 33, 100, 2047, 2049, 4103]


def make_tree(B, T, V, dtype, seed, draft_kind):
    """Logits [B, T, V], tree_tokens [B, T], parents [B, T] and draft_probs [B, T, V] | None.
    draft_kind: 'sampled' (q a softmax per node, its token drawn from it: siblings may repeat), 'target' (q
    the target's own p at the parent, temperature 1: a rejection leaves r all zero where p = q), 'deterministic'
    (no q, distinct siblings, paths likely accepted), 'ties' (logits from 6 values: the k-th largest and the
    nucleus edge shared by many tokens; no q)."""
    if draft_kind in ("deterministic", "ties"):
        logits, tokens, parents = random_tree(B, T, V, dtype, seed, tie_heavy=draft_kind == "ties", follow=0.7)
        if draft_kind == "ties":
            logits = (logits.float() * 0.7 - 1.0).to(dtype)  # 4 values, some negative
        return logits, tokens, parents, None
    g = torch.Generator().manual_seed(seed)
    parents = random_parents(B, T, g)
    logits = (torch.randn(B, T, V, generator=g) * 2).to(dtype)
    if draft_kind == "target":
        q = process_logits(logits, 1.0).float().gather(1, parents.clamp(min=0).unsqueeze(-1).expand(B, T, V))
    else:
        q = torch.softmax(torch.randn(B, T, V, generator=g) * 2, -1)
    tokens = torch.multinomial(q.reshape(-1, V).double(), 1, generator=g).view(B, T)
    return logits, tokens, parents, q


def check(logits, tokens, parents, q, temperature, seed, max_cores=8, top_k=0, top_p=1.0, with_reference=True):
    """The kernels' results equal the torch op's and the reference's, bit for bit; returns them and the run."""
    n, out, slots, result = accept_tree_sampling_emu(logits, tokens, parents, draft_probs=q, temperature=temperature,
                                                     seed=seed, top_k=top_k, top_p=top_p, max_cores=max_cores)
    kwargs = dict(draft_probs=q, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    wants = [accept_tree(logits, tokens, parents, **kwargs)]
    if with_reference:
        wants.append(reference.accept_tree(logits, tokens, parents, **kwargs))
    for want in wants:
        for got, w, name in zip((n, out, slots), want, ("num_accepted", "output_tokens", "accepted_slots")):
            assert got.dtype == w.dtype == torch.int64, (name, got.dtype)
            assert torch.equal(got, w), (name, got, w, kwargs)
    return n, out, slots, result


SETTINGS = st.tuples(st.sampled_from([0.3, 1.0, 2.5]),  # temperature
                     st.sampled_from([0, 1, 2, 7, -1]),  # top_k; -1: V - 1
                     st.sampled_from([1.0, 0.95, 0.61, 0.2, 0.01]),  # top_p
                     st.integers(0, 2**32 - 1))  # seed


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 3), T=st.sampled_from([1, 2, 5, 8, 16]), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), case_seed=st.integers(0, 999),
       draft_kind=st.sampled_from(["sampled", "target", "deterministic", "ties"]), max_cores=st.sampled_from([1, 3, 8]),
       runs=st.lists(SETTINGS, min_size=3, max_size=3))
def test_sampled_tree_matches_torch_and_reference(B, T, V, dtype, case_seed, draft_kind, max_cores, runs):
    """Temperature, top-k, top-p and seeds are runtime args: several runs per compiled shape."""
    logits, tokens, parents, q = make_tree(B, T, V, dtype, case_seed, draft_kind)
    for temperature, top_k, top_p, seed in runs:
        check(logits, tokens, parents, q, temperature, seed, max_cores, V - 1 if top_k == -1 else top_k, top_p)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_vocab_49152_over_8_cores(dtype):
    """SmolLM2's vocabulary really split over 8 cores, two 16-node trees drafted with probabilities, per-row seeds."""
    assert len(split_vocab(49152)) == 8
    logits, tokens, parents, q = make_tree(2, 16, 49152, dtype, 49152, "sampled")
    check(logits, tokens, parents, q, 0.8, torch.tensor([11, 2**32 - 7]), top_k=50, top_p=0.9)
    for seed in range(3):  # the torch op alone from here: the reference takes seconds a row at this V
        check(logits, tokens, parents, q, 1.0, seed, with_reference=False)
        check(logits, tokens, parents, None, 0.7, seed, top_p=0.5, with_reference=False)


@pytest.mark.parametrize("top_p", [0.125, 0.25, 0.25 + 2**-30, 0.375, 0.5, 0.75, 1.0])
def test_top_p_boundaries_with_ties_across_cores(top_p):
    """Eight equal maxima over three cores' slices, 1/8 of the mass each: top-p a multiple of 1/8 meets the
    target exactly (the tokens before the cut sum to it: the next tie is dropped), one 2^-30 past it keeps
    one more; ties are kept in index order across cores. The root's children carry tied tokens inside and
    past the cut, its grandchildren too: accepted, rejected and drawn tokens all equal the torch op's."""
    V = 6001
    slices = split_vocab(V, 3)
    tied = [10, 20, slices[1][0] + 5, slices[1][0] + 6, slices[2][0], slices[2][0] + 1, V - 2, V - 1]
    logits = torch.full((1, 5, V), -30.0)  # the rest: weight 0 at temperature 1
    logits[0, :, tied] = 12.0
    parents = torch.tensor([[-1, 0, 0, 0, 2]])
    drawn = set()
    for seed in range(12):
        for order in ([tied[3], tied[1], tied[5], tied[2]], [tied[0], tied[7], tied[4], tied[6]]):
            tokens = torch.tensor([[0] + order])
            n, out, _, _ = check(logits, tokens, parents, None, 1.0, seed, max_cores=3, top_p=top_p)
            drawn.add(int(out[0, int(n[0])]))
    assert drawn <= set(tied), drawn


def test_top_k_cut_among_ties_and_one_core_whole_rows():
    """top-k 3 with five tied maxima keeps all five (ties with the k-th are kept); one core holds a whole row."""
    V = 2049
    logits = torch.zeros(2, 6, V)
    logits[:, :, [3, 700, 1500, 2000, 2048]] = 5.0
    tokens = torch.tensor([[0, 700, 4, 2048, 3, 1500], [0, 5, 2000, 9, 3, 11]])
    parents = torch.tensor([[-1, 0, 0, 1, 3, 1], [-1, 0, 0, 0, 2, 4]])
    for seed in range(6):
        for cores in (1, 8):
            check(logits, tokens, parents, None, 0.5, seed, max_cores=cores, top_k=3)


def test_repeated_sibling_tokens_are_never_accepted_on_the_kernels():
    """i.i.d. siblings: the root's children all carry token 7, under q sure of 7 at p(7) = 1/2; the first is
    accepted with probability 1/2, a repeat never (r(7) = 0 once 7 is rejected), and the draw follows."""
    V = 16
    logits = torch.full((1, 4, V), -50.0)
    logits[0, :, [7, 9]] = 0.0  # p(7) = p(9) = 1/2
    q = torch.full((1, 4, V), 0.01 / (V - 1))
    q[0, :, 7] = 0.99
    tokens, parents = torch.tensor([[0, 7, 7, 7]]), torch.tensor([[-1, 0, 0, 0]])
    accepted = []
    for seed in range(16):
        n, out, slots, _ = check(logits, tokens, parents, q, 1.0, seed, max_cores=1)
        accepted.append(int(n[0]))
        assert int(n[0]) == 0 or int(slots[0, 1]) == 1, "only the first of the repeats can be accepted"
    assert 0 < sum(accepted) < 16, accepted


@pytest.mark.parametrize("k", [1, 4, 9])
@pytest.mark.parametrize("with_q", [False, True])
def test_a_chain_tree_is_accept_prefix_sampled_on_every_backend(k, with_q):
    g = torch.Generator().manual_seed(k)
    B, V = 3, 3000
    logits = torch.randn(B, k + 1, V, generator=g).bfloat16()
    q = torch.softmax(torch.randn(B, k, V, generator=g), -1) if with_q else None
    drafts = torch.multinomial(q.view(-1, V), 1, generator=g).view(B, k) if with_q else logits[:, :k].argmax(-1)
    tree_tokens = torch.cat([torch.zeros(B, 1, dtype=torch.long), drafts], 1)
    tree_q = None if q is None else torch.cat([torch.zeros(B, 1, V), q], 1)  # node t + 1 is draft t
    for seed, settings_ in ((3, dict(temperature=1.0)), (4, dict(temperature=0.6, top_k=20, top_p=0.8))):
        results = {}
        for backend in ("torch", "emu"):
            n, out = accept_prefix(logits, drafts, draft_probs=q, seed=seed, backend=backend, **settings_)
            tn, tout, slots = accept_tree(logits, tree_tokens, torch.arange(-1, k).repeat(B, 1), draft_probs=tree_q,
                                          seed=seed, backend=backend, **settings_)
            assert torch.equal(tn, n) and torch.equal(tout, out), (backend, tn, n, tout, out)
            assert torch.equal(slots, torch.arange(k + 1).repeat(B, 1)), "a chain needs no compaction"
            results[backend] = (n, out)
        assert all(torch.equal(a, b) for a, b in zip(results["torch"], results["emu"]))


@pytest.mark.parametrize("with_q", [False, True])
def test_each_reached_row_is_read_once(with_q):
    """DRAM reads: the logits rows of the path's nodes (each kept in L1 for all its rounds), q's row of every
    rejected node, and small pages (tokens, parents, seeds, one 32-byte q entry per accept test)."""
    B, T, V = 3, 12, 49152
    # drafts likely enough to accept some: q the target's p at temperature 1, tested at 0.7; the argmax mostly,
    # tested at 0.05
    logits, tokens, parents, q = make_tree(B, T, V, torch.bfloat16, 6, "target" if with_q else "deterministic")
    n, _, slots, result = check(logits, tokens, parents, q, 0.7 if with_q else 0.05, 3, with_reference=False)
    tested = rejected = 0
    for b in range(B):
        path = slots[b, :int(n[b]) + 1].tolist()
        for j, node in enumerate(path):  # children of a path node before the accepted one (all at the end) fail
            children = [c for c in range(1, T) if int(parents[b, c]) == node]
            nxt = path[j + 1] if j + 1 < len(path) else T
            tested += len([c for c in children if c <= nxt])
            rejected += len([c for c in children if c < nxt])
    expected = int((n + 1).sum()) * V * logits.element_size() + (rejected * V * 4 if with_q else 0)
    small = B * 2 * 64 + 64 + (tested * 32 if with_q else 0)  # tokens and parents rows, seeds, q entries
    read = result.total("dram_bytes_read")
    assert expected <= read <= expected + small, (read, expected, small)
    assert rejected > 0 and int(n.max()) > 0, "both paths of the test ran"


def test_new_temperature_top_k_top_p_and_seed_compile_nothing():
    logits, tokens, parents, q = make_tree(2, 6, 3000, torch.bfloat16, 1, "sampled")
    check(logits, tokens, parents, q, 0.7, 1)
    before = emu.compile_stats.compiled, emu.compile_stats.disk_hits
    check(logits, tokens, parents, q, 1.9, 2, top_k=17, top_p=0.5)
    assert (emu.compile_stats.compiled, emu.compile_stats.disk_hits) == before


def test_bad_tokens_and_parents_end_the_walk_without_hanging():
    """Tensors the host would refuse (a device tensor is never read there): a parent outside 0 .. t-1 or a
    token outside 0 .. V-1 makes its node unreachable, as the reference walks a tree where those nodes hang
    nowhere (parent T); the kernels stay bounded and index nothing from them."""
    B, T, V = 2, 8, 50
    logits, tokens, parents = random_tree(B, T, V, torch.float32, seed=3, follow=1.0)
    bad_parents, bad_tokens = parents.clone(), tokens.clone()
    bad_parents[0, 3], bad_parents[1, 2], bad_parents[1, 6] = 3, -7, T + 1
    bad_tokens[0, 5], bad_tokens[1, 4] = V, -1
    t = torch.arange(T).view(1, T)
    unreachable = (t >= 1) & ((bad_parents < 0) | (bad_parents >= t) | (bad_tokens < 0) | (bad_tokens >= V))
    detached = torch.where(unreachable, T, bad_parents)
    for seed in range(4):
        n, out, slots, _ = accept_tree_sampling_emu(logits, bad_tokens, bad_parents, draft_probs=None,
                                                    temperature=1.0, seed=seed, max_cores=3)
        want = reference.accept_tree(logits, bad_tokens.clamp(0, V - 1), detached, temperature=1.0, seed=seed)
        assert all(torch.equal(a, b) for a, b in zip((n, out, slots), want)), (seed, n, out, want)
    for tokens_, parents_, name in ((bad_tokens, parents, "tree_tokens"), (tokens, bad_parents, "parents")):
        with pytest.raises(ValueError, match=name):
            accept_tree(logits, tokens_, parents_, temperature=1.0, seed=0, backend="emu")


def bad_inputs():
    """(what changes, the error's type and message) for the sampled tree's argument checks."""
    logits, tokens, parents, q = make_tree(1, 4, 8, torch.float32, 0, "sampled")
    inf_logits = logits.clone()
    inf_logits[0, 2, 3] = float("inf")
    negative_q = q.clone()
    negative_q[0, 1, 2] = -0.5
    zero_q = q.clone()
    zero_q[0, 2, int(tokens[0, 2])] = 0.0
    dup = tokens.clone()
    dup[0, 1:] = 3
    base = dict(logits=logits, tokens=tokens, parents=parents, draft_probs=q, temperature=1.0, seed=0)
    return base, [
        (dict(seed=None), ValueError, "seed: got None"),
        (dict(temperature=-1.0), ValueError, "temperature"),
        (dict(top_p=1.5), ValueError, "top_p"),
        (dict(draft_probs=q[:, :3]), ValueError, "draft_probs"),
        (dict(draft_probs=negative_q), ValueError, "draft_probs: got -0.5"),
        (dict(draft_probs=zero_q), ValueError, "draft_probs: got q=0.0"),
        (dict(logits=inf_logits), ValueError, "target_logits"),
        (dict(tokens=dup, parents=torch.tensor([[-1, 0, 0, 0]]), draft_probs=None), ValueError, "tree_tokens"),
        (dict(seed=torch.tensor([1, 2])), ValueError, "seed"),
    ]


@pytest.mark.parametrize("case", range(len(bad_inputs()[1])))
def test_bad_input_is_refused_as_on_torch_and_left_unchanged(case):
    base, cases = bad_inputs()
    change, error, message = cases[case]
    args = base | change
    before = {k: v.clone() for k, v in args.items() if isinstance(v, torch.Tensor)}
    errors = []
    for backend in ("torch", "emu"):
        with pytest.raises(error, match=message) as caught:
            accept_tree(args["logits"], args["tokens"], args["parents"], draft_probs=args["draft_probs"],
                        temperature=args["temperature"], top_p=args.get("top_p", 1.0), seed=args["seed"],
                        backend=backend)
        errors.append(str(caught.value))
    assert errors[0] == errors[1], errors
    assert all(torch.equal(before[k], args[k]) for k in before), "inputs left unchanged"


def test_empty_batch_sampled_on_the_kernels():
    n, out, slots = accept_tree(torch.zeros(0, 4, 8), torch.zeros(0, 4, dtype=torch.long),
                                torch.zeros(0, 4, dtype=torch.long), temperature=1.0, seed=0, backend="emu")
    assert n.shape == (0,) and out.shape == slots.shape == (0, 4) and n.dtype == out.dtype == torch.int64
