"""Advance positions past the accepted tokens and release the KV slots of rejected drafts."""
from __future__ import annotations

from typing import NamedTuple

import torch

from tt_specdec.errors import check_shape


class Rollback(NamedTuple):
    pos: torch.Tensor  # [B] tokens with KV in the cache
    last: torch.Tensor  # [B] newest emitted token, not yet in the cache
    page_table: torch.Tensor | None  # [B, max_blocks], -1 = no block
    freed: torch.Tensor | None  # [B, max_blocks] block ids released this step, -1 elsewhere


def rollback_kv(pos: torch.Tensor, last: torch.Tensor, num_accepted: torch.Tensor, output_tokens: torch.Tensor, *,
                page_table: torch.Tensor | None = None, block_size: int | None = None,
                backend: str = "torch") -> Rollback:
    """State after one speculative step; inputs are not modified.

    Shapes:
        pos, last      [B]            before the step
        num_accepted   [B]            n per row from accept_prefix; -1 skips the row (finished)
        output_tokens  [B, k+1]       from accept_prefix
        page_table     [B, max_blocks] paged cache only, with block_size slots per block
        backend        "torch", "emu": the TT-Metal kernels of kernels/rollback_kv/ on the host emulator,
                       or "device": the same kernels on a Tenstorrent card (also chosen for ttnn tensors)
        returns        Rollback(pos + n + 1, output_tokens[n], page_table, freed)

    KV slots pos+n+1 .. pos+k hold rejected drafts: with a contiguous cache they are
    simply masked by the next step's staircase and overwritten; with a paged cache
    every block that starts at or after the new pos is released (page_table entry
    set to -1, its id reported in `freed`).

    Example:
        >>> rollback_kv(torch.tensor([10, 7]), torch.tensor([5, 9]), torch.tensor([2, -1]),
        ...             torch.tensor([[4, 6, 8, -1], [-1, -1, -1, -1]])).pos
        tensor([13,  7])
    """
    if backend == "device" or type(pos).__module__.split(".")[0] == "ttnn":  # the kernels on a card (ttnn tensors)
        from tt_specdec import device
        return device.rollback_kv(pos, last, num_accepted, output_tokens, page_table=page_table, block_size=block_size)
    check_shape("pos", pos, (None,))
    B = pos.shape[0]
    check_shape("last", last, (B,))
    check_shape("num_accepted", num_accepted, (B,))
    check_shape("output_tokens", output_tokens, (B, None), "= [B, k+1]")
    k = output_tokens.shape[1] - 1
    if num_accepted.numel() and (int(num_accepted.min()) < -1 or int(num_accepted.max()) > k):
        raise ValueError(f"num_accepted: got {num_accepted.tolist()}, expected values in -1..{k} (-1 = skip row)")
    if page_table is not None:
        check_shape("page_table", page_table, (B, None), "= [B, max_blocks]")
        if block_size is None or block_size < 1:
            raise ValueError(f"block_size: got {block_size}, expected a positive int with a page_table")
    live = num_accepted >= 0
    n = num_accepted.long().clamp(min=0)
    emitted = output_tokens.long().gather(1, n.view(B, 1)).squeeze(1)
    if bool((live & (emitted < 0)).any()):
        raise ValueError("output_tokens: got -1 at index num_accepted of a live row, expected the emitted token there")
    if backend == "emu":
        from tt_specdec.ops.rollback_kv_program import rollback_kv_emu
        return rollback_kv_emu(pos, last, num_accepted, output_tokens, page_table=page_table, block_size=block_size)[0]
    if backend != "torch":
        raise ValueError(f"backend: got {backend!r}, expected 'torch', 'emu' or 'device'")
    new_pos = torch.where(live, pos + n.to(pos.dtype) + 1, pos)  # keep the caller's dtype (int32 on device)
    new_last = torch.where(live, emitted.to(last.dtype), last)
    if page_table is None:
        return Rollback(new_pos, new_last, None, None)
    block_start = torch.arange(page_table.shape[1]).view(1, -1) * block_size  # [1, max_blocks]
    release = live.view(B, 1) & (block_start >= new_pos.view(B, 1)) & (page_table >= 0)
    freed = torch.where(release, page_table, -1)
    return Rollback(new_pos, new_last, torch.where(release, -1, page_table), freed)
