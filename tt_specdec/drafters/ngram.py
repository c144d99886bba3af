"""Prompt lookup: draft by copying what followed the latest earlier match of the context's tail."""
from __future__ import annotations

import torch

from tt_specdec.drafters.base import Sampling


class NgramDrafter:
    """No second model: find the most recent earlier occurrence of the last n tokens
    (n from max_ngram down to min_ngram) in the row's own context and propose the k
    tokens that followed it. Deterministic, so draft_probs is None (one-hot q).
    Rows without a match propose their newest token repeated (cheap, usually rejected).
    """

    vocab_size = None

    def __init__(self, max_ngram: int = 4, min_ngram: int = 1):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"min_ngram, max_ngram: got {min_ngram}, {max_ngram}, expected 1 <= min_ngram <= max_ngram")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def reset(self, batch_size: int, cache_len: int) -> None:
        pass

    def propose(self, context, length, k, sampling: Sampling, seeds):
        drafts = torch.empty(context.shape[0], k, dtype=torch.long)
        for b, n_ctx in enumerate(length.tolist()):
            drafts[b] = self.lookup(context[b, :n_ctx], k)
        return drafts, None

    def lookup(self, ctx: torch.Tensor, k: int) -> torch.Tensor:
        """ctx [L] -> k proposed tokens."""
        found = self.match(ctx, k)
        return ctx[-1:].expand(k).clone() if found is None else found[0]

    def match(self, ctx: torch.Tensor, k: int) -> tuple[torch.Tensor, int, int] | None:
        """ctx [L] -> (k tokens: what followed the latest earlier occurrence of the longest matching
        tail, how many of them really followed it, that tail's length n), or None."""
        L = ctx.shape[0]
        for n in range(min(self.max_ngram, L - 1), self.min_ngram - 1, -1):
            windows = ctx.unfold(0, n, 1)[:-1]  # [L-n, n], every earlier n-gram (the tail itself excluded)
            hits = (windows == ctx[L - n:]).all(1).nonzero()
            if len(hits):
                follow = ctx[int(hits[-1]) + n:][:k]
                # a match near the end runs out of continuation: pad by repeating the tail
                return torch.cat([follow, follow[-1:].expand(k - len(follow))]), len(follow), n
        return None
