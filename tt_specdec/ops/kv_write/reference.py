"""Plain-loop ground truth of kv_write, for tests only: returns new caches, the inputs untouched."""
from __future__ import annotations

import torch


def kv_write(k_new: torch.Tensor, v_new: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
             pos: torch.Tensor, *, page_table: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(k_cache, v_cache) after writing token t of sequence b at slot pos[b] + t, for every b with pos[b] >= 0."""
    k_out, v_out = k_cache.clone(), v_cache.clone()
    B, T, Hkv, D = k_new.shape
    for b in range(B):
        start = int(pos[b])
        if start < 0:
            continue
        for t in range(T):
            slot = start + t
            for h in range(Hkv):
                if page_table is None:
                    matrix, row = b, slot
                else:
                    matrix, row = int(page_table[b][slot // k_cache.shape[2]]), slot % k_cache.shape[2]
                for d in range(D):
                    k_out[matrix, h, row, d] = k_new[b, t, h, d]
                    v_out[matrix, h, row, d] = v_new[b, t, h, d]
    return k_out, v_out
