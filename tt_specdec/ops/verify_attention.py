"""Multi-token verify attention: T query rows against a KV cache in one pass."""
from __future__ import annotations

import math

import torch

from tt_specdec.errors import check_shape


def gather_pages(cache: torch.Tensor, page_table: torch.Tensor, length: int) -> torch.Tensor:
    """Paged cache [blocks, Hkv, blk, D] + page_table [B, max_blocks] -> contiguous [B, Hkv, length, D]."""
    blocks, hkv, blk, d = cache.shape
    n_blocks = -(-length // blk)
    table = page_table[:, :n_blocks].long().clamp(min=0)  # unallocated (-1) blocks are masked anyway
    pages = cache[table]  # [B, n_blocks, Hkv, blk, D]
    return pages.permute(0, 2, 1, 3, 4).reshape(page_table.shape[0], hkv, n_blocks * blk, d)[:, :, :length]


def verify_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, *,
                     page_table: torch.Tensor | None = None, scale: float | None = None,
                     backend: str = "torch") -> torch.Tensor:
    """Attention of T query rows per sequence over its KV cache, staircase-masked.

    Shapes:
        q           [B, T, Hq, D]   query rows for positions pos[b] .. pos[b]+T-1
        k_cache     [B, Hkv, S, D]  contiguous, or [blocks, Hkv, blk, D] with page_table
        v_cache     same as k_cache
        pos         [B]             position of query row 0; the cache already holds its KV
        page_table  [B, max_blocks] block ids (int), only for a paged cache
        backend     "torch", or "emu": the TT-Metal kernels of kernels/verify_attention/ on the host emulator
                    (D a multiple of 32; more than 32 // (Hq/Hkv) rows run as several row blocks),
                    or "device": the same kernels on a Tenstorrent card (also chosen for ttnn tensors)
        returns     [B, T, Hq, D]

    Row t of sequence b attends keys 0 .. pos[b]+t. Hq must be a multiple of Hkv
    (grouped-query attention: query head h reads KV head h // (Hq/Hkv)).
    T = 1 is ordinary decode.

    Example:
        >>> q = torch.randn(1, 3, 4, 32); kc = torch.randn(1, 2, 64, 32); vc = torch.randn(1, 2, 64, 32)
        >>> verify_attention(q, kc, vc, torch.tensor([10])).shape  # rows attend keys 0..10, 0..11, 0..12
        torch.Size([1, 3, 4, 32])
    """
    B, T, Hq, D = q.shape
    paged = page_table is not None
    Hkv = k_cache.shape[1]
    if type(q).__module__.split(".")[0] == "ttnn":  # ttnn device tensors: the kernels on the card
        from tt_specdec import device
        return device.verify_attention(q, k_cache, v_cache, pos, page_table=page_table, scale=scale)
    check_shape("q", q, (None, None, None, None))
    if paged:
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
    if B == 0:
        return q.new_empty(q.shape)
    if backend == "emu":
        from tt_specdec.ops.verify_attention_program import run_backend
        return run_backend(q, k_cache, v_cache, pos, page_table=page_table, scale=scale)
    if backend == "device":
        from tt_specdec import device
        return device.verify_attention(q, k_cache, v_cache, pos, page_table=page_table, scale=scale)
    if backend != "torch":
        raise ValueError(f"backend: got {backend!r}, expected 'torch', 'emu' or 'device'")
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
    limit = (pos.view(B, 1) + torch.arange(T)).repeat(1, G)  # [B, G*T] last key of each row
    masked = torch.arange(L).view(1, 1, L) > limit.unsqueeze(-1)  # [B, G*T, L]
    scores.masked_fill_(masked.unsqueeze(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    out = torch.matmul(probs, v)  # [B, Hkv, G*T, D]
    return out.view(B, Hkv, G, T, D).permute(0, 3, 1, 2, 4).reshape(B, T, Hq, D)
