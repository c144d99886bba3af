"""A small draft model that proposes k tokens autoregressively from its own KV cache."""
from __future__ import annotations

import torch

from tt_specdec.drafters.base import Proposal
from tt_specdec.models.decoder import Decoder
from tt_specdec.sampling import STREAM_DRAFT, Sampling, coupled_sample, process_logits, sample_inverse_cdf, uniform


class ModelDrafter:
    """Drafts with a Decoder sharing the target's vocabulary.

    The draft cache is never rolled back explicitly: `cached[b]` counts positions whose
    KV it holds, and since accepted tokens are exactly the drafts it fed, its KV is valid
    up to min(cached, length - 1). Each proposal first feeds what it lacks (the newest
    token, plus d_k after a fully accepted step), then k-1 single-token steps.
    """

    needs_target_hidden = False
    stop_reach = None  # drafts exactly the k asked
    makes_trees = False

    def __init__(self, model: Decoder):
        self.model = model
        self.vocab_size = model.vocab_size
        self.cached = torch.zeros(0, dtype=torch.long)  # [B]

    def reset(self, batch_size: int, cache_len: int) -> None:
        self.model.allocate_cache(batch_size, cache_len)
        self.cached = torch.zeros(batch_size, dtype=torch.long)

    @torch.inference_mode()
    def propose(self, context, length, k, sampling: Sampling, seeds) -> Proposal:
        B = context.shape[0]
        self.cached = torch.minimum(self.cached, length - 1)
        # one batched call feeds every row's missing tokens; rows missing fewer re-feed cached
        # ones, rows shorter than the call (first call = draft prefill) are padded on the right
        feed = int((length - self.cached).max())
        start = (length - feed).clamp(min=0)  # [B]
        tokens = context.gather(1, start.view(B, 1) + torch.arange(feed))  # [B, feed]
        logits = self.model.forward(tokens, start)[torch.arange(B), length - 1 - start]  # [B, V]
        pos = length.clone()
        drafts, probs, conf = [], [], []
        for t in range(k):
            if sampling.greedy:
                token = logits.argmax(-1)
                conf.append(torch.softmax(logits.float(), -1).gather(1, token.view(B, 1))[:, 0])
            else:
                q = process_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p)
                if sampling.coupled:  # the target's noise at d_t's position: no draft_probs needed
                    token = coupled_sample(q, seeds, length + t)
                else:
                    token = sample_inverse_cdf(q, uniform(seeds, STREAM_DRAFT, t))
                    probs.append(q)
                conf.append(q.gather(1, token.view(B, 1))[:, 0])
            drafts.append(token)
            if t + 1 < k:  # d_k is never fed: its KV is only needed if all k are accepted
                logits = self.model.forward(token.view(B, 1), pos)[:, 0]
                pos += 1
        self.cached = pos
        return Proposal(torch.stack(drafts, 1), torch.stack(probs, 1) if probs else None,
                        confidence=torch.stack(conf, 1).float())  # its probability of each draft
