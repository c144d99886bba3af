"""The Drafter protocol and what every drafter returns: a Proposal."""
from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import torch

from tt_specdec.sampling import Sampling

OWN, COPIED = 0, 1  # Proposal.source: drafted by the drafter's own model / copied from the context


@dataclasses.dataclass
class Proposal:
    """One step's drafts, and everything the loop and the k policy learn from the drafter.

    tokens      [B, k']     d_1 .. d_k' (k' <= the k asked: a drafter with `stop_reach` may stop early)
    probs       [B, k', V]  q_t, the distribution each draft was sampled from; None = deterministic
                            drafts (q_t one-hot on d_t)
    confidence  [B, k']     the drafter's probability of each draft (NaN: it cannot say; 0: not a draft,
                            never verified), or None; the policy verifies only the drafts worth their rows
    source      [B]         OWN or COPIED per row, whose confidences the policy calibrates apart; None = OWN
    model_steps             draft-model steps this proposal ran (what the cost model charges c for);
                            None = k' (one per draft), 0 for copies
    parents     [B, k'+1]   a token tree (drafters/tree.py): node 0 is `last` (parent -1), node t = d_t with
                            its parent in 0 .. t-1, siblings distinct, nodes best first (so any prefix of the
                            nodes is a tree); None = a chain (parent of d_t is d_{t-1})
    """
    tokens: torch.Tensor
    probs: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    source: np.ndarray | None = None  # numpy: the loop's and the policy's form for per-row integers
    model_steps: int | None = None
    parents: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        """Draft-model steps run: model_steps, or one per draft column."""
        return self.tokens.shape[1] if self.model_steps is None else self.model_steps


class Drafter(Protocol):
    vocab_size: int | None  # None: proposes ids from the context, works with any vocabulary
    # what it reads of the target's hidden states (Decoder.hidden_cache): False nothing, True the final ones
    # (EAGLE), block counts the states after those blocks (EAGLE-3); the loop passes it to allocate_cache's
    # keep_hidden
    needs_target_hidden: bool | tuple[int, ...]
    # None: it drafts exactly the k asked. A float: it drafts while some row's product of draft
    # probabilities is at least stop_reach, up to k (the policy then asks it for its k_max and trims)
    stop_reach: float | None
    # True: its proposals are token trees (Proposal.parents) and propose takes `width`, the most children
    # per node (1: a chain; default its `top_children`); the loop verifies them with the target's
    # forward_tree, greedy or coupled
    makes_trees: bool

    def reset(self, batch_size: int, cache_len: int) -> None:
        """Start a new batch of sequences."""

    def propose(self, context: torch.Tensor, length: torch.Tensor, k: int, sampling: Sampling,
                seeds: torch.Tensor) -> Proposal:
        """Draft up to k tokens after each row's context.

        context [B, S] token buffer, row b valid in 0 .. length[b]-1 (its last entry is the
        newest emitted token); seeds [B] this step's per-row seeds (greedy steps, which draw nothing, get
        the run's row seeds). With sampling.coupled, seeds are the run's row seeds and draft d_t (at
        position length + t - 1) is sampling.coupled_sample of the drafter's distribution there: the
        target's noise, no probs.
        """
