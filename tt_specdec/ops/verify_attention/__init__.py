"""Multi-token verify attention: T query rows against a KV cache in one pass."""
from __future__ import annotations

import torch

from tt_specdec.ops import dispatch
from tt_specdec.ops.verify_attention.checks import check_verify_args

__all__ = ["check_verify_args", "verify_attention"]


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
        backend     "torch", or "emu": the TT-Metal kernels of kernels/ on the host emulator
                    (D a multiple of 32; more than 32 // (Hq/Hkv) rows run as several row blocks),
                    or "device": the same kernels on a Tenstorrent card (also chosen for ttnn tensors;
                    then the caches stay where they are and the result is a ttnn tensor on the card)
        returns     [B, T, Hq, D]

    Row t of sequence b attends keys 0 .. pos[b]+t. Paged: every block a row reads (keys
    0 .. pos[b]+T-1) must be an id in 0..blocks-1, else ValueError naming the entry; entries past
    them are not read (-1 there = unallocated). B = 0 or T = 0 returns an empty [B, T, Hq, D] on
    every backend. Hq must be a multiple of Hkv
    (grouped-query attention: query head h reads KV head h // (Hq/Hkv)).
    T = 1 is ordinary decode.

    Example:
        >>> q = torch.randn(1, 3, 4, 32); kc = torch.randn(1, 2, 64, 32); vc = torch.randn(1, 2, 64, 32)
        >>> verify_attention(q, kc, vc, torch.tensor([10])).shape  # rows attend keys 0..10, 0..11, 0..12
        torch.Size([1, 3, 4, 32])
    """
    backend = dispatch.backend_for(backend, q)
    if not dispatch.is_ttnn_tensor(q):  # ttnn tensors stay on the card: nothing is read back
        check_verify_args(q, k_cache, v_cache, pos, page_table)
        if q.shape[0] == 0 or q.shape[1] == 0:  # B = 0 or T = 0: nothing to attend, on every backend
            return q.new_empty(q.shape)
    if backend == "torch":
        from tt_specdec.ops.verify_attention import torch_impl
        return torch_impl.verify_attention(q, k_cache, v_cache, pos, page_table, scale)
    from tt_specdec.ops.verify_attention import program
    return program.run(dispatch.executor(backend), q, k_cache, v_cache, pos, page_table=page_table, scale=scale)[0]
