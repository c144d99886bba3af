"""kv_write in torch (the CPU path); arguments validated by tt_specdec.ops.kv_write."""
from __future__ import annotations

import torch


def kv_write(k_new, v_new, k_cache, v_cache, pos, page_table) -> None:
    B, T = k_new.shape[:2]
    live = torch.nonzero(pos >= 0).flatten()
    if live.numel() == 0:
        return
    slots = pos[live].long().view(-1, 1) + torch.arange(T)  # [live, T]
    rows = live.view(-1, 1).expand(-1, T)
    if page_table is None:
        for new, cache in ((k_new, k_cache), (v_new, v_cache)):
            cache[rows, :, slots] = new[live].to(cache.dtype)  # [live, T, Hkv, D]
        return
    blk = k_cache.shape[2]
    blocks = page_table[rows, slots // blk].long()
    for new, cache in ((k_new, k_cache), (v_new, v_cache)):
        cache[blocks, :, slots % blk] = new[live].to(cache.dtype)
