"""verify_attention in torch (the CPU path); arguments validated by tt_specdec.ops.verify_attention."""
from __future__ import annotations

import math

import torch


def gather_pages(cache: torch.Tensor, page_table: torch.Tensor, length: int) -> torch.Tensor:
    """Paged cache [blocks, Hkv, blk, D] + page_table [B, max_blocks] -> contiguous [B, Hkv, length, D]."""
    blocks, hkv, blk, d = cache.shape
    n_blocks = -(-length // blk)
    # ids a row reads are checked (checks.check_pages); entries past them (-1 = unallocated) are masked
    table = page_table[:, :n_blocks].long().clamp(0, blocks - 1)
    pages = cache[table]  # [B, n_blocks, Hkv, blk, D]
    return pages.permute(0, 2, 1, 3, 4).reshape(page_table.shape[0], hkv, n_blocks * blk, d)[:, :, :length]


def tree_visible(pos: torch.Tensor, tree_mask: torch.Tensor, L: int) -> torch.Tensor:
    """[B, T, L] bool: row t of b sees keys 0 .. pos[b]-1 (the cache) and key pos[b]+j where tree_mask[b, t, j]."""
    B, T, _ = tree_mask.shape
    key = torch.arange(L).view(1, 1, L)
    offset = key - pos.view(B, 1, 1)  # [B, 1, L]: the tree row a key belongs to, when 0 <= offset < T
    in_tree = (offset >= 0) & (offset < T)
    seen = torch.gather(tree_mask, 2, offset.clamp(0, T - 1).expand(B, T, L))  # [B, T, L]
    return (offset < 0) | (in_tree & seen)


def verify_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
                     page_table: torch.Tensor | None, scale: float | None,
                     tree_mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, Hq, D], as tt_specdec.ops.verify_attention documents."""
    B, T, Hq, D = q.shape
    Hkv = k_cache.shape[1]
    paged = page_table is not None
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    G = Hq // Hkv
    L = int(pos.max()) + T  # keys beyond the longest row are never attended
    if paged:
        k = gather_pages(k_cache, page_table, L)
        v = gather_pages(v_cache, page_table, L)
    else:
        k, v = k_cache[:, :, :L], v_cache[:, :, :L]
    # GQA rows of one KV head packed together: [B, Hkv, G*T, D], row r = g*T + t
    qg = q.view(B, T, Hkv, G, D).permute(0, 2, 3, 1, 4).reshape(B, Hkv, G * T, D)
    scores = torch.matmul(qg, k.transpose(-1, -2)).float() * scale  # [B, Hkv, G*T, L]
    if tree_mask is None:
        limit = (pos.view(B, 1) + torch.arange(T)).repeat(1, G)  # [B, G*T] last key of each row
        masked = torch.arange(L).view(1, 1, L) > limit.unsqueeze(-1)  # [B, G*T, L]
    else:
        masked = ~tree_visible(pos, tree_mask, L).repeat(1, G, 1)  # [B, G*T, L]
    scores.masked_fill_(masked.unsqueeze(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    out = torch.matmul(probs, v)  # [B, Hkv, G*T, D]
    return out.view(B, Hkv, G, T, D).permute(0, 3, 1, 2, 4).reshape(B, T, Hq, D)
