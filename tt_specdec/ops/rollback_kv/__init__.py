"""Advance positions past the accepted tokens and release the KV slots of rejected drafts."""
from __future__ import annotations

import torch

from tt_specdec.ops import dispatch
from tt_specdec.ops.rollback_kv.checks import (Rollback, check_compaction, check_paged_slots, check_rollback_args,
                                             stacked)

__all__ = ["Rollback", "check_compaction", "check_paged_slots", "check_rollback_args", "compact_hidden", "rollback_kv",
           "stacked"]


def rollback_kv(pos: torch.Tensor, last: torch.Tensor, num_accepted: torch.Tensor, output_tokens: torch.Tensor, *,
                page_table: torch.Tensor | None = None, block_size: int | None = None,
                accepted_slots: torch.Tensor | None = None, k_cache: torch.Tensor | None = None,
                v_cache: torch.Tensor | None = None, backend: str = "torch") -> Rollback:
    """State after one speculative step; inputs are not modified.

    Shapes:
        pos, last      [B]            before the step
        num_accepted   [B]            n per row from accept_prefix; -1 skips the row (finished)
        output_tokens  [B, k+1]       from accept_prefix
        page_table     [B, max_blocks] paged cache only, with block_size slots per block
        accepted_slots [B, k+1]       with k_cache, v_cache: accepted token j (j <= n) had its KV written
                                      at slot pos + accepted_slots[j] (tree speculation); it is copied
                                      to pos + j. Identity rows (the chain) copy nothing.
        k_cache        [B, Hkv, S, D] or stacked [L, B, Hkv, S, D]; paged: [blocks, Hkv, block_size, D]
                                      or [L, blocks, Hkv, block_size, D]. Updated in place.
        v_cache        same shape and dtype as k_cache, updated in place
        backend        "torch", "emu": the TT-Metal kernels of kernels/ on the host emulator,
                       or "device": the same kernels on a Tenstorrent card (also chosen for ttnn tensors;
                       then the result stays on the card, int32)
        returns        Rollback(pos + n + 1, output_tokens[n], page_table, freed)

    KV slots pos+n+1 .. pos+k hold rejected drafts: with a contiguous cache they are
    simply masked by the next step's staircase and overwritten; with a paged cache
    every block that starts at or after the new pos is released (page_table entry
    set to -1, its id reported in `freed`).

    Compaction is a gather then a scatter: every accepted row is read before any is
    written, so for all j <= n the new slot pos + j holds what slot pos + accepted_slots[j]
    held before the call, whatever the overlap (a slot may be read by one j and written
    by another). Rows j > n, finished rows and all other slots are left as they were.

    B = 0 returns the same empty state on every backend.

    Example:
        >>> rollback_kv(torch.tensor([10, 7]), torch.tensor([5, 9]), torch.tensor([2, -1]),
        ...             torch.tensor([[4, 6, 8, -1], [-1, -1, -1, -1]])).pos
        tensor([13,  7])
    """
    backend = dispatch.backend_for(backend, pos)
    if not dispatch.is_ttnn_tensor(pos):  # ttnn tensors stay on the card: nothing is read back
        check_rollback_args(pos, last, num_accepted, output_tokens, page_table, block_size)
        check_compaction(pos, num_accepted, output_tokens.shape[1] - 1, accepted_slots, k_cache, v_cache, page_table,
                         block_size)
    if backend == "torch" or (pos.shape[0] == 0 and not dispatch.is_ttnn_tensor(pos)):  # B = 0: the same
        from tt_specdec.ops.rollback_kv import torch_impl  # empty answer on every backend (nothing to run)
        return torch_impl.rollback_kv(pos, last, num_accepted, output_tokens, page_table, block_size, accepted_slots,
                                      k_cache, v_cache)
    from tt_specdec.ops.rollback_kv import program
    return program.run(dispatch.executor(backend), pos, last, num_accepted, output_tokens, page_table=page_table,
                       block_size=block_size, accepted_slots=accepted_slots, k_cache=k_cache, v_cache=v_cache)[0]


def compact_hidden(pos: torch.Tensor, num_accepted: torch.Tensor, accepted_slots: torch.Tensor,
                   hidden_cache: torch.Tensor) -> None:
    """A token tree's kept hidden states (a Decoder's hidden_cache [B, S, W]) compacted in place as rollback_kv
    compacts the KV with the same pos [B] (before the step), num_accepted [B] and accepted_slots [B, k+1]:
    slot pos + accepted_slots[j] copied to pos + j for j <= n of live rows (torch; the tree path's only
    backend). Validated as rollback_kv's compaction, before anything is written."""
    from tt_specdec.ops.rollback_kv import torch_impl

    if hidden_cache.dim() != 3 or hidden_cache.shape[0] != pos.shape[0]:
        raise ValueError(f"hidden_cache: got shape {list(hidden_cache.shape)}, expected [B, S, W] with B={pos.shape[0]} "
                         "(a Decoder's hidden_cache)")
    one_head = hidden_cache.unsqueeze(1)  # [B, 1, S, W]: a cache of one layer and one head
    check_compaction(pos, num_accepted, accepted_slots.shape[-1] - 1, accepted_slots, one_head, one_head, None, None)
    torch_impl.compact_kv((stacked(one_head),), pos, num_accepted, accepted_slots, None)
