"""Program description of the kv_write kernels (kernels/): units (b, K|V, head) dealt in contiguous ranges
over up to MAX_CORES cores; per unit the reader gathers its T new rows (face rows of the packed source tiles)
into one page and the writer writes them into the cache at slots pos[b] .. pos[b]+T-1 (through b's page-table
row when paged). Positions and the page table arrive as tensors: every step reuses the compiled kernels;
B, T, Hkv, D, the cache shape and the format are compile-time.

Host glue (`run`, for either executor): the new rows [B, T, Hkv, D] are packed to [B * Hkv, 32, D] (row t of
(b, h) = token t; padded), the caches tiled as verify_attention keeps them ([blocks * Hkv | B * Hkv, rows, D]);
on a card the decoder packs them there (models/ttnn_llama.py) and the caches never leave the device.
"""
from __future__ import annotations

from pathlib import Path

import torch

from tt_specdec.ops.dispatch import is_ttnn_tensor
from tt_specdec.ops.tile_rows import rows_page_bytes
from tt_specdec.runtime import device, emu
from tt_specdec.runtime import program as P

KERNELS = Path(__file__).resolve().parent / "kernels"
ARGS = P.read_arg_indices(KERNELS / "kv_write_common.hpp")
MAX_CORES = 32


def kv_write_program(B: int, T: int, Hkv: int, D: int, dtype: torch.dtype, *, S: int = 0, num_blocks: int = 0,
                     block_size: int = 0, max_blocks: int = 0) -> P.Program:
    """k_new, v_new [B * Hkv, 32, D] tiles (row t = token t) -> k, v caches updated in place: contiguous
    [B * Hkv, S, D] (S a multiple of 32), or paged [num_blocks * Hkv, block_size, D] with page_table
    [B, max_blocks] when num_blocks > 0."""
    paged = num_blocks > 0
    if not 1 <= T <= 32 or D % 32 or dtype not in (torch.bfloat16, torch.float32):
        raise NotImplementedError(f"kv_write kernels: need 1 <= T <= 32 (got {T}), D a multiple of 32 (got {D}), "
                                  f"bf16/fp32 (got {dtype})")
    rows = block_size if paged else S
    if rows <= 0 or rows % 32:
        raise NotImplementedError(f"kv_write kernels: the cache's {'block_size' if paged else 'S'} must be a "
                                  f"positive multiple of 32, got {rows}")
    d_tiles = D // 32
    cache_shape = (num_blocks * Hkv, block_size, D) if paged else (B * Hkv, S, D)
    k_new = P.Tensor("k_new", (B * Hkv, 32, D), dtype, "tile")
    v_new = P.Tensor("v_new", (B * Hkv, 32, D), dtype, "tile")
    pos = P.Tensor("pos", (1, B), torch.int32)
    page_table = P.Tensor("page_table", (B, max_blocks) if paged else (1, 1), torch.int32)
    k = P.Tensor("k", cache_shape, dtype, "tile", is_output=True)  # updated in place
    v = P.Tensor("v", cache_shape, dtype, "tile", is_output=True)
    face_row_bytes = 16 * torch.empty((), dtype=dtype).element_size()
    units = 2 * B * Hkv
    n = min(units, MAX_CORES)
    grid = [(i % 8, i // 8) for i in range(n)]
    cores = [P.CoreRange(c, c) for c in grid]
    scratch_page = P.dram_align(B * 4) + P.dram_align(max(max_blocks, 1) * 4)  # both slots take DRAM reads
    rows_page = rows_page_bytes(T, d_tiles, face_row_bytes)
    cb = dict(scratch=0, rows=1)
    cbs = [P.CircularBuffer(cb["scratch"], cores, 1, scratch_page, P.DataFormat.Int32, "scratch"),
           P.CircularBuffer(cb["rows"], cores, 2, rows_page, P.data_format(dtype), "rows")]
    ta = P.tensor_accessor_args
    reader_ct = P.arg_vector(ARGS, "CT_READER_", cb_scratch=cb["scratch"], cb_rows=cb["rows"], batch=B, t=T, hkv=Hkv,
                             d_tiles=d_tiles, matrix_tiles=rows // 32, seq_matrices=num_blocks if paged else B,
                             block_size=block_size if paged else 0, max_blocks=max_blocks,
                             face_row_bytes=face_row_bytes, pos_ta=ta(pos), page_table_ta=ta(page_table),
                             k_new_ta=ta(k_new), v_new_ta=ta(v_new))
    writer_ct = P.arg_vector(ARGS, "CT_WRITER_", cb_rows=cb["rows"], t=T, d_tiles=d_tiles,
                             face_row_bytes=face_row_bytes, k_ta=ta(k), v_ta=ta(v))
    reader_rt, writer_rt = {}, {}
    for i, c in enumerate(grid):
        begin, end = i * units // n, (i + 1) * units // n
        reader_rt[c] = P.arg_vector(ARGS, "RT_READER_", pos_addr=P.BufferAddress("pos"),
                                    page_table_addr=P.BufferAddress("page_table") if paged else 0,
                                    k_new_addr=P.BufferAddress("k_new"), v_new_addr=P.BufferAddress("v_new"),
                                    unit_begin=begin, unit_end=end)
        writer_rt[c] = P.arg_vector(ARGS, "RT_WRITER_", k_addr=P.BufferAddress("k"), v_addr=P.BufferAddress("v"),
                                    unit_begin=begin, unit_end=end)
    kernels = [P.Kernel(str(KERNELS / "reader_kv_write.cpp"), "reader", cores, reader_ct, reader_rt),
               P.Kernel(str(KERNELS / "writer_kv_write.cpp"), "writer", cores, writer_ct, writer_rt)]
    tensors = [k_new, v_new, pos] + ([page_table] if paged else []) + [k, v]
    return P.Program("kv_write", kernels, cbs, tensors)


def pack_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, T, Hkv, D] -> [B * Hkv, 32, D]: row t of (b, h) is token t, zero padded."""
    B, T, Hkv, D = x.shape
    out = torch.zeros(B, Hkv, 32, D, dtype=x.dtype)
    out[:, :, :T] = x.permute(0, 2, 1, 3)
    return out.reshape(B * Hkv, 32, D)


def run(ex, k_new, v_new, k_cache, v_cache, pos, *, page_table=None):
    """kv_write's kernels on executor `ex` (tt_specdec.runtime.emu or .device), arguments validated; the
    caches are updated in place (torch caches through the kernels' copy, written back). ttnn inputs: k_new,
    v_new [B, T, Hkv, D] and the caches tiles on the card, packed there (reshape, permute, pad)."""
    on_card = is_ttnn_tensor(k_cache)
    B, T, Hkv, D = (int(s) for s in k_new.shape)
    paged = page_table is not None
    blocks, _, rows, _ = (int(s) for s in k_cache.shape)
    dtype = device.torch_dtype(k_cache) if on_card else k_cache.dtype
    with ex.aligned():
        prog = kv_write_program(B, T, Hkv, D, dtype, S=0 if paged else rows, num_blocks=blocks if paged else 0,
                                block_size=rows if paged else 0, max_blocks=int(page_table.shape[1]) if paged else 0)
    if on_card:
        ttnn = device.require_ttnn()

        def packed(x):  # [B, T, Hkv, D] -> [B * Hkv, 32, D] on the card
            x = ttnn.reshape(ttnn.permute(x, (0, 2, 1, 3)), [B * Hkv, T, D])
            return ttnn.pad(x, [(0, 0), (0, 32 - T), (0, 0)], 0.0)

        tensors = {"k_new": packed(k_new), "v_new": packed(v_new), "pos": pos, "k": k_cache, "v": v_cache}
        if paged:
            tensors["page_table"] = page_table
        return ex.run(prog, tensors)
    flat = lambda c: c.reshape(-1, rows, D)  # noqa: E731  [M, Hkv, rows, D] -> the kernels' [M * Hkv, rows, D]
    tensors = {"k_new": pack_rows(k_new.to(dtype)), "v_new": pack_rows(v_new.to(dtype)),
               "pos": pos.to(torch.int32).view(1, B), "k": flat(k_cache), "v": flat(v_cache)}
    if paged:
        tensors["page_table"] = page_table.to(torch.int32)
    r = ex.run(prog, tensors)
    k_cache.copy_(ex.to_torch(r.outputs["k"]).view(k_cache.shape))
    v_cache.copy_(ex.to_torch(r.outputs["v"]).view(v_cache.shape))
    return r


def kv_write_emu(k_new, v_new, k_cache, v_cache, pos, *, page_table=None):
    """The kernels on the emulator, caches updated in place: the RunResult (per-kernel byte counts)."""
    return run(emu, k_new, v_new, k_cache, v_cache, pos, page_table=page_table)
