"""rollback_kv in torch and numpy (the CPU path); arguments validated by tt_specdec.ops.rollback_kv."""
from __future__ import annotations

import numpy as np
import torch

from tt_specdec.ops.rollback_kv.checks import Rollback, stacked


def rollback_kv(pos: torch.Tensor, last: torch.Tensor, num_accepted: torch.Tensor, output_tokens: torch.Tensor,
                page_table: torch.Tensor | None, block_size: int | None, accepted_slots: torch.Tensor | None,
                k_cache: torch.Tensor | None, v_cache: torch.Tensor | None) -> Rollback:
    """Rollback(pos + n + 1, output_tokens[n], page_table, freed), as tt_specdec.ops.rollback_kv
    documents; with accepted_slots, the caches compacted in place."""
    B = pos.shape[0]
    # [B] small integers: numpy, each converted once (the loop calls this every step)
    pos_np, last_np, n_acc = pos.numpy(), last.numpy(), num_accepted.numpy()
    live = n_acc >= 0
    n = np.maximum(n_acc, 0)
    emitted = output_tokens.numpy()[np.arange(B), n]
    if accepted_slots is not None:
        compact_kv((stacked(k_cache), stacked(v_cache)), pos, num_accepted, accepted_slots, page_table)
    # the caller's dtypes kept (int32 on device)
    new_pos = torch.from_numpy(np.where(live, pos_np + n + 1, pos_np).astype(pos_np.dtype))
    new_last = torch.from_numpy(np.where(live, emitted, last_np).astype(last_np.dtype))
    if page_table is None:
        return Rollback(new_pos, new_last, None, None)
    block_start = torch.arange(page_table.shape[1]).view(1, -1) * block_size  # [1, max_blocks]
    release = torch.from_numpy(live).view(B, 1) & (block_start >= new_pos.view(B, 1)) & (page_table >= 0)
    freed = torch.where(release, page_table, -1)
    return Rollback(new_pos, new_last, torch.where(release, -1, page_table), freed)


def compact_kv(caches: tuple[torch.Tensor, ...], pos: torch.Tensor, num_accepted: torch.Tensor,
               accepted_slots: torch.Tensor, page_table: torch.Tensor | None) -> None:
    """Copies slot pos + accepted_slots[j] to pos + j for j <= n of live rows, in every layer and head of
    each cache [L, M, Hkv, S or block_size, D] (K and V; or a kept hidden state as one head). The
    right-hand side is gathered before the scatter, so overlapping slots copy the values from before the
    call."""
    B, rows = accepted_slots.shape
    j = torch.arange(rows).view(1, -1)
    moved = (num_accepted.view(B, 1) >= 0) & (j <= num_accepted.view(B, 1)) & (accepted_slots != j)  # [B, k+1]
    b_idx, j_idx = moved.nonzero(as_tuple=True)  # [M] each
    src = pos.long()[b_idx] + accepted_slots.long()[b_idx, j_idx]
    dst = pos.long()[b_idx] + j_idx
    if page_table is None:
        src_at, dst_at = (b_idx, src), (b_idx, dst)
    else:
        blk = caches[0].shape[3]
        table = page_table.long()
        src_at, dst_at = (table[b_idx, src // blk], src % blk), (table[b_idx, dst // blk], dst % blk)
    for cache in caches:
        cache[:, dst_at[0], :, dst_at[1]] = cache[:, src_at[0], :, src_at[1]]  # [M, L, Hkv, D], gathered first
