"""verify_attention's argument checks and the names its torch version, program and reference share."""
from __future__ import annotations

import torch

from tt_specdec.errors import check_shape


def check_verify_args(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
                      page_table: torch.Tensor | None, tree_mask: torch.Tensor | None = None) -> None:
    """Validates verify_attention's arguments (shapes, GQA grouping, positions within the cache, a tree
    mask's ancestor order)."""
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
    if tree_mask is not None:
        check_tree_mask(tree_mask, B, T)


def check_tree_mask(tree_mask: torch.Tensor, B: int, T: int) -> None:
    """tree_mask [B, T, T] bool: row t sees row j only for j <= t (ancestors come first) and sees itself."""
    check_shape("tree_mask", tree_mask, (B, T, T))
    if tree_mask.dtype != torch.bool:
        raise TypeError(f"tree_mask: got dtype {tree_mask.dtype}, expected torch.bool")
    if T and not bool(tree_mask.diagonal(dim1=1, dim2=2).all()):
        raise ValueError("tree_mask: got a row that does not see itself, expected tree_mask[b, t, t] True")
    if bool(tree_mask.triu(1).any()):
        b, t, j = (int(x) for x in tree_mask.triu(1).nonzero()[0])
        raise ValueError(f"tree_mask: got row {t} of sequence {b} seeing row {j} > {t}, expected each row's "
                         "ancestors before it (rows in topological order)")
