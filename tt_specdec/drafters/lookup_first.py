"""Prompt lookup where the context repeats itself, another drafter everywhere else.

Copying is free and, when the tail of the context has occurred before (code, summaries, lists,
a small model's own loops), often right; a learned drafter covers the rest. A row whose tail
matches an earlier n-gram (n >= min_ngram) proposes the continuation; the others take the
fallback's drafts, and when every row matches the fallback is not run at all.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tt_specdec.drafters.base import Drafter, Sampling
from tt_specdec.drafters.ngram import NgramDrafter


class LookupFirstDrafter:
    """NgramDrafter.match per row, else `fallback` (a Drafter whose state is `cached` [B]: the
    positions it holds valid, as ModelDrafter and EagleDrafter keep it)."""

    def __init__(self, fallback: Drafter, max_ngram: int = 4, min_ngram: int = 2):
        if not hasattr(fallback, "cached"):
            raise TypeError(f"fallback: got {type(fallback).__name__}, expected a drafter with `cached` "
                            "(ModelDrafter, EagleDrafter)")
        self.fallback, self.lookup = fallback, NgramDrafter(max_ngram, min_ngram)
        self.vocab_size = fallback.vocab_size
        self.needs_target_hidden = getattr(fallback, "needs_target_hidden", False)

    def reset(self, batch_size: int, cache_len: int) -> None:
        self.fallback.reset(batch_size, cache_len)

    @torch.inference_mode()
    def propose(self, context, length, k, sampling: Sampling, seeds):
        found = [self.lookup.match(context[b, :n], k) for b, n in enumerate(length.tolist())]
        copied = torch.tensor([f is not None for f in found])  # [B]
        if bool(copied.all()):
            # the fallback skips this step: as its own propose would, it trusts only what it fed
            # before the newest token (its drafts past that may have been rejected)
            self.fallback.cached = torch.minimum(self.fallback.cached, length - 1)
            self.draft_confidence = torch.full((len(found), k), float("nan"))  # a copy has no probability
            return torch.stack(found), None
        drafts, probs = self.fallback.propose(context, length, k, sampling, seeds)
        conf = getattr(self.fallback, "draft_confidence", None)
        self.draft_confidence = torch.full((len(found), k), float("nan")) if conf is None else conf.clone()
        for b in copied.nonzero().flatten().tolist():
            drafts[b] = found[b]
            self.draft_confidence[b] = float("nan")
            if probs is not None:  # a copied draft is deterministic: one-hot q
                probs[b] = F.one_hot(found[b], probs.shape[-1]).to(probs.dtype)
        # rows whose drafts were replaced: the fallback's KV past the newest token holds its own drafts
        self.fallback.cached = torch.where(copied, torch.minimum(self.fallback.cached, length), self.fallback.cached)
        return drafts, probs
