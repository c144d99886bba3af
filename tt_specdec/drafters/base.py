"""The Drafter protocol."""
from __future__ import annotations

from typing import Protocol

import torch

from tt_specdec.sampling import Sampling


class Drafter(Protocol):
    vocab_size: int | None  # None: proposes ids from the context, works with any vocabulary

    def reset(self, batch_size: int, cache_len: int) -> None:
        """Start a new batch of sequences."""

    def propose(self, context: torch.Tensor, length: torch.Tensor, k: int, sampling: Sampling,
                seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draft k tokens after each row's context.

        context [B, S] token buffer, row b valid in 0 .. length[b]-1 (its last entry is the
        newest emitted token); seeds [B] this step's per-row seeds (greedy steps, which draw nothing, get
        the run's row seeds).
        Returns draft_tokens [B, k] and draft_probs [B, k, V] (the distribution each draft
        was sampled from), or None for a deterministic proposal.
        Optionally sets `self.draft_confidence` [B, k]: its probability of each draft (NaN: none;
        0: not a draft, never verified), which lets the adaptive-k policy verify only the drafts
        worth their verify rows, and `self.draft_source` [B] (which of its kinds of draft each row's
        is, e.g. 1 = copied; default 0), whose confidences the policy calibrates apart. A drafter
        with `stop_reach` may return fewer than k columns (it stopped where no row was likely to
        reach); the policy then asks it for its k_max. `self.draft_steps`: the draft-model steps
        this proposal ran (default: its columns; 0 for a copy), what the cost model charges c for.
        """
