"""The Decoder protocol: what the speculative loop needs from a target or draft model."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Decoder(Protocol):
    vocab_size: int
    max_seq_len: int  # longest cache allocate_cache accepts

    def allocate_cache(self, batch_size: int, cache_len: int) -> None:
        """Preallocate a KV cache for `batch_size` rows of `cache_len` positions."""

    def prefill(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] right-padded, lengths [B] -> logits [B, V] after each row's last token.
        Writes KV at 0 .. L-1; slots at or after lengths[b] are stale and get overwritten."""

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] at positions pos[b] .. pos[b]+T-1 -> logits [B, T, V]; writes their KV."""
