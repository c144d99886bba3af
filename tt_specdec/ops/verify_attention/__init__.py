"""Multi-token verify attention: T query rows against a KV cache in one pass."""
from __future__ import annotations

import torch

from tt_specdec.ops import dispatch
from tt_specdec.ops.verify_attention.checks import check_tree_mask, check_verify_args

__all__ = ["check_verify_args", "tree_mask_from_parents", "verify_attention"]


def tree_mask_from_parents(parents: torch.Tensor) -> torch.Tensor:
    """parents [B, T] (node t's parent index < t; -1 for the root, node 0) -> tree_mask [B, T, T] bool:
    row t sees its ancestors and itself. A chain (parents t - 1) gives the lower triangle.

        >>> tree_mask_from_parents(torch.tensor([[-1, 0, 0, 1]]))[0].int()
        tensor([[1, 0, 0, 0],
                [1, 1, 0, 0],
                [1, 0, 1, 0],
                [1, 1, 0, 1]], dtype=torch.int32)
    """
    B, T = parents.shape
    mask = torch.eye(T, dtype=torch.bool).repeat(B, 1, 1)
    rows = torch.arange(B)
    for t in range(1, T):  # parents come first: row t = its parent's row + itself
        mask[rows, t] |= mask[rows, parents[:, t].long().clamp(min=0)] & (parents[:, t] >= 0).view(B, 1)
    return mask


def verify_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, *,
                     page_table: torch.Tensor | None = None, scale: float | None = None,
                     tree_mask: torch.Tensor | None = None, backend: str = "torch") -> torch.Tensor:
    """Attention of T query rows per sequence over its KV cache, staircase-masked.

    Shapes:
        q           [B, T, Hq, D]   query rows for positions pos[b] .. pos[b]+T-1
        k_cache     [B, Hkv, S, D]  contiguous, or [blocks, Hkv, blk, D] with page_table
        v_cache     same as k_cache
        pos         [B]             position of query row 0; the cache already holds its KV
        page_table  [B, max_blocks] block ids (int), only for a paged cache
        tree_mask   [B, T, T] bool, token-tree verify: row t sees the cache (keys 0 .. pos[b]-1)
                    and key pos[b]+j where tree_mask[b, t, j] (its ancestors and itself; rows in
                    topological order, so only j <= t). None: the chain's staircase. A torch tensor
                    on every backend; the kernels ("emu", "device") take T <= 32 tree rows (each
                    row's mask is one uint32 bitmask, packed on the host like q)
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
        >>> tree = torch.tensor([[[1, 0, 0], [1, 1, 0], [1, 0, 1]]], dtype=torch.bool)  # rows 1, 2: siblings
        >>> verify_attention(q, kc, vc, torch.tensor([10]), tree_mask=tree).shape  # row 2 sees keys 0..10, 12
        torch.Size([1, 3, 4, 32])
    """
    backend = dispatch.backend_for(backend, q)
    if not dispatch.is_ttnn_tensor(q):  # ttnn tensors stay on the card: nothing is read back
        check_verify_args(q, k_cache, v_cache, pos, page_table, tree_mask)
        if q.shape[0] == 0 or q.shape[1] == 0:  # B = 0 or T = 0: nothing to attend, on every backend
            return q.new_empty(q.shape)
    elif tree_mask is not None:  # the mask is a host tensor either way: checked against q's [B, T]
        check_tree_mask(tree_mask, int(q.shape[0]), int(q.shape[1]))
    if backend == "torch":
        from tt_specdec.ops.verify_attention import torch_impl
        return torch_impl.verify_attention(q, k_cache, v_cache, pos, page_table, scale, tree_mask)
    from tt_specdec.ops.verify_attention import program
    return program.run(dispatch.executor(backend), q, k_cache, v_cache, pos, page_table=page_table, scale=scale,
                       tree_mask=tree_mask)[0]
