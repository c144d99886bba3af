"""rollback_kv's argument checks and the names its torch version, program and reference share."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from tt_specdec.errors import check_int_dtype, check_shape


class Rollback(NamedTuple):
    pos: torch.Tensor  # [B] tokens with KV in the cache
    last: torch.Tensor  # [B] newest emitted token, not yet in the cache
    page_table: torch.Tensor | None  # [B, max_blocks], -1 = no block
    freed: torch.Tensor | None  # [B, max_blocks] block ids released this step, -1 elsewhere


def check_rollback_args(pos: torch.Tensor, last: torch.Tensor, num_accepted: torch.Tensor,
                        output_tokens: torch.Tensor, page_table: torch.Tensor | None, block_size: int | None) -> None:
    """Validates rollback_kv's state arguments (check_compaction the copy's)."""
    check_shape("pos", pos, (None,))
    B = pos.shape[0]
    check_shape("last", last, (B,))
    check_shape("num_accepted", num_accepted, (B,))
    check_shape("output_tokens", output_tokens, (B, None), "= [B, k+1]")
    for name, t in (("pos", pos), ("last", last), ("num_accepted", num_accepted), ("output_tokens", output_tokens)):
        check_int_dtype(name, t)
    k = output_tokens.shape[1] - 1
    n_acc = num_accepted.numpy()  # [B] small integers: numpy, converted once (the loop calls this every step)
    lo, hi = (int(n_acc.min()), int(n_acc.max())) if B else (0, 0)
    if lo < -1 or hi > k:
        raise ValueError(f"num_accepted: got {n_acc.tolist()}, expected values in -1..{k} (-1 = skip row)")
    if page_table is not None:
        check_shape("page_table", page_table, (B, None), "= [B, max_blocks]")
        check_int_dtype("page_table", page_table, "(block ids, -1 = no block)")
        if block_size is None or block_size < 1:
            raise ValueError(f"block_size: got {block_size}, expected a positive int with a page_table")
    emitted = output_tokens.numpy()[np.arange(B), np.maximum(n_acc, 0)]
    bad = np.flatnonzero((n_acc >= 0) & (emitted < 0))
    if bad.size:
        b = int(bad[0])
        raise ValueError(f"output_tokens: got {int(emitted[b])} at [{b}, {int(n_acc[b])}] (index num_accepted of a live "
                         "row), expected the emitted token id (>= 0) there")


def stacked(cache: torch.Tensor) -> torch.Tensor:
    """A cache of one layer [M, Hkv, S, D] as a view [1, M, Hkv, S, D]; stacked caches as they are."""
    return cache.unsqueeze(0) if cache.dim() == 4 else cache


def check_compaction(pos: torch.Tensor, num_accepted: torch.Tensor, k: int, accepted_slots: torch.Tensor | None,
                     k_cache: torch.Tensor | None, v_cache: torch.Tensor | None, page_table: torch.Tensor | None,
                     block_size: int | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Validates the compaction arguments before anything is touched; returns the caches as
    [L, M, Hkv, S or block_size, D] views, or None when there is nothing to compact."""
    given = {"accepted_slots": accepted_slots, "k_cache": k_cache, "v_cache": v_cache}
    if all(x is None for x in given.values()):
        return None
    missing = [name for name, x in given.items() if x is None]
    if missing:
        have = [name for name, x in given.items() if x is not None]
        raise ValueError(f"{missing[0]}: got None with {', '.join(have)}, expected accepted_slots, k_cache and "
                         "v_cache together (the compaction copy needs all three)")
    B = pos.shape[0]
    check_shape("accepted_slots", accepted_slots, (B, k + 1), "= [B, k+1] (the shape of output_tokens)")
    if accepted_slots.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"accepted_slots: got dtype {accepted_slots.dtype}, expected int32 or int64 slot offsets")
    if k_cache.dim() not in (4, 5) or not k_cache.is_floating_point():
        raise ValueError(f"k_cache: got shape {list(k_cache.shape)} {k_cache.dtype}, expected a floating "
                         "[B or blocks, Hkv, S or block_size, D] or [L, B or blocks, Hkv, S or block_size, D]")
    check_shape("v_cache", v_cache, tuple(k_cache.shape), "(the shape of k_cache)")
    if v_cache.dtype != k_cache.dtype:
        raise TypeError(f"v_cache: got dtype {v_cache.dtype}, expected k_cache's {k_cache.dtype}")
    k5, v5 = stacked(k_cache), stacked(v_cache)
    slot_rows = k5.shape[3]
    if page_table is None:
        if k5.shape[1] != B:
            raise ValueError(f"k_cache: got {k5.shape[1]} sequences in shape {list(k_cache.shape)}, expected B={B} "
                             "(a contiguous cache; pass page_table for a paged one)")
        capacity = slot_rows
    else:
        if block_size != slot_rows:
            raise ValueError(f"block_size: got {block_size}, expected the caches' block size {slot_rows} "
                             f"(k_cache shape {list(k_cache.shape)})")
        capacity = page_table.shape[1] * slot_rows
    live = num_accepted >= 0
    j = torch.arange(k + 1).view(1, -1)
    kept = live.view(B, 1) & (j <= num_accepted.view(B, 1))  # [B, k+1] rows j <= n of live rows
    bad = kept & ((accepted_slots < 0) | (accepted_slots > k))
    if bool(bad.any()):
        b, i = (int(x) for x in bad.nonzero()[0])
        raise ValueError(f"accepted_slots: got {int(accepted_slots[b, i])} at [{b}, {i}], expected a verify slot "
                         f"offset in 0..{k} for every j <= num_accepted of a live row")
    moved = kept & (accepted_slots != j)  # [B, k+1]
    rows_moving = moved.any(1)
    if not bool(rows_moving.any()):
        return k5, v5
    reach = pos.long() + torch.where(moved, torch.maximum(accepted_slots.long(), j), 0).amax(1)  # [B]
    if bool((rows_moving & ((pos < 0) | (reach >= capacity))).any()):
        b = int((rows_moving & ((pos < 0) | (reach >= capacity))).nonzero()[0])
        raise ValueError(f"pos: got {int(pos[b])} at row {b} with accepted_slots {accepted_slots[b].tolist()}, "
                         f"expected every copied slot in 0..{capacity - 1} (the cache's capacity)")
    if page_table is not None:
        check_paged_slots(pos, moved, accepted_slots, page_table, slot_rows, k5.shape[1])
    return k5, v5


def check_paged_slots(pos: torch.Tensor, moved: torch.Tensor, accepted_slots: torch.Tensor, page_table: torch.Tensor,
                      block_size: int, num_blocks: int) -> None:
    """Every slot a moved row reads or writes lies in an allocated block of its row, and no
    other row reads or writes a block that a row writes (rows are copied in parallel)."""
    written: dict[int, int] = {}  # physical block -> the row writing it
    touched: dict[int, set[int]] = {}  # physical block -> rows reading or writing it
    for b, j in moved.nonzero().tolist():
        for slot, writes in ((int(pos[b]) + int(accepted_slots[b, j]), False), (int(pos[b]) + j, True)):
            block = int(page_table[b, slot // block_size])
            if not 0 <= block < num_blocks:
                raise ValueError(f"page_table: got block {block} at [{b}, {slot // block_size}] for slot {slot}, "
                                 f"expected an allocated block id in 0..{num_blocks - 1}")
            touched.setdefault(block, set()).add(b)
            if writes:
                written[block] = b
    for block, b in written.items():
        others = touched[block] - {b}
        if others:
            raise ValueError(f"page_table: got block {block} shared by rows {sorted(touched[block])}, expected the "
                             f"blocks a row compacts into (row {b}) to be its own")
