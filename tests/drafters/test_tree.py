"""The tree drafter (drafters/tree.py) and the tree ops it feeds: a proposed tree is in topological order
with distinct sibling tokens and k + 1 nodes; one top child per node (width 1) is the draft's greedy
chain; Tree.accepted agrees with ops.accept_prefix.accept_tree."""
import torch

from tt_specdec.drafters.tree import Tree, TreeDrafter
from tt_specdec.ops.accept_prefix import accept_tree, check_tree_args
from tt_specdec.ops.verify_attention import tree_mask_from_parents
from tt_specdec.sampling import Sampling


def propose(drafter: TreeDrafter, context: list[int], k: int, cache_len: int = 128, **kw):
    """One row's proposal of k drafts from a fresh cache."""
    drafter.reset(1, cache_len)
    return drafter.propose(torch.tensor([context]), torch.tensor([len(context)]), k, Sampling(),
                           torch.zeros(1, dtype=torch.long), **kw)


def test_proposed_trees_are_valid_and_fill_their_rows(tiny_pair):
    _, draft = tiny_pair
    context = list(b"def fibonacci(n):\n    if n < 2:\n        return n\n    return fib")
    for rows, lookup in [(1, False), (8, False), (16, True), (32, True)]:
        p = propose(TreeDrafter(draft, top_children=4, lookup=lookup), context, rows - 1)
        tokens = torch.cat([torch.tensor([[context[-1]]]), p.tokens], 1)
        assert tokens.shape == p.parents.shape == (1, rows) and p.steps <= rows - 1
        check_tree_args(torch.zeros(1, rows, 256), tokens, p.parents)
        mask = tree_mask_from_parents(p.parents)
        depth = [0] * rows
        for t in range(1, rows):
            depth[t] = depth[int(p.parents[0, t])] + 1
        assert mask[0].sum(1).tolist() == [d + 1 for d in depth], "a row sees its path"


def test_one_child_per_node_is_the_drafts_greedy_chain(tiny_pair):
    _, draft = tiny_pair
    context = list(b"The quick brown fox jumps over")
    p = propose(TreeDrafter(draft, top_children=4), context, 5, 64, width=1)  # width 1 asked for: a chain
    assert p.parents[0].tolist() == [-1, 0, 1, 2, 3, 4]
    draft.allocate_cache(1, 64)
    seq = list(context)
    for _ in range(5):  # plain greedy decoding of the draft
        logits = draft.forward(torch.tensor([seq]), torch.tensor([0]))[0, -1]
        seq.append(int(logits.argmax()))
    assert p.tokens[0].tolist() == seq[len(context):]


def test_tree_accepted_is_accept_tree_on_a_target_that_follows_a_text():
    tree = Tree.root(5)
    a = tree.add(0, 1)
    b = tree.add(0, 2)
    tree.add(a, 3)
    c = tree.add(b, 4)
    tree.add(c, 6)
    follow = [2, 4, 7]  # the target's greedy continuation: node 2, node 4, then 7 (not in the tree)
    logits = torch.zeros(1, len(tree), 8)
    for node, nxt in [(0, 2), (2, 4), (4, 7)]:
        logits[0, node, nxt] = 1.0
    n, out, slots = accept_tree(logits, torch.tensor([tree.tokens]), torch.tensor([tree.parents]))
    assert int(n) == tree.accepted(follow) == 2 and out[0, :3].tolist() == [2, 4, 7]
    assert slots[0, :3].tolist() == tree.path(c)
