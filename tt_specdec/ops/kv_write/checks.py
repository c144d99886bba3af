"""kv_write's argument checks."""
from __future__ import annotations

import torch

from tt_specdec.errors import check_shape


def check_kv_write_args(k_new: torch.Tensor, v_new: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                        pos: torch.Tensor, page_table: torch.Tensor | None) -> None:
    """Shapes, dtypes, and every written slot inside the cache (rows with pos < 0 are skipped)."""
    check_shape("k_new", k_new, (None, None, None, None))
    B, T, Hkv, D = k_new.shape
    check_shape("v_new", v_new, (B, T, Hkv, D))
    if page_table is not None:
        check_shape("k_cache", k_cache, (None, Hkv, None, D), "(paged: [blocks, Hkv, blk, D])")
        check_shape("page_table", page_table, (B, None))
        capacity = page_table.shape[1] * k_cache.shape[2]
    else:
        check_shape("k_cache", k_cache, (B, Hkv, None, D), "(contiguous: [B, Hkv, S, D])")
        capacity = k_cache.shape[2]
    check_shape("v_cache", v_cache, tuple(k_cache.shape))
    check_shape("pos", pos, (B,))
    if v_cache.dtype != k_cache.dtype:
        raise ValueError(f"v_cache: got dtype {v_cache.dtype}, expected k_cache's {k_cache.dtype}")
    live = pos[pos >= 0]
    if live.numel() and int(live.max()) + T > capacity:
        raise ValueError(f"pos: got {pos.tolist()} with T={T}, expected pos + T <= {capacity} (cache capacity)")
    if page_table is not None and live.numel():
        blk = k_cache.shape[2]
        for b in torch.nonzero(pos >= 0).flatten().tolist():
            blocks = page_table[b, int(pos[b]) // blk:(int(pos[b]) + T - 1) // blk + 1]
            if bool((blocks < 0).any()) or bool((blocks >= k_cache.shape[0]).any()):
                raise ValueError(f"page_table: row {b} maps slots {int(pos[b])}..{int(pos[b]) + T - 1} to blocks "
                                 f"{blocks.tolist()}, expected allocated blocks 0..{k_cache.shape[0] - 1}")
