"""Token trees in the speculative loop (speculative_generate with a TreeDrafter): greedy output is token for
token the target alone's on the CPU engine (exact mode: a tree row has the bits of decoding its path) and on
the torch Llama (a divergence only at a proven near-tie, as test_lossless checks chains), in batches whose
rows grow different trees and stop apart; coupled sampling gives the target alone's seeded output; the
requests the tree path cannot serve are refused by name."""
import numpy as np
import pytest
import torch

from test_lossless import FP32_BOUND, check_lossless
from tt_specdec.api import load_pair
from tt_specdec.drafters import TreeDrafter
from tt_specdec.ops.rollback_kv import compact_hidden
from tt_specdec.ops.verify_attention import tree_mask_from_parents
from tt_specdec.sampling import Sampling
from tt_specdec.speculative.cost import CostModel
from tt_specdec.speculative.loop import generate_plain, speculative_generate
from tt_specdec.speculative.policy import TreePolicy

PROMPTS = [list(p.encode()) for p in (
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fib",  # the tail repeats: a lookup branch
    "import os\nimport sys\n",
    "x",  # one token: the draft's first feed is the prompt alone
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n")]
MAX_NEW = 40


class Recording:
    """A TreeDrafter that keeps every proposal's parents [B, k+1], to see what the loop verified."""

    def __init__(self, drafter: TreeDrafter):
        self.inner, self.parents = drafter, []
        self.vocab_size, self.needs_target_hidden, self.stop_reach = drafter.vocab_size, False, None
        self.makes_trees, self.top_children = True, drafter.top_children

    def reset(self, batch_size, cache_len):
        self.inner.reset(batch_size, cache_len)

    def propose(self, *args, **kw):
        proposal = self.inner.propose(*args, **kw)
        self.parents.append(proposal.parents)
        return proposal


@pytest.fixture(scope="module")
def cpu_pair():
    return load_pair("tiny")  # CpuLlama target and draft: batch-invariant, so greedy trees are exact


@pytest.mark.parametrize("k,width,lookup,eos", [(1, 4, False, None), (4, 1, False, None), (6, 3, True, ord("\n")),
                                                (15, 4, True, None), (31, 2, True, ord(" "))])
def test_tree_greedy_is_the_target_alone_on_the_cpu_engine(cpu_pair, k, width, lookup, eos):
    target = cpu_pair.target
    plain = generate_plain(target, PROMPTS, max_new_tokens=MAX_NEW, eos_token_id=eos).tokens
    drafter = Recording(TreeDrafter(cpu_pair.draft, top_children=width, lookup=lookup))
    gen = speculative_generate(target, drafter, PROMPTS, k=k, max_new_tokens=MAX_NEW, eos_token_id=eos)
    assert gen.tokens == plain
    assert gen.stats.emitted == gen.stats.row_steps + gen.stats.accepted
    assert gen.stats.steps < max(map(len, plain)), "drafts were accepted: fewer target steps than tokens"
    if width > 1 and k > 1:  # trees were verified, and the rows of one step grew different ones
        assert gen.stats.tree_row_steps > 0
        assert any(any(not torch.equal(p[0], p[b]) for b in range(1, len(p))) for p in drafter.parents)


@pytest.mark.parametrize("k,width", [(3, 4), (12, 3)])
def test_tree_greedy_on_the_torch_llama(tiny_pair, near_tie_log, k, width):
    target, draft = tiny_pair
    plain = generate_plain(target, PROMPTS, max_new_tokens=MAX_NEW).tokens
    gen = speculative_generate(target, TreeDrafter(draft, top_children=width, lookup=True), PROMPTS, k=k,
                               max_new_tokens=MAX_NEW)
    check_lossless(target, PROMPTS, gen.tokens, plain, FP32_BOUND, near_tie_log, f"torch tree k={k} w={width}")
    assert gen.stats.tree_row_steps > 0


def test_llama_forward_tree_rows_are_their_paths_decoded(tiny_pair):
    # each tree row's logits are those of running its path as a chain after the same context
    target, _ = tiny_pair
    context = PROMPTS[0]
    tokens = torch.tensor([[context[-1], 10, 11, 12, 13, 14]])
    parents = torch.tensor([[-1, 0, 0, 1, 2, 3]])
    L = len(context) - 1
    target.allocate_cache(1, 128)
    target.forward(torch.tensor([context[:-1]]), torch.tensor([0]))
    tree = target.forward_tree(tokens, torch.tensor([L]), parents)[0]  # [T, V]
    mask = tree_mask_from_parents(parents)[0]
    for t in range(tokens.shape[1]):
        path = tokens[0, mask[t]].view(1, -1)  # root .. t
        chain = target.forward(path, torch.tensor([L]))[0, -1]
        torch.testing.assert_close(tree[t], chain, rtol=0, atol=1e-4)


@pytest.mark.parametrize("engine", ["cpu", "torch"])
def test_tree_verify_keeps_the_hidden_states_of_decoding_its_accepted_path(tiny_pair, cpu_pair, engine):
    """forward_tree writes node t's kept hidden states at slot pos + t; compacted with the KV's slots, an
    accepted path's rows are what decoding it one token at a time writes (the CPU engine: bit for bit)."""
    target = cpu_pair.target if engine == "cpu" else tiny_pair[0]
    layers, B = (1, 3, 4), 2
    ctx = [PROMPTS[0], PROMPTS[3][:30]]
    L = torch.tensor([len(c) - 1 for c in ctx])  # the root, ctx[-1], sits at position L
    tokens = torch.tensor([[c[-1], 10, 11, 12, 13, 14, 15] for c in ctx])
    parents = torch.tensor([[-1, 0, 0, 1, 2, 3, 5], [-1, 0, 1, 0, 3, 4, 2]])
    accepted = torch.tensor([[0, 1, 3, 5, 6, -1, -1], [0, 3, 4, 5, -1, -1, -1]])  # [B, T] root paths (accept_tree's slots)
    n = torch.tensor([4, 3])
    assert all(int(parents[b, accepted[b, j]]) == accepted[b, j - 1] for b in range(B) for j in range(1, n[b] + 1))

    def decoded(b: int) -> torch.Tensor:  # [n + 1, 3·dim] the path decoded token by token after the context
        target.allocate_cache(1, 96, keep_hidden=layers)
        target.forward(torch.tensor([ctx[b][:-1]]), torch.tensor([0]))
        for j, node in enumerate(accepted[b, :n[b] + 1].tolist()):
            target.forward(tokens[b:b + 1, node:node + 1], L[b:b + 1] + j)
        return target.hidden_cache[0, L[b]:L[b] + n[b] + 1].clone()

    want = [decoded(b) for b in range(B)]
    target.allocate_cache(B, 96, keep_hidden=layers)
    longest = int(L.max())
    target.prefill(torch.tensor([c[:-1] + [0] * (longest - len(c) + 1) for c in ctx]), L)  # right-padded contexts
    target.forward_tree(tokens, L, parents)
    compact_hidden(L, n, accepted, target.hidden_cache)
    for b in range(B):
        got = target.hidden_cache[b, L[b]:L[b] + n[b] + 1]
        if engine == "cpu":
            assert torch.equal(got, want[b]), f"row {b}"
        else:
            torch.testing.assert_close(got, want[b], rtol=0, atol=1e-4)


def test_coupled_sampling_with_trees_is_the_target_alone(cpu_pair):
    sampling = Sampling(0.8, 0, 0.9, coupled=True)
    plain = generate_plain(cpu_pair.target, PROMPTS, max_new_tokens=MAX_NEW, sampling=sampling, seed=7).tokens
    for k in (2, 9):
        gen = speculative_generate(cpu_pair.target, TreeDrafter(cpu_pair.draft, top_children=3, lookup=True), PROMPTS,
                                   k=k, max_new_tokens=MAX_NEW, sampling=sampling, seed=7)
        assert gen.tokens == plain
        assert gen.stats.accepted > 0


def test_the_tree_policy_runs_the_loop_exactly(cpu_pair):
    # chain or tree chosen per step from a cost model where rows are nearly free: both shapes are verified
    cost = CostModel(c=0.05, d0=0.0, v=tuple(1.0 + 0.01 * t for t in range(32)))
    plain = generate_plain(cpu_pair.target, PROMPTS, max_new_tokens=MAX_NEW).tokens
    gen = speculative_generate(cpu_pair.target, TreeDrafter(cpu_pair.draft, lookup=True), PROMPTS, k=31,
                               max_new_tokens=MAX_NEW, policy=TreePolicy(cost, 31, probe_every=4))
    assert gen.tokens == plain
    widths = {label.split()[1] for label in gen.stats.shape_steps}
    assert widths == {"w=1", "w=4"}, gen.stats.shape_steps
    assert sum(gen.stats.shape_steps.values()) == gen.stats.proposals


def test_sampled_trees_seeded_reproduce_and_branch(cpu_pair):
    # the rejection rule over a tree (its distribution: tests/speculative/test_sampling.py, chi-square)
    sampling = Sampling(0.8, 0, 0.9, coupled=False)
    runs = [speculative_generate(cpu_pair.target, Recording(TreeDrafter(cpu_pair.draft, top_children=3)), PROMPTS,
                                 k=5, max_new_tokens=MAX_NEW, sampling=sampling, seed=s) for s in (3, 3, 4)]
    assert runs[0].tokens == runs[1].tokens and runs[0].tokens != runs[2].tokens
    assert 0 < runs[0].stats.accepted < runs[0].stats.drafted and runs[0].stats.tree_row_steps > 0


def test_a_target_without_forward_tree_is_refused(cpu_pair):
    class ChainOnly:  # a Decoder with forward only
        vocab_size, max_seq_len, attention, hidden_cache = 256, 2048, "torch", None

    with pytest.raises(ValueError, match="drafter: got a tree drafter with a ChainOnly target"):
        speculative_generate(ChainOnly(), TreeDrafter(cpu_pair.draft), PROMPTS, k=3, max_new_tokens=4)


def test_batched_trees_are_each_rows_tree_alone(cpu_pair):
    # the draft's shared forward (re-fed and padded rows) changes no row's tree, step after step
    drafter = TreeDrafter(cpu_pair.draft, top_children=3, lookup=True)
    B, k = len(PROMPTS), 9
    S = max(map(len, PROMPTS)) + 3 * (k + 1)
    context = torch.zeros(B, S, dtype=torch.long)
    for b, p in enumerate(PROMPTS):
        context[b, :len(p)] = torch.tensor(p)
    length = torch.tensor([len(p) for p in PROMPTS])
    drafter.reset(B, S)
    solo = TreeDrafter(load_pair("tiny").draft, top_children=3, lookup=True)  # its own draft cache
    for step in range(3):
        together = drafter.propose(context, length, k, Sampling(), torch.zeros(B, dtype=torch.long))
        for b in range(B):  # the row's context alone, from a fresh cache
            one = solo
            one.reset(1, S)
            mine = one.propose(context[b:b + 1], length[b:b + 1], k, Sampling(), torch.zeros(1, dtype=torch.long))
            assert torch.equal(mine.tokens[0], together.tokens[b]) and torch.equal(mine.parents[0], together.parents[b])
        # accept a different number of drafts per row (a path of its tree), then the next step
        for b in range(B):
            par, tok = together.parents[b].tolist(), together.tokens[b].tolist()
            node, path = k, []
            while node > 0 and len(path) < b + 1:
                path.append(tok[node - 1])
                node = par[node]
            new = path[::-1][:b] + [7]
            context[b, int(length[b]):int(length[b]) + len(new)] = torch.tensor(new)
            length[b] += len(new)


@pytest.mark.parametrize("lookup", [False, True])
def test_the_first_j_nodes_of_a_proposal_are_the_j_node_proposal(cpu_pair, lookup):
    # what TreePolicy relies on: a best-first proposal's prefix is the smaller proposal
    context = torch.tensor([PROMPTS[0] + PROMPTS[3]])
    length = torch.tensor([context.shape[1]])
    big = TreeDrafter(cpu_pair.draft, top_children=4, lookup=lookup)
    big.reset(1, 256)
    full = big.propose(context, length, 20, Sampling(), torch.zeros(1, dtype=torch.long))
    for j in (1, 3, 8, 13):
        d = TreeDrafter(cpu_pair.draft, top_children=4, lookup=lookup)
        d.reset(1, 256)
        small = d.propose(context, length, j, Sampling(), torch.zeros(1, dtype=torch.long))
        assert torch.equal(small.tokens[0], full.tokens[0, :j])
        assert torch.equal(small.parents[0], full.parents[0, :j + 1])
    assert np.array_equal(full.parents[0, 1:] < torch.arange(1, 21), np.ones(20, bool)), "topological order"
