"""verify_attention's argument checks and the names its torch version, program and reference share."""
from __future__ import annotations

import torch

from tt_specdec.errors import check_float_dtype, check_int_dtype, check_shape, value_range


def check_verify_args(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
                      page_table: torch.Tensor | None, tree_mask: torch.Tensor | None = None) -> None:
    """Validates verify_attention's arguments (ranks, dtypes, sizes, GQA grouping, positions within the
    cache, every page a row reads an allocated block, a tree mask's ancestor order)."""
    check_shape("q", q, (None, None, None, None), "= [B, T, Hq, D]")
    B, T, Hq, D = q.shape
    check_float_dtype("q", q)
    paged = page_table is not None
    layout = "(paged: [blocks, Hkv, blk, D])" if paged else "(contiguous: [B, Hkv, S, D])"
    check_shape("k_cache", k_cache, (None, None, None, D) if paged else (B, None, None, D), layout)
    check_shape("v_cache", v_cache, tuple(k_cache.shape), "(the shape of k_cache)")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        check_float_dtype(name, t)
        if t.dtype != q.dtype:
            raise TypeError(f"{name}: got dtype {t.dtype}, expected q's {q.dtype}")
    Hkv = k_cache.shape[1]
    if Hkv < 1 or Hq < 1 or D < 1:
        raise ValueError(f"q, k_cache: got Hq={Hq}, Hkv={Hkv}, D={D} (q {list(q.shape)}, k_cache "
                         f"{list(k_cache.shape)}), expected at least one head of each and D >= 1")
    if Hq % Hkv:
        raise ValueError(f"q: got {Hq} query heads, expected a multiple of the cache's {Hkv} KV heads")
    check_shape("pos", pos, (B,))
    check_int_dtype("pos", pos, "(positions)")
    if paged:
        check_shape("page_table", page_table, (B, None), "= [B, max_blocks]")
        check_int_dtype("page_table", page_table, "(block ids, -1 = no block)")
        capacity = page_table.shape[1] * k_cache.shape[2]
    else:
        capacity = k_cache.shape[2]
    lo, hi = value_range(pos)
    if B and (lo < 0 or hi + T > capacity):
        raise ValueError(f"pos: got {pos.tolist()} with T={T}, expected 0 <= pos and pos + T <= {capacity} "
                         "(cache capacity)")
    if paged and B and T:
        check_pages(pos, T, page_table, k_cache.shape[0], k_cache.shape[2])
    if tree_mask is not None:
        check_tree_mask(tree_mask, B, T)


def check_pages(pos: torch.Tensor, T: int, page_table: torch.Tensor, blocks: int, blk: int) -> None:
    """Every block row b reads (those holding keys 0 .. pos[b]+T-1) is an id in 0..blocks-1; entries past
    them are never read (-1 = unallocated there)."""
    used = (pos.long().view(-1, 1) + T + blk - 1) // blk  # [B, 1] blocks each row reads
    read = torch.arange(page_table.shape[1]).view(1, -1) < used  # [B, max_blocks]
    bad = read & ((page_table < 0) | (page_table >= blocks))
    if bool(bad.any()):
        b, i = (int(x) for x in bad.nonzero()[0])
        raise ValueError(f"page_table: got block id {int(page_table[b, i])} at [{b}, {i}], expected an allocated "
                         f"block in 0..{blocks - 1} (row {b} reads blocks 0..{int(used[b]) - 1} of its table for "
                         f"pos {int(pos[b])} + T {T})")


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
