"""verify_attention's argument checks and the names its torch version, program and reference share."""
from __future__ import annotations

import torch

from tt_specdec.errors import check_shape


def check_verify_args(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
                      page_table: torch.Tensor | None) -> None:
    """Validates verify_attention's arguments (shapes, GQA grouping, positions within the cache)."""
    B, T, Hq, D = q.shape
    Hkv = k_cache.shape[1]
    check_shape("q", q, (None, None, None, None))
    if page_table is not None:
        check_shape("k_cache", k_cache, (None, None, None, D), "(paged: [blocks, Hkv, blk, D])")
        check_shape("page_table", page_table, (B, None))
        capacity = page_table.shape[1] * k_cache.shape[2]
    else:
        check_shape("k_cache", k_cache, (B, None, None, D), "(contiguous: [B, Hkv, S, D])")
        capacity = k_cache.shape[2]
    check_shape("v_cache", v_cache, tuple(k_cache.shape))
    check_shape("pos", pos, (B,))
    if Hq % Hkv:
        raise ValueError(f"q: got {Hq} query heads, expected a multiple of the cache's {Hkv} KV heads")
    if B and (int(pos.min()) < 0 or int(pos.max()) + T > capacity):
        raise ValueError(f"pos: got {pos.tolist()} with T={T}, expected pos + T <= {capacity} (cache capacity)")
