"""Prompt lookup: draft by copying what followed the latest earlier match of the context's tail."""
from __future__ import annotations

import numpy as np
import torch

from tt_specdec.drafters.base import Proposal
from tt_specdec.sampling import Sampling


class NgramDrafter:
    """No second model: find the most recent earlier occurrence of the last n tokens
    (n from max_ngram down to min_ngram) in the row's own context and propose the k
    tokens that followed it. Deterministic, so draft_probs is None (one-hot q).
    Rows without a match propose their newest token repeated (cheap, usually rejected).
    """

    vocab_size = None
    needs_target_hidden = False
    stop_reach = None
    makes_trees = False

    def __init__(self, max_ngram: int = 4, min_ngram: int = 1):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"min_ngram, max_ngram: got {min_ngram}, {max_ngram}, expected 1 <= min_ngram <= max_ngram")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def reset(self, batch_size: int, cache_len: int) -> None:
        pass

    def propose(self, context, length, k, sampling: Sampling, seeds) -> Proposal:
        drafts = torch.empty(context.shape[0], k, dtype=torch.long)
        for b, n_ctx in enumerate(length.tolist()):
            drafts[b] = self.lookup(context[b, :n_ctx], k)
        return Proposal(drafts)  # deterministic: one-hot q

    def lookup(self, ctx: torch.Tensor, k: int) -> torch.Tensor:
        """ctx [L] -> k proposed tokens."""
        found = self.match(ctx, k)
        return ctx[-1:].expand(k).clone() if found is None else found[0]

    def match(self, ctx: torch.Tensor, k: int) -> tuple[torch.Tensor, int, int] | None:
        """ctx [L] -> (k tokens: what followed the latest earlier occurrence of the longest matching
        tail, how many of them really followed it, that tail's length n), or None."""
        ids = ctx.numpy().astype(np.int64, copy=False)
        L = ids.shape[0]
        # bytes.rfind finds the latest earlier n-gram in one C call (every step, on a cold cache after the
        # target's forward, each torch/numpy op costs ~10-50 us); a hit must start on a token boundary
        raw = ids.tobytes()
        end = (L - 1) * 8  # earlier n-grams end before the newest token (8 bytes a token)
        for n in range(min(self.max_ngram, L - 1), self.min_ngram - 1, -1):
            tail = raw[(L - n) * 8:]
            at = raw.rfind(tail, 0, end)
            while at >= 0 and at % 8:  # straddles two tokens' bytes: look further back
                at = raw.rfind(tail, 0, at + len(tail) - 1)
            if at >= 0:
                follow = ids[at // 8 + n:][:k]
                # a match near the end runs out of continuation: pad by repeating the tail
                padded = np.concatenate([follow, np.repeat(follow[-1:], k - len(follow))])
                return torch.from_numpy(padded), len(follow), n
        return None
