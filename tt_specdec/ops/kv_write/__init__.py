"""Write the T new K/V rows of each sequence into its KV cache at any offset (paged or contiguous)."""
from __future__ import annotations

import torch

from tt_specdec.ops import dispatch
from tt_specdec.ops.kv_write.checks import check_kv_write_args

__all__ = ["check_kv_write_args", "kv_write"]


def kv_write(k_new: torch.Tensor, v_new: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
             pos: torch.Tensor, *, page_table: torch.Tensor | None = None, backend: str = "torch") -> None:
    """Token t of sequence b goes to slot pos[b] + t of b's cache, in place.

    Shapes:
        k_new, v_new  [B, T, Hkv, D]   the step's new rows (T <= 32 on the kernels)
        k_cache       [B, Hkv, S, D]   contiguous, or [blocks, Hkv, blk, D] with page_table
        v_cache       same as k_cache; both updated in place
        pos           [B]              slot of row 0; -1 skips the sequence (finished)
        page_table    [B, max_blocks]  block ids, only for a paged cache: slot s of b is row s % blk of
                                       block page_table[b][s // blk] (any offset: no block alignment)
        backend       "torch", "emu" (the kernels of kernels/ on the host emulator) or "device" (the same
                      kernels on a card; chosen for ttnn tensors: k_new, v_new [B, T, Hkv, D] tiles there)

    ttnn's paged_update_cache writes one token per sequence and paged_fill_cache needs a block-aligned
    start; a speculative verify writes T = k+1 rows at pos, anywhere in a block.

    Example:
        >>> kc, vc = torch.zeros(1, 1, 8, 2), torch.zeros(1, 1, 8, 2)
        >>> kv_write(torch.ones(1, 2, 1, 2), torch.ones(1, 2, 1, 2), kc, vc, torch.tensor([5]))
        >>> kc[0, 0, :, 0].tolist()  # slots 5 and 6 written
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    """
    backend = dispatch.backend_for(backend, k_cache)
    if not dispatch.is_ttnn_tensor(k_cache):  # ttnn tensors stay on the card: nothing is read back
        check_kv_write_args(k_new, v_new, k_cache, v_cache, pos, page_table)
    if backend == "torch":
        from tt_specdec.ops.kv_write import torch_impl
        return torch_impl.kv_write(k_new, v_new, k_cache, v_cache, pos, page_table)
    from tt_specdec.ops.kv_write import program
    program.run(dispatch.executor(backend), k_new, v_new, k_cache, v_cache, pos, page_table=page_table)
