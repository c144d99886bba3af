"""Greedy accept_tree kernels (tt_specdec/ops/accept_prefix/kernels/*_accept_tree.cpp) on the emulator
against the torch op and the plain-loop reference: random trees (verify_attention's
reference.random_parents) over B 1..4, T 1..32, V with edge sizes up to 49,152 split over 1..8
cores, bf16 and fp32 logits, ties; a chain-shaped tree gives the chain kernels' result; the slots
drive rollback_kv's compaction kernels."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec.ops import PLACEHOLDER, accept_prefix, rollback_kv
from tt_specdec.ops.accept_prefix import accept_tree, reference
from tt_specdec.ops.accept_prefix.reference import random_tree
from tt_specdec.ops.accept_prefix.program import accept_prefix_emu, accept_tree_emu, split_vocab
from tt_specdec.runtime import emu

# edge sizes: 1, around 32, around the 2048-entry chunk / slice, not multiples of 32
VOCABS = [1, 2, 31, 33, 100, 2047, 2049, 4103, 6001]


def check_against_torch_and_reference(logits, tokens, parents, max_cores=8):
    n, out, slots, result = accept_tree_emu(logits, tokens, parents, max_cores=max_cores)
    B, T, _ = logits.shape
    # every emitted target token is a maximum of its node's row (ties may not fail this part)
    for b in range(B):
        path = slots[b, :int(n[b]) + 1].tolist()
        for j, node in enumerate(path):
            tok = int(out[b, j])
            assert logits[b, node, tok] == logits[b, node].max(), f"row ({b}, node {node}): {tok} is not a maximum"
    # and exactly the torch op and the reference: first maximum wins, like torch.argmax
    want = accept_tree(logits, tokens, parents)
    ref = reference.accept_tree(logits, tokens, parents)
    for got, w, r, name in zip((n, out, slots), want, ref, ("num_accepted", "output_tokens", "accepted_slots")):
        assert got.dtype == w.dtype == torch.int64, (name, got.dtype)
        assert torch.equal(got, w), (name, got, w)
        assert torch.equal(got, r), (name, got, r)
    return n, result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 4), T=st.sampled_from([1, 2, 3, 5, 8, 17, 32]), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**31 - 1),
       tie_heavy=st.booleans(), follow=st.sampled_from([0.0, 0.5, 0.9, 1.0]), max_cores=st.sampled_from([1, 3, 8]))
def test_greedy_tree_matches_torch_and_reference(B, T, V, dtype, seed, tie_heavy, follow, max_cores):
    check_against_torch_and_reference(*random_tree(B, T, V, dtype, seed, tie_heavy, follow), max_cores=max_cores)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_vocab_49152_over_8_cores(dtype):
    """SmolLM2's vocabulary really split over 8 cores, a 17-node tree, two sequences; paths accepted."""
    assert len(split_vocab(49152)) == 8
    logits, tokens, parents = random_tree(2, 17, 49152, dtype, seed=49152, follow=0.95)
    n, _ = check_against_torch_and_reference(logits, tokens, parents)
    assert int(n.max()) >= 2, n  # the walk went down the tree, not only the root's argmax


def test_ties_across_cores_keep_first_index():
    """Equal maxima in several cores' slices: the root's argmax is the first, so only the child carrying
    that index is accepted, not its sibling carrying the later maximum."""
    V = 12000
    slices = split_vocab(V)
    assert len(slices) > 2
    first, later = slices[1][0] + 5, slices[2][0] + 1
    logits = torch.zeros(1, 3, V)
    logits[0, 0, [later, first, first + 7]] = 4.0
    logits[0, 2, V - 1] = 1.0  # the last entry of the last (partial) slice
    tokens, parents = torch.tensor([[0, later, first]]), torch.tensor([[-1, 0, 0]])
    check_against_torch_and_reference(logits, tokens, parents)
    n, out, slots, _ = accept_tree_emu(logits, tokens, parents)
    assert slots[0, 1] == 2 and out[0, 0] == int(logits[0, 0].argmax())


def test_nan_rule_is_torchs():
    """ttnn argmax_common.hpp's NaN rule, torch.argmax's: a NaN outranks every number and the first NaN
    wins; -0 equals +0, the first index wins. The host refuses non-finite logits, so the kernels are run
    directly; the expected tokens are torch.argmax's."""
    for dtype in (torch.bfloat16, torch.float32):
        logits = torch.zeros(1, 3, 100, dtype=dtype)
        logits[0, 0, 5] = 3.0
        logits[0, 0, [40, 70]] = float("nan")
        logits[0, 2, [0, 3]] = -0.0  # node 2: all zeros, two of them negative
        at = logits.float().argmax(-1)[0]  # [T] torch's
        tokens, parents = torch.tensor([[0, 5, int(at[0])]]), torch.tensor([[-1, 0, 0]])
        n, out, slots, _ = accept_tree_emu(logits, tokens, parents, max_cores=3)
        assert n.tolist() == [1] and slots.tolist() == [[0, 2, 2]], (dtype, n, slots)
        assert out.tolist() == [[int(at[0]), int(at[2]), PLACEHOLDER]], (dtype, out)
        with pytest.raises(ValueError, match="target_logits"):
            accept_tree(logits, tokens, parents, backend="emu")


