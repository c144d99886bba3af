"""The Decoder protocol: what the speculative loop and the drafters need from a target or draft model."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Decoder(Protocol):
    vocab_size: int
    max_seq_len: int  # longest cache allocate_cache accepts
    # who runs its attention: its own engine (`native_attention`: "cpu" for CpuLlama's C++ engine,
    # "torch" for Llama), or ops.verify_attention on "emu" (the TT-Metal kernels on the host emulator)
    attention: str
    # [B, S, n·dim]: at every position a forward wrote, the hidden states after the blocks that
    # allocate_cache's keep_hidden named, side by side (hidden_layers below); else None. keep_hidden=True is
    # the final hidden state before the final norm [B, S, dim] (EAGLE); (2, 15, 27) for SmolLM2's 30 blocks
    # is a low, a middle and a high layer [B, S, 3·dim] (EAGLE-3)
    hidden_cache: torch.Tensor | None

    def allocate_cache(self, batch_size: int, cache_len: int, keep_hidden: bool | tuple[int, ...] = False) -> None:
        """Preallocate a KV cache for `batch_size` rows of `cache_len` positions (and hidden_cache when
        keep_hidden is True or names block counts: every forward from then on writes it)."""

    def prefill(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] right-padded, lengths [B] -> logits [B, V] after each row's last token.
        Writes KV at 0 .. L-1; slots at or after lengths[b] are stale and get overwritten."""

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] at positions pos[b] .. pos[b]+T-1 -> logits [B, T, V]; writes their KV (and
        their hidden states to hidden_cache when kept)."""


@runtime_checkable
class TreeDecoder(Decoder, Protocol):
    """A Decoder that verifies token trees (Llama, CpuLlama): the speculative loop's tree path needs it."""
    k_cache: torch.Tensor  # [n_layers, B, Hkv, S, D]: rollback_kv compacts an accepted path's KV in them
    v_cache: torch.Tensor

    def forward_tree(self, tokens: torch.Tensor, pos: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] (row 0 the root, at position pos[b]), parents [B, T] (-1 for row 0, else an earlier
        row) -> logits [B, T, V]; row t sits at position pos[b] + its depth, sees the cache and its
        ancestors, and writes its KV at slot pos[b] + t."""


def hidden_layers(keep_hidden: bool | tuple[int, ...], n_layers: int) -> tuple[int, ...]:
    """allocate_cache's keep_hidden -> the block counts whose hidden states hidden_cache holds, in order:
    False -> (), True -> (n_layers,) (the final hidden state), a tuple -> itself (increasing, 1..n_layers)."""
    if keep_hidden is False:
        return ()
    if keep_hidden is True:
        return (n_layers,)
    layers = tuple(keep_hidden) if isinstance(keep_hidden, (tuple, list)) else None
    if (not layers or any(not isinstance(c, int) or isinstance(c, bool) for c in layers)
            or list(layers) != sorted(set(layers)) or layers[0] < 1 or layers[-1] > n_layers):
        raise ValueError(f"keep_hidden: got {keep_hidden!r}, expected a bool or increasing block counts in "
                         f"1..{n_layers}")
    return layers
