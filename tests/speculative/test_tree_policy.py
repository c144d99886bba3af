"""TreePolicy: chain or tree, and the number of drafts, from v(T) and the acceptance each shape measured.
With synthetic costs: rows nearly free -> trees, grown to many nodes; rows costly -> a short chain. And
prefix_accepted, what each step teaches it, against accept_tree run on the smaller trees themselves."""
import numpy as np
import pytest
import torch

from tt_specdec.ops.accept_prefix import accept_tree
from tt_specdec.speculative.cost import CostModel
from tt_specdec.speculative.policy import TreePolicy, prefix_accepted

K_MAX = 31
FREE = CostModel(c=0.01, d0=0.0, v=(1.0,) * (K_MAX + 1))  # a 32-row tile: any row count costs one decode
COSTLY = CostModel(c=0.05, d0=0.0, v=tuple(1.0 + 0.5 * t for t in range(K_MAX + 1)))  # each row half a decode


class Text:
    """A synthetic target and drafter: at each depth the target's token is the draft's best child with
    probability 0.6 and its second with 0.25. A chain (width 1) holds only best children; a width-w tree
    of k drafts is the best-first tree of those probabilities (its first k nodes). Returns accept_tree's
    slots for the path the target takes."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def tree(width: int, k: int) -> list[tuple[int, int]]:
        """(parent, rank among its siblings) of nodes 1..k, best first by path probability."""
        probs = [0.6, 0.25, 0.1, 0.05][:width]
        nodes, frontier = [], [(-p, 0, r) for r, p in enumerate(probs)]  # (-path prob, parent, rank)
        path = {0: 1.0}
        while len(nodes) < k:
            frontier.sort()
            neg, parent, rank = frontier.pop(0)
            nodes.append((parent, rank))
            path[len(nodes)] = -neg
            frontier += [(neg * p, len(nodes), r) for r, p in enumerate(probs)]
        return nodes

    def step(self, width: int, k: int) -> tuple[int, np.ndarray]:
        """(n, slots [k+1]) of the accepted path in the k-draft tree of `width`, as accept_tree gives them."""
        nodes = self.tree(width, k)
        kids = {(p, r): i + 1 for i, (p, r) in enumerate(nodes)}
        slots, node = [0], 0
        while True:
            rank = self.rng.choice(3, p=[0.6, 0.25, 0.15])  # 2: neither of the draft's two best
            node = kids.get((node, rank))
            if node is None:
                break
            slots.append(node)
        return len(slots) - 1, np.array(slots + list(range(len(slots), k + 1)))


def run(cost: CostModel, steps: int = 300) -> list[tuple[int, int]]:
    """(width, k) the policy chose at each step, learning from Text."""
    policy, text = TreePolicy(cost, K_MAX), Text()
    policy.reset(1)
    chosen = []
    for _ in range(steps):
        k = int(policy.choose()[0])
        chosen.append((policy.width, k))
        n, slots = text.step(policy.width, k) if k else (0, np.arange(1))
        policy.update(np.array([k]), np.array([n]), slots=slots.reshape(1, -1))
    return chosen


def test_rows_nearly_free_choose_trees_and_grow_them():
    chosen = run(FREE)
    late = chosen[-100:]
    trees = [k for w, k in late if w == 4]
    assert len(trees) >= 80, f"trees in {len(trees)} of the last 100 steps"
    assert np.median(trees) >= 20, "grown to most of the 32-row tile"
    assert min(k for w, k in chosen if w == 4) < 16, "from smaller trees"


def test_rows_costly_keep_short_chains():
    late = run(COSTLY)[-100:]
    chains = [k for w, k in late if w == 1]
    assert len(chains) >= 80, f"chains in {len(chains)} of the last 100 steps"
    assert max(chains) <= 3


def test_a_tie_goes_to_the_chain_and_fewer_drafts():
    policy = TreePolicy(CostModel(c=0.0, d0=0.0, v=(1.0, 9.0)), 1)  # one draft never pays: k = 0
    policy.reset(2)
    assert policy.choose().tolist() == [0, 0] and policy.width == 1


def test_widths_are_checked():
    with pytest.raises(ValueError, match=r"widths: got \(0, 4\), expected ints >= 1"):
        TreePolicy(FREE, K_MAX, widths=(0, 4))


@pytest.mark.parametrize("width", [1, 2, 4])
def test_prefix_accepted_is_accept_tree_on_the_smaller_trees(width):
    # the k'-node prefix of a best-first tree is the k'-node tree: accept_tree on it gives the same count
    text = Text(seed=width)
    k = 20
    nodes = Text.tree(width, k)
    parents = torch.tensor([[-1] + [p for p, _ in nodes]])
    tokens = torch.tensor([[0] + [r for _, r in nodes]])  # a child's token: its rank (distinct siblings)
    V = 4
    for _ in range(20):
        n_path, slots = text.step(width, k)
        path = slots[:n_path + 1].tolist()
        logits = torch.zeros(1, k + 1, V)  # argmax at a path node: the next path node's token, else V - 1 (none)
        logits[0, :, V - 1] = 1.0
        for a, b in zip(path, path[1:]):
            logits[0, a, V - 1] = 0.0
            logits[0, a, int(tokens[0, b])] = 1.0
        n, _, full_slots = accept_tree(logits, tokens, parents)
        got = prefix_accepted(np.array([k]), n.numpy(), full_slots.numpy(), K_MAX)[0]
        for kp in range(k + 1):
            small, _, _ = accept_tree(logits[:, :kp + 1], tokens[:, :kp + 1], parents[:, :kp + 1])
            assert got[kp] == int(small[0])
        assert (got[k + 1:] == -1).all(), "sizes not offered are not measured"