@pytest.mark.parametrize("k", [1, 6, 15])
def test_a_chain_tree_is_the_chain_kernels_result(k):
    g = torch.Generator().manual_seed(k)
    B, V = 3, 3000
    logits, drafts = torch.randn(B, k + 1, V, generator=g), torch.randint(0, V, (B, k), generator=g)
    drafts[:, :k // 2 + 1] = logits[:, :k // 2 + 1].argmax(-1)  # accept a while
    drafts[0] = logits[0, :k].argmax(-1)  # and one row entirely: the bonus token
    n, out, _ = accept_prefix_emu(logits, drafts)
    tn, tout, slots, _ = accept_tree_emu(logits, torch.cat([torch.zeros(B, 1, dtype=torch.long), drafts], 1),
                                         torch.arange(-1, k).repeat(B, 1))
    assert int(n[0]) == k and torch.equal(tn, n) and torch.equal(tout, out), (tn, n, tout, out)
    assert torch.equal(slots, torch.arange(k + 1).repeat(B, 1)), "a chain needs no compaction"


def test_bad_parents_end_the_walk_without_hanging():
    """A parents tensor the host would refuse (a device tensor is never read there): the walk is bounded
    by the node count and a parent outside 0 .. t-1 never matches, so such a node is unreachable, as the
    reference walks a tree where those nodes hang nowhere (parent T)."""
    T = 8
    logits, tokens, parents = random_tree(2, T, 50, torch.float32, seed=3, follow=1.0)
    bad = parents.clone()
    bad[0, 3], bad[0, 5], bad[1, 2], bad[1, 6], bad[1, 7] = 3, 1000, -7, 7, T + 1  # self, far, negative, ...
    t = torch.arange(T).view(1, T)
    detached = torch.where((t >= 1) & ((bad < 0) | (bad >= t)), T, bad)
    n, out, slots, _ = accept_tree_emu(logits, tokens, bad)
    rn, rout, rslots = reference.accept_tree(logits, tokens, detached)
    assert torch.equal(n, rn) and torch.equal(out, rout) and torch.equal(slots, rslots)
    with pytest.raises(ValueError, match="parents"):
        accept_tree(logits, tokens, bad, backend="emu")


def test_reads_the_logits_once():
    logits, tokens, parents = random_tree(2, 9, 49152, torch.bfloat16, seed=1)
    _, result = check_against_torch_and_reference(logits, tokens, parents)
    logits_bytes = logits.numel() * logits.element_size()
    read = result.total("dram_bytes_read")
    assert logits_bytes <= read <= 1.01 * logits_bytes, (read, logits_bytes)


def test_program_cache_hit_on_new_step():
    """Two steps with other logits, tokens and tree shapes compile nothing new."""
    check_against_torch_and_reference(*random_tree(3, 6, 3000, torch.bfloat16, seed=3))
    before = emu.compile_stats.compiled, emu.compile_stats.disk_hits
    check_against_torch_and_reference(*random_tree(3, 6, 3000, torch.bfloat16, seed=4, tie_heavy=True))
    assert (emu.compile_stats.compiled, emu.compile_stats.disk_hits) == before


def test_kernel_slots_compact_the_kv_on_the_emulator():
    """The accept half then the rollback half on the kernels: rollback_kv's compaction kernels take the tree
    kernel's accepted_slots and leave the cache, pos and last of the torch ops."""
    B, T, V = 3, 9, 500
    logits, tokens, parents = random_tree(B, T, V, torch.float32, seed=11, follow=0.9)
    g = torch.Generator().manual_seed(11)
    pos, last = torch.randint(0, 64 - T, (B,), generator=g), tokens[:, 0].clone()
    caches = torch.randn(2, B, 2, 64, 32, generator=g)  # K and V [B, Hkv, S, D]
    results = {}
    for backend in ("emu", "torch"):
        n, out, slots = accept_tree(logits, tokens, parents, backend=backend)
        kc, vc = caches[0].clone(), caches[1].clone()
        r = rollback_kv(pos, last, n, out, accepted_slots=slots, k_cache=kc, v_cache=vc, backend=backend)
        results[backend] = (n, r.pos, r.last, kc, vc)
    assert int(results["torch"][0].max()) >= 1 and (results["torch"][0] > 0).sum() >= 2, "some paths move KV"
    assert all(torch.equal(a, b) for a, b in zip(results["emu"], results["torch"]))


def test_empty_batch_on_the_kernels():
    """(The sampled tree's kernels: tests/emu/test_emu_accept_tree_sampling.py.)"""
    n, out, slots = accept_tree(torch.zeros(0, 4, 8), torch.zeros(0, 4, dtype=torch.long),
                                torch.zeros(0, 4, dtype=torch.long), backend="emu")
    assert n.shape == (0,) and out.shape == slots.shape == (0, 4) and n.dtype == out.dtype == torch.int64
