"""Prompt lookup where the context repeats itself, another drafter everywhere else.

Copying is free and, when the tail of the context has occurred before (code, summaries, lists,
a small model's own loops), often right; a learned drafter covers the rest. A row whose tail
matches an earlier n-gram (n >= min_ngram) proposes the continuation; the others take the
fallback's drafts, and when every row matches the fallback is not run at all.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tt_specdec.drafters.base import COPIED, OWN, Drafter, Proposal
from tt_specdec.sampling import Sampling
from tt_specdec.drafters.ngram import NgramDrafter



class LookupFirstDrafter:
    """NgramDrafter.match per row, else `fallback` (a Drafter whose state is `cached` [B]: the
    positions it holds valid, as ModelDrafter and EagleDrafter keep it).

    A copy's confidence is its match length / (max_ngram + 1), the same for each copied
    token (the policy learns what each length is worth: source COPIED); copied tokens past
    the end of the continuation have confidence 0 (never verified)."""

    def __init__(self, fallback: Drafter, max_ngram: int = 4, min_ngram: int = 2):
        if not hasattr(fallback, "cached"):
            raise TypeError(f"fallback: got {type(fallback).__name__}, expected a drafter with `cached` "
                            "(ModelDrafter, EagleDrafter)")
        self.fallback, self.lookup = fallback, NgramDrafter(max_ngram, min_ngram)
        self.vocab_size = fallback.vocab_size
        self.needs_target_hidden = fallback.needs_target_hidden
        self.stop_reach = fallback.stop_reach  # it drafts to its confidence, and copies cost nothing
        self.makes_trees = False  # its copies replace chain drafts row by row

    def reset(self, batch_size: int, cache_len: int) -> None:
        self.fallback.reset(batch_size, cache_len)

    def copy(self, ctx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """ctx [L] -> (k copied tokens, their confidence [k]) or None when the tail has no earlier match."""
        found = self.lookup.match(ctx, k)
        if found is None:
            return None
        tokens, real, n = found
        return tokens, torch.tensor([n / (self.lookup.max_ngram + 1)] * real + [0.0] * (k - real))

    @torch.inference_mode()
    def propose(self, context, length, k, sampling: Sampling, seeds) -> Proposal:
        found = [self.copy(context[b, :n], k) for b, n in enumerate(length.tolist())]
        is_copy = [f is not None for f in found]
        copied = torch.tensor(is_copy)  # [B]
        source = np.array([COPIED if c else OWN for c in is_copy])
        if all(is_copy):
            # the fallback skips this step: as its own propose would, it trusts only what it fed
            # before the newest token (its drafts past that may have been rejected)
            self.fallback.cached = torch.minimum(self.fallback.cached, length - 1)
            return Proposal(torch.stack([f[0] for f in found]), None, confidence=torch.stack([f[1] for f in found]),
                            source=source, model_steps=0)  # copies cost no draft-model step
        own = self.fallback.propose(context, length, k, sampling, seeds)
        drafts, probs = own.tokens, own.probs
        conf = torch.full(drafts.shape, float("nan")) if own.confidence is None else own.confidence.clone()
        if any(is_copy) and drafts.shape[1] < k:  # the fallback stopped early: copies may go on
            pad = k - drafts.shape[1]
            drafts = torch.cat([drafts, drafts[:, -1:].expand(-1, pad)], 1)
            conf = torch.cat([conf, torch.zeros(len(conf), pad)], 1)  # not drafts: never verified
            probs = None if probs is None else torch.cat([probs, probs[:, -1:].expand(-1, pad, -1)], 1)
        width = drafts.shape[1]
        for b in (b for b, c in enumerate(is_copy) if c):
            drafts[b], conf[b] = found[b][0][:width], found[b][1][:width]
            if probs is not None:  # a copied draft is deterministic: one-hot q
                probs[b] = F.one_hot(found[b][0][:width], probs.shape[-1]).to(probs.dtype)
        if any(is_copy):  # rows whose drafts were replaced: the fallback's KV past the newest token holds its own
            self.fallback.cached = torch.where(copied, torch.minimum(self.fallback.cached, length), self.fallback.cached)
        return Proposal(drafts, probs, confidence=conf, source=source, model_steps=own.steps)
