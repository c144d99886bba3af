"""Token trees: a drafter proposes a tree of candidates instead of one chain (EAGLE-2 style).

A `Tree` is in topological order: node 0 the root (the last emitted token, whose row the target
verifies first), node t's parent before it, siblings with distinct tokens. That is what
`ops.verify_attention(tree_mask=ops.verify_attention.tree_mask_from_parents(parents))` and
`ops.accept_prefix.accept_tree` take; a depth-d node sits at position pos + d.

`TreeDrafter` grows the tree best-first (Li et al. 2024, EAGLE-2): every candidate child carries
the product of the draft's probabilities along its path, and the most probable candidate is added
next, until the tree has `rows` nodes; a prompt-lookup branch (the n-gram continuation, as
NgramDrafter finds it) can go in first. One top child per node is a chain: the draft's greedy.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import torch

from tt_specdec.drafters.ngram import NgramDrafter


@dataclass
class Tree:
    """tokens [T] (node 0: the root), parents [T] (-1 for the root, else an earlier node)."""
    tokens: list[int]
    parents: list[int] = field(default_factory=lambda: [-1])
    kids: list[dict[int, int]] = field(default_factory=lambda: [{}])  # node -> {token: child}

    @classmethod
    def root(cls, token: int) -> "Tree":
        return cls([token])

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, parent: int, token: int) -> int:
        """The child of `parent` carrying `token`, added when it is new; its node index."""
        if token in self.kids[parent]:
            return self.kids[parent][token]
        self.tokens.append(token)
        self.parents.append(parent)
        self.kids.append({})
        self.kids[parent][token] = len(self.tokens) - 1
        return len(self.tokens) - 1

    def path(self, node: int) -> list[int]:
        """Nodes from the root to `node`."""
        nodes = [node]
        while self.parents[nodes[-1]] >= 0:
            nodes.append(self.parents[nodes[-1]])
        return nodes[::-1]

    def accepted(self, target_tokens: list[int]) -> int:
        """n: how many nodes below the root follow `target_tokens` (the target's greedy continuation) from
        the root, i.e. what accept_tree accepts when the target's argmax at each node is the next of those."""
        node, n = 0, 0
        while n < len(target_tokens) and target_tokens[n] in self.kids[node]:
            node = self.kids[node][target_tokens[n]]
            n += 1
        return n


class TreeDrafter:
    """Best-first token trees from a draft Decoder, optionally with a prompt-lookup branch.

    draft: a Decoder (CpuLlama or Llama) sharing the target's vocabulary; top_children: candidates
    pushed per expanded node (1: a chain); lookup: put the n-gram continuation in first, up to
    `lookup_share` of the rows.
    """

    def __init__(self, draft, top_children: int = 4, lookup: bool = False, lookup_share: float = 0.5,
                 max_ngram: int = 4):
        if top_children < 1:
            raise ValueError(f"top_children: got {top_children}, expected >= 1")
        self.draft, self.top_children = draft, top_children
        self.lookup = NgramDrafter(max_ngram) if lookup else None
        self.lookup_share = lookup_share
        self.cached = 0  # context tokens whose KV the draft's cache holds (all but the newest)
        self.held: list[int] = []  # the path (root first) whose KV follows them in the cache

    def start(self, context: list[int], cache_len: int) -> None:
        self.draft.allocate_cache(1, cache_len)
        self.cached, self.held = 0, []
        self.sync(context)

    def sync(self, context: list[int]) -> None:
        """Feed the draft the context tokens it lacks, all but the newest (the root's row is a tree row)."""
        L = len(context) - 1
        if L > self.cached:
            self.draft.forward(torch.tensor([context[self.cached:L]]), torch.tensor([self.cached]))
            self.cached = L
            self.held = []

    def log_probs(self, context: list[int], tree: Tree, node: int) -> torch.Tensor:
        """[V] draft log-probabilities after the path to `node`: that path run as a chain at the context's
        end (its KV overwrites slots past the context, which the next sync rewrites). The part of the path
        the cache already holds from the previous call is not run again (a batch-invariant draft gives the
        same bits either way)."""
        path = [tree.tokens[i] for i in tree.path(node)]
        same = 0
        while same < min(len(path) - 1, len(self.held)) and path[same] == self.held[same]:
            same += 1
        logits = self.draft.forward(torch.tensor([path[same:]]), torch.tensor([len(context) - 1 + same]))[0, -1]
        self.held = path
        return torch.log_softmax(logits.float(), -1)

    def propose(self, context: list[int], rows: int) -> Tree:
        """A tree of at most `rows` nodes (the root included) after `context`."""
        self.sync(context)
        tree = Tree.root(context[-1])
        if self.lookup is not None and rows > 1:
            found = self.lookup.match(torch.tensor(context), max(1, int((rows - 1) * self.lookup_share)))
            if found is not None:
                node = 0
                for tok in found[0][:found[1]].tolist():  # only what really followed the match
                    node = tree.add(node, int(tok))
        heap: list[tuple[float, int, int, int]] = []  # (-log p of the path, tie-break, parent, token)
        order = 0
        expanded = set()

        def expand(node: int, logp: float) -> None:
            nonlocal order
            expanded.add(node)
            lp = self.log_probs(context, tree, node)
            top = torch.topk(lp, self.top_children)
            for v, tok in zip(top.values.tolist(), top.indices.tolist()):
                heapq.heappush(heap, (-(logp + v), order, node, int(tok)))
                order += 1

        expand(0, 0.0)
        while len(tree) < rows and heap:
            neg, _, parent, tok = heapq.heappop(heap)
            node = tree.add(parent, tok)  # a lookup node already there is reached, not added twice
            if node not in expanded and -neg > -math.inf:
                expand(node, -neg)
        return tree
