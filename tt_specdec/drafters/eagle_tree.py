"""EAGLE-2's dynamic token trees from an EAGLE head (an EAGLE-3 head: `eagle3-tree`, `lookup+eagle3-tree`).

The tree grows best first as TreeDrafter's (drafters/tree.py: `best_first`), by the product of the head's
probabilities along a node's path, optionally with the prompt-lookup branch competing from the root.
Expanding node n at depth i runs the head step of EagleDrafter's chain at head slot (length-2) + i: input
(embed(token_n), h_parent), where the root's h is the head's output after the target's features
(EagleDrafter.first_step) and every other node's h is its own step's output, kept per node. The head's
cache must hold n's ancestors at the slots before it: each expansion re-feeds the part of n's path the
cache does not hold (`held[b]`, the path fed last), as TreeDrafter.feed does for a draft model; a
batch-invariant head (the CPU engine's kernels) rewrites the same bits, so one child per node (width 1) is
EagleDrafter's greedy chain, token for token.
"""
from __future__ import annotations

import torch

from tt_specdec.drafters.base import Proposal
from tt_specdec.drafters.eagle import EagleDrafter, EagleHead
from tt_specdec.drafters.ngram import NgramDrafter
from tt_specdec.drafters.tree import Tree, best_first, lookup_copies
from tt_specdec.sampling import Sampling


class EagleTreeDrafter(EagleDrafter):
    """Best-first token trees from an EagleHead or Eagle3Head on the target's features (a Drafter whose
    proposals carry `parents`). top_children: the width, candidates pushed per expanded node (1: a chain),
    unless propose is given another; lookup: the n-gram continuation of the context's tail competes as a
    branch from the root (lookup_copies)."""

    stop_reach = None  # k drafts, exactly: the TreePolicy sizes the tree
    makes_trees = True

    def __init__(self, target, head: EagleHead, top_children: int = 4, lookup: bool = False, max_ngram: int = 4):
        if not (isinstance(top_children, int) and not isinstance(top_children, bool) and top_children >= 1):
            raise ValueError(f"top_children: got {top_children!r}, expected an int >= 1")
        super().__init__(target, head)
        self.top_children = top_children
        self.lookup = NgramDrafter(max_ngram) if lookup else None
        self.held: list[list[int]] = []  # [B] the nodes of this proposal's tree whose KV sits at slots length-1..

    @torch.inference_mode()
    def propose(self, context, length, k, sampling: Sampling, seeds, width: int | None = None) -> Proposal:
        """k drafts per row as a tree after each row's context (context [B, S], length [B]); width: the most
        children per node (default top_children; 1: a chain). Deterministic (greedy or coupled verify)."""
        width = self.top_children if width is None else width
        self.check_reach(length, k)  # the deepest node expanded, at depth k-1, writes slot (length-1) + (k-2)
        B = context.shape[0]
        ctxs = [context[b, :n].tolist() for b, n in enumerate(length.tolist())]
        root_h, root_logits, ready = self.first_step(context, length)  # [B, d], [B, N], [B]
        outputs = [{0: root_h[b]} for b in range(B)]  # per row: node -> its head output h [d]
        self.held = [[] for _ in range(B)]
        pending = [root_logits]  # the root's expansion: the first step's logits

        def expand(trees: list[Tree], todo: list[int | None]) -> tuple[list[list[float]], list[list[int]]]:
            logits = pending.pop() if pending else self.feed(trees, todo, outputs, ready)  # [B, N]
            top = torch.topk(logits, min(width, logits.shape[1]))  # on the logits: argmax's order
            logp = top.values - torch.logsumexp(logits, -1, keepdim=True)  # [B, w]
            return logp.tolist(), self.head.vocab_ids[top.indices].tolist()

        proposal = best_first(ctxs, k, [lookup_copies(self.lookup, c, k) for c in ctxs], expand)
        self.cached = ready
        return proposal

    def feed(self, trees: list[Tree], todo: list[int | None], outputs: list[dict[int, torch.Tensor]],
             ready: torch.Tensor) -> torch.Tensor:
        """One head call for all rows: row b runs the path below the root to node todo[b] (None: re-feeds
        held[b]), its depth-i node at slot ready[b] + i - 1 -> logits [B, N] after each row's node (rows with
        None: unused). Each row feeds what its cache lacks; the longest feed sets the call's width, shorter
        rows re-feed held nodes before theirs, a row with a shorter path is padded on the right (slots past
        everything it holds). Stores each fed node's output in outputs[b]."""
        B = len(todo)
        paths = [self.held[b] if n is None else trees[b].path(n)[1:] for b, n in enumerate(todo)]
        same = []  # per row: how many of its path's first nodes the cache holds
        for path, held in zip(paths, self.held):
            s = 0
            while s < min(len(path), len(held)) and path[s] == held[s]:
                s += 1
            same.append(s)
        span = max(1, max(len(p) - s for p, s in zip(paths, same)))
        starts = [max(0, len(p) - span) for p in paths]  # [B] index in the path of the call's first row
        d = self.head.cfg.dim
        tokens, feats = torch.zeros(B, span, dtype=torch.long), torch.zeros(B, span, d, dtype=self.head.fc.weight.dtype)
        for b, (path, st) in enumerate(zip(paths, starts)):
            fed = path[st:]
            for j, node in enumerate(fed):  # node's step: (its token, its parent's output h)
                tokens[b, j] = trees[b].tokens[node]
                feats[b, j] = outputs[b][trees[b].parents[node]]
            if fed:  # padding repeats the last node (its KV lands past the path: never attended)
                tokens[b, len(fed):], feats[b, len(fed):] = tokens[b, len(fed) - 1], feats[b, len(fed) - 1]
        out = self.step(self.target.embed(tokens), feats, ready + torch.tensor(starts), with_logits=False)[0]
        last = []  # [B] the call's row of each row's node
        for b, (path, st) in enumerate(zip(paths, starts)):
            for j, node in enumerate(path[st:]):
                outputs[b][node] = out[b, j]
            last.append(max(len(path) - 1 - st, 0))
            self.held[b] = path
        return self.logits(out[torch.arange(B), torch.tensor(last)])  # [B, N]
