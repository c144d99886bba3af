"""Token trees: a drafter proposes a tree of candidates instead of one chain (EAGLE-2 style).

A `Tree` is in topological order: node 0 the root (the last emitted token, whose row the target
verifies first), node t's parent before it, siblings with distinct tokens. That is what
`ops.verify_attention(tree_mask=ops.verify_attention.tree_mask_from_parents(parents))` and
`ops.accept_prefix.accept_tree` take; a depth-d node sits at position pos + d.

`TreeDrafter` grows the tree best-first (Li et al. 2024, EAGLE-2): every candidate child carries
the product of the draft's probabilities along its path, and the most probable candidate is added
next, until the tree has k + 1 nodes; a prompt-lookup branch (the n-gram continuation, as
NgramDrafter finds it) can compete, its tokens valued by the match's length. One top child per
node (width 1) is a chain: the draft's greedy. Nodes are added best first, so the first j nodes
of a proposal are the tree of j nodes. `best_first` is the growth itself, for any drafter that can
expand a node (TreeDrafter: the draft model; eagle_tree.EagleTreeDrafter: an EAGLE head).
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from tt_specdec.drafters.base import COPIED, OWN, Proposal
from tt_specdec.drafters.ngram import NgramDrafter
from tt_specdec.sampling import Sampling


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
    """Best-first token trees from a draft Decoder (a Drafter whose proposals carry `parents`), optionally
    with a prompt-lookup branch.

    draft: a Decoder (CpuLlama or Llama) sharing the target's vocabulary; top_children: the width,
    candidates pushed per expanded node (1: a chain), unless propose is given another; lookup: the
    n-gram continuation of the context's tail competes as a branch from the root (lookup_copies).

    One draft forward per round expands one node of every row that still grows (rows share the call, as
    ModelDrafter's rows do): a tree of k drafts costs about k draft steps, like a chain of k. The cache of
    row b holds the context's KV up to `cached[b]` and after it `held[b]`, the tree path last fed; a
    feed re-runs what the rows do not share (a batch-invariant draft rewrites the same bits).
    """

    needs_target_hidden = False
    stop_reach = None  # k drafts, exactly
    makes_trees = True

    def __init__(self, draft, top_children: int = 4, lookup: bool = False, max_ngram: int = 4):
        if not (isinstance(top_children, int) and top_children >= 1):
            raise ValueError(f"top_children: got {top_children!r}, expected an int >= 1")
        self.model, self.top_children = draft, top_children  # `model`: as ModelDrafter's (the cost cache's key)
        self.vocab_size = draft.vocab_size
        self.lookup = NgramDrafter(max_ngram) if lookup else None
        self.cached: list[int] = []  # [B] context positions whose KV the draft cache holds
        self.held: list[list[int]] = []  # [B] the tokens whose KV follows them in the cache

    def reset(self, batch_size: int, cache_len: int) -> None:
        self.model.allocate_cache(batch_size, cache_len)
        self.cached, self.held = [0] * batch_size, [[] for _ in range(batch_size)]

    def sync(self, ctx: list[int], b: int) -> None:
        """Row b's cache after new context `ctx` [L]: the held tokens that the context now confirms count as
        cached (up to L-1: the newest token is the root, a tree row); the rest of held stays only while it
        can still be the start of a tree path (from the root's position)."""
        held, c = self.held[b], min(self.cached[b], len(ctx) - 1)
        same = 0
        while same < len(held) and c + same < len(ctx) - 1 and held[same] == ctx[c + same]:
            same += 1
        self.cached[b] = c + same
        self.held[b] = held[same:] if c + same == len(ctx) - 1 else []

    def feed(self, ctxs: list[list[int]], paths: list[list[int] | None]) -> torch.Tensor:
        """One draft forward for all rows: row b runs its tree path paths[b] (None: nothing new) after its
        context -> log-probabilities [B, V] after each path (rows with None: unused). Each row feeds what its
        cache lacks, the longest feed sets the call's width, shorter rows re-feed cached tokens before
        theirs (and a row shorter than the call is padded on the right, past everything it keeps)."""
        B = len(ctxs)
        fed, ends, valid = [], [], []  # per row: its path, where it ends, how much of the cache is valid
        for b in range(B):
            held, path = self.held[b], paths[b] if paths[b] is not None else self.held[b]
            same = 0  # held is non-empty only when cached[b] is the root's position (sync)
            while same < min(len(path), len(held)) and path[same] == held[same]:
                same += 1
            fed.append(path)
            ends.append(len(ctxs[b]) - 1 + len(path))  # the row's tokens: ctx[:L-1] + path
            valid.append(self.cached[b] + same)
        span = max(1, max(e - v for e, v in zip(ends, valid)))
        starts = [max(0, e - span) for e in ends]
        tokens = []  # [B, span]: ctx[:L-1] + path from start, padded on the right with its last token
        for ctx, path, st, end in zip(ctxs, fed, starts, ends):
            row = (ctx[st:len(ctx) - 1] + path) if st < len(ctx) - 1 else path[st - (len(ctx) - 1):]
            tokens.append(row + [row[-1] if row else 0] * (span - len(row)))
        logits = self.model.forward(torch.tensor(tokens), torch.tensor(starts))  # [B, span, V]
        last = torch.tensor([max(e - 1 - st, 0) for e, st in zip(ends, starts)])
        for b in range(B):  # the cache now holds each row's context and path (and padding past them)
            self.cached[b], self.held[b] = len(ctxs[b]) - 1, fed[b]
        return torch.log_softmax(logits[torch.arange(B), last].float(), -1)

    @torch.inference_mode()
    def propose(self, context, length, k, sampling: Sampling, seeds, width: int | None = None) -> Proposal:
        """k drafts per row as a tree after each row's context (context [B, S], length [B]); width: the most
        children per node (default top_children; 1: a chain). Deterministic (greedy or coupled verify)."""
        width = self.top_children if width is None else width
        ctxs = [context[b, :n].tolist() for b, n in enumerate(length.tolist())]
        for b in range(len(ctxs)):
            self.sync(ctxs[b], b)

        def expand(trees: list[Tree], todo: list[int | None]) -> tuple[list[list[float]], list[list[int]]]:
            lp = self.feed(ctxs, [None if t is None else [trees[b].tokens[i] for i in trees[b].path(t)]
                                  for b, t in enumerate(todo)])  # [B, V]
            top = torch.topk(lp, min(width, lp.shape[1]))
            return top.values.tolist(), top.indices.tolist()

        return best_first(ctxs, k, [lookup_copies(self.lookup, c, k) for c in ctxs], expand)


Expand = Callable[[list[Tree], list[int | None]], tuple[list[list[float]], list[list[int]]]]


def best_first(ctxs: list[list[int]], k: int, copies: list[tuple[list[int], float] | None],
               expand: Expand) -> Proposal:
    """The best-first trees of k drafts after each row's context ctxs [B][L] (EAGLE-2's dynamic tree), as a
    Proposal with parents. expand(trees, todo) runs the drafter once for every row's node todo[b] (None:
    the row expands nothing) and returns, per row, its candidate children: (log p of each [B][w], their
    token ids [B][w]); copies[b]: the row's prompt-lookup branch (lookup_copies) or None. Rounds of expand
    run until every tree has k + 1 nodes or nothing left to expand; model_steps counts them."""
    B = len(ctxs)
    trees = [Tree.root(c[-1]) for c in ctxs]
    order = itertools.count()  # heap tie-break: first pushed, first taken
    # per row, candidates (-log p of the path, order, parent, token, copy index or -1 for the draft's own)
    heaps: list[list] = [[] for _ in range(B)]
    for b, found in enumerate(copies):
        if found is not None:  # the copy's first token competes with the draft's from the start
            heaps[b].append((-found[1], next(order), 0, found[0][0], 0))
    logp = [{0: 0.0} for _ in range(B)]  # node -> log p of its path, for the nodes reached
    expanded = [set() for _ in range(B)]
    todo = [0 if k > 0 else None for _ in range(B)]  # the node each row expands next (None: full)
    rounds = 0
    while any(t is not None for t in todo):
        values, tokens = expand(trees, todo)
        rounds += 1
        for b, node in enumerate(todo):
            if node is not None:
                expanded[b].add(node)
                for v, tok in zip(values[b], tokens[b]):
                    heapq.heappush(heaps[b], (-(logp[b][node] + v), next(order), node, int(tok), -1))
        todo = [grow(trees[b], heaps[b], logp[b], expanded[b], copies[b], k + 1, order) for b in range(B)]
    source = np.array([OWN if c is None else COPIED for c in copies])
    tokens = torch.tensor([t.tokens[1:] for t in trees], dtype=torch.long).view(B, k)
    parents = torch.tensor([t.parents for t in trees], dtype=torch.long).view(B, k + 1)
    return Proposal(tokens, source=source, model_steps=rounds, parents=parents)


def grow(tree: Tree, heap: list, logp: dict[int, float], expanded: set[int],
         copies: tuple[list[int], float] | None, nodes: int, order) -> int | None:
    """Take the most probable candidates into `tree` until it has `nodes` nodes (None: full, nothing to
    expand) or the draft's own candidate adds or reaches a node not expanded yet: that node. A copied
    token's node is not expanded (copies cost no draft step) unless a draft candidate reaches it; it
    offers the next copied token as a candidate."""
    while len(tree) < nodes and heap:
        neg, _, parent, tok, copy = heapq.heappop(heap)
        node = tree.add(parent, tok)  # a node already there is reached, not added twice
        logp.setdefault(node, -neg)
        if copy >= 0 and copy + 1 < len(copies[0]):
            heapq.heappush(heap, (-(logp[node] + copies[1]), next(order), node, copies[0][copy + 1], copy + 1))
        if copy < 0 and len(tree) < nodes and node not in expanded and -neg > -math.inf:
            return node
    return None


def lookup_copies(lookup: NgramDrafter | None, ctx: list[int], k: int) -> tuple[list[int], float] | None:
    """The prompt-lookup branch of a row: (up to k tokens that followed the latest earlier occurrence of
    the context's tail, log p of each) or None (no lookup, k = 0 or no match). Each copied token counts as
    probability n / (max_ngram + 1) for a match of n tokens (as LookupFirstDrafter's confidence), so copies
    and the draft's own candidates are taken best first together."""
    if lookup is None or k == 0:
        return None
    found = lookup.match(torch.tensor(ctx), k)
    if found is None:
        return None
    tokens, real, n = found
    return tokens[:real].tolist(), math.log(n / (lookup.max_ngram + 1))
