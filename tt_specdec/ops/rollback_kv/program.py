"""Program description of the rollback_kv kernels (kernels/): the state update on
one core, because the work is O(B * max_blocks); with caches, the compaction copy on up to
MAX_COMPACT_CORES more, each walking a range of units (b, layer, K|V, head). The step's
num_accepted and accepted_slots arrive as tensors, so every step reuses the compiled kernels;
B, k+1, max_blocks, block_size and the cache shapes are compile-time.

Host glue (`run`, for either executor): the caches are tiled as the verify_attention kernels keep
them, matrices stacked [layers, B or num_blocks, Hkv] x [S padded to 32 or block_size, D]; on a card
they stay there.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from tt_specdec.ops.dispatch import host_converted, is_ttnn_tensor
from tt_specdec.ops.rollback_kv.checks import Rollback
from tt_specdec.ops.tile_rows import rows_page_bytes
from tt_specdec.runtime import device, emu
from tt_specdec.runtime import program as P

KERNELS = Path(__file__).resolve().parent / "kernels"
ARGS = P.read_arg_indices(KERNELS / "rollback_kv_common.hpp")
MAX_COMPACT_CORES = 32  # a step moves at most k rows per unit: more cores would only add launch work


class KVCaches(NamedTuple):
    """The caches the compaction copies in, as its kernels see them: tiles of [slot_rows, head_dim]
    matrices stacked [layers, matrices, hkv], matrices = B (contiguous, slot_rows = S padded to
    32) or num_blocks (paged, slot_rows = block_size). The tensors keep the caller's rank:
    [layers, matrices, hkv, slot_rows, head_dim], or without the layers dim when not stacked."""
    layers: int
    matrices: int
    hkv: int
    slot_rows: int
    head_dim: int
    dtype: torch.dtype
    stacked: bool = True

    @property
    def shape(self) -> tuple[int, ...]:
        lead = (self.layers,) if self.stacked else ()
        return (*lead, self.matrices, self.hkv, self.slot_rows, self.head_dim)


def compact_cores(units: int) -> list[P.Core]:
    """The cores after (0, 0), which runs the state update, in row-major order of the 8 x 8 grid."""
    n = min(units, MAX_COMPACT_CORES)
    return [((i + 1) % 8, (i + 1) // 8) for i in range(n)]


def rollback_kv_program(B: int, k: int, max_blocks: int = 0, block_size: int = 0,
                        caches: KVCaches | None = None) -> P.Program:
    """pos, last, num_accepted [B] and output_tokens [B, k+1] (int32) -> new pos, last [B];
    with max_blocks > 0 also page_table [B, max_blocks] -> new table and freed ids; with
    `caches` also accepted_slots [B, k+1] (int32) and the K and V caches, updated in place."""
    rows = k + 1
    row = lambda name, out=False: P.Tensor(name, (1, B), torch.int32, is_output=out)  # noqa: E731
    pos, last, num_accepted = row("pos"), row("last"), row("num_accepted")
    output = P.Tensor("output_tokens", (B, rows), torch.int32)
    new_pos, new_last = row("new_pos", True), row("new_last", True)
    paged = max_blocks > 0
    table_shape = (B, max_blocks) if paged else (1, 1)  # a stand-in page size when contiguous
    page_table = P.Tensor("page_table", table_shape, torch.int32)
    new_table = P.Tensor("new_page_table", table_shape, torch.int32, is_output=True)
    freed = P.Tensor("freed", table_shape, torch.int32, is_output=True)
    tensors = [pos, last, num_accepted, output, new_pos, new_last] + ([page_table, new_table, freed] if paged else [])

    core = [P.CoreRange((0, 0), (0, 0))]
    state_page = P.dram_align(B * 4)  # every page of these CBs takes a DRAM read or write at its start
    cb = dict(state=0, tokens=1, table=2, out=16)
    i32 = P.DataFormat.Int32
    cbs = [P.CircularBuffer(cb["state"], core, 3, state_page, i32, "state"),
           P.CircularBuffer(cb["tokens"], core, 2, P.dram_align(rows * 4), i32, "tokens"),
           P.CircularBuffer(cb["out"], core, 2, P.dram_align(max(B, max_blocks) * 4), i32, "out")]
    if paged:
        cbs.append(P.CircularBuffer(cb["table"], core, 2, P.dram_align(max_blocks * 4), i32, "page_table"))
    ta = P.tensor_accessor_args
    reader_ct = P.arg_vector(ARGS, "CT_READER_", cb_state=cb["state"], cb_tokens=cb["tokens"], cb_table=cb["table"],
                             batch=B, rows=rows, max_blocks=max_blocks, pos_ta=ta(pos), last_ta=ta(last),
                             num_accepted_ta=ta(num_accepted), output_ta=ta(output), page_table_ta=ta(page_table))
    writer_ct = P.arg_vector(ARGS, "CT_WRITER_", cb_state=cb["state"], cb_tokens=cb["tokens"], cb_table=cb["table"],
                             cb_out=cb["out"], batch=B, rows=rows, max_blocks=max_blocks, block_size=block_size,
                             new_pos_ta=ta(new_pos), new_last_ta=ta(new_last), new_table_ta=ta(new_table),
                             freed_ta=ta(freed))
    addr = lambda name: P.BufferAddress(name) if paged or name not in ("page_table", "new_page_table", "freed") \
        else 0  # noqa: E731
    reader_rt = P.arg_vector(ARGS, "RT_READER_", pos_addr=addr("pos"), last_addr=addr("last"),
                             num_accepted_addr=addr("num_accepted"), output_addr=addr("output_tokens"),
                             page_table_addr=addr("page_table"))
    writer_rt = P.arg_vector(ARGS, "RT_WRITER_", new_pos_addr=addr("new_pos"), new_last_addr=addr("new_last"),
                             new_table_addr=addr("new_page_table"), freed_addr=addr("freed"))
    kernels = [P.Kernel(str(KERNELS / "reader_rollback_kv.cpp"), "reader", core, reader_ct, {(0, 0): reader_rt}),
               P.Kernel(str(KERNELS / "writer_rollback_kv.cpp"), "writer", core, writer_ct, {(0, 0): writer_rt})]
    if caches is not None:
        compact_kernels, compact_cbs, compact_tensors = compaction(B, rows, max_blocks, block_size, caches,
                                                                   pos, num_accepted, page_table)
        kernels, cbs, tensors = kernels + compact_kernels, cbs + compact_cbs, tensors + compact_tensors
    return P.Program("rollback_kv", kernels, cbs, tensors)


def compaction(B: int, rows: int, max_blocks: int, block_size: int, caches: KVCaches, pos: P.Tensor,
               num_accepted: P.Tensor, page_table: P.Tensor):
    """The compaction kernels, their circular buffers and their new tensors (accepted_slots and the
    two caches); units (b, layer, K|V, head) are dealt to the cores in contiguous ranges."""
    if caches.head_dim % 32 or caches.slot_rows % 32 or caches.dtype not in (torch.bfloat16, torch.float32):
        raise NotImplementedError(f"rollback_kv compaction kernels: need head_dim and S (or block_size) multiples of "
                                  f"32 and bf16/fp32 caches, got {caches}")
    slots = P.Tensor("accepted_slots", (B, rows), torch.int32)
    k_cache = P.Tensor("k_cache", caches.shape, caches.dtype, "tile", is_output=True)  # updated in place
    v_cache = P.Tensor("v_cache", caches.shape, caches.dtype, "tile", is_output=True)
    face_row_bytes = 16 * torch.empty((), dtype=caches.dtype).element_size()
    d_tiles = caches.head_dim // 32
    units = B * caches.layers * 2 * caches.hkv
    grid = compact_cores(units)
    cores = [P.CoreRange(c, c) for c in grid]
    scratch_page = 2 * P.dram_align(B * 4) + P.dram_align(rows * 4) + P.dram_align(max_blocks * 4)
    rows_page = rows_page_bytes(rows, d_tiles, face_row_bytes)
    cb = dict(scratch=0, rows=1)
    cbs = [P.CircularBuffer(cb["scratch"], cores, 1, scratch_page, P.DataFormat.Int32, "compact_scratch"),
           P.CircularBuffer(cb["rows"], cores, 2, rows_page, P.data_format(caches.dtype), "compact_rows")]
    ta = P.tensor_accessor_args
    reader_ct = P.arg_vector(ARGS, "CT_COMPACT_READER_", cb_scratch=cb["scratch"], cb_rows=cb["rows"], batch=B,
                             rows=rows, layers=caches.layers, hkv=caches.hkv, d_tiles=d_tiles,
                             matrix_tiles=caches.slot_rows // 32, seq_matrices=caches.matrices,
                             block_size=block_size if max_blocks else 0, max_blocks=max_blocks,
                             face_row_bytes=face_row_bytes, pos_ta=ta(pos), num_accepted_ta=ta(num_accepted),
                             slots_ta=ta(slots), page_table_ta=ta(page_table), k_ta=ta(k_cache), v_ta=ta(v_cache))
    writer_ct = P.arg_vector(ARGS, "CT_COMPACT_WRITER_", cb_rows=cb["rows"], rows=rows, d_tiles=d_tiles,
                             face_row_bytes=face_row_bytes, k_ta=ta(k_cache), v_ta=ta(v_cache))
    reader_rt, writer_rt = {}, {}
    for i, c in enumerate(grid):
        begin, end = i * units // len(grid), (i + 1) * units // len(grid)
        reader_rt[c] = P.arg_vector(ARGS, "RT_COMPACT_READER_", pos_addr=P.BufferAddress("pos"),
                                    num_accepted_addr=P.BufferAddress("num_accepted"),
                                    slots_addr=P.BufferAddress("accepted_slots"),
                                    page_table_addr=P.BufferAddress("page_table") if max_blocks else 0,
                                    k_addr=P.BufferAddress("k_cache"), v_addr=P.BufferAddress("v_cache"),
                                    unit_begin=begin, unit_end=end)
        writer_rt[c] = P.arg_vector(ARGS, "RT_COMPACT_WRITER_", k_addr=P.BufferAddress("k_cache"),
                                    v_addr=P.BufferAddress("v_cache"), unit_begin=begin, unit_end=end)
    kernels = [P.Kernel(str(KERNELS / "reader_rollback_kv_compact.cpp"), "reader", cores, reader_ct, reader_rt),
               P.Kernel(str(KERNELS / "writer_rollback_kv_compact.cpp"), "writer", cores, writer_ct, writer_rt)]
    return kernels, cbs, [slots, k_cache, v_cache]


def kernel_caches(cache: torch.Tensor | tuple) -> KVCaches:
    """The kernels' view of a cache [L, M, Hkv, S or block_size, D] or [M, Hkv, S or block_size, D]
    (M = B or num_blocks): a torch tensor, or a shape and dtype (ttnn tensors)."""
    shape, dtype = (tuple(cache.shape), cache.dtype) if isinstance(cache, torch.Tensor) else cache
    layers, matrices, hkv, slots, head_dim = shape if len(shape) == 5 else (1, *shape)
    return KVCaches(layers, matrices, hkv, P.align(slots, 32), head_dim, dtype, len(shape) == 5)


def to_kernel_layout(cache: torch.Tensor, caches: KVCaches) -> torch.Tensor:
    """The caller's cache with its slots padded to slot_rows: the tensor the kernels tile."""
    return torch.nn.functional.pad(cache, (0, 0, 0, caches.slot_rows - cache.shape[-2]))


def from_kernel_layout(x: torch.Tensor, cache: torch.Tensor) -> None:
    """Writes the kernels' cache back into the caller's, in place."""
    cache.copy_(x[..., :cache.shape[-2], :])


def run(ex, pos, last, num_accepted, output_tokens, *, page_table=None, block_size: int | None = None,
        accepted_slots=None, k_cache=None, v_cache=None):
    """rollback_kv's kernels on executor `ex` (tt_specdec.runtime.emu or .device), arguments validated:
    (Rollback, RunResult). torch inputs give torch results in the callers' dtypes, with torch caches
    compacted in place (through the kernels' copy, written back); ttnn inputs (on a card) give int32
    ttnn results that stay there, ttnn caches ([L, M, Hkv, S, D] or [M, Hkv, S, D], tiles, S a
    multiple of 32) compacted where they are."""
    B = int(list(pos.shape)[-1])
    rows = int(list(output_tokens.shape)[-1])
    max_blocks = 0 if page_table is None else int(list(page_table.shape)[-1])
    if max_blocks and (block_size is None or block_size < 1):
        raise ValueError(f"block_size: got {block_size}, expected a positive int with a page_table")
    caches = None
    if accepted_slots is not None:
        if is_ttnn_tensor(k_cache):
            dtype = device.torch_dtype(k_cache)
            if dtype is None:
                raise TypeError(f"k_cache: got ttnn dtype {k_cache.dtype}, expected bfloat16 or float32")
            caches = kernel_caches((tuple(int(d) for d in k_cache.shape), dtype))
        else:
            caches = kernel_caches(k_cache)
    with ex.aligned():
        prog = rollback_kv_program(B, rows - 1, max_blocks, block_size or 0, caches)
    row = lambda x: x.to(torch.int32).reshape(1, B)  # noqa: E731  [B] -> the kernels' [1, B] int32
    int32 = lambda x: x.to(torch.int32)  # noqa: E731
    tensors = {"pos": host_converted(pos, row), "last": host_converted(last, row),
               "num_accepted": host_converted(num_accepted, row), "output_tokens": host_converted(output_tokens, int32)}
    if max_blocks:
        tensors["page_table"] = host_converted(page_table, int32)
    if caches is not None:
        tensors["accepted_slots"] = host_converted(accepted_slots, int32)
        for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
            tensors[name] = host_converted(cache, lambda c: to_kernel_layout(c, caches))
    r = ex.run(prog, tensors)
    o = r.outputs
    if caches is not None and not is_ttnn_tensor(k_cache):  # torch caches: the kernels' copy written back
        from_kernel_layout(ex.to_torch(o["k_cache"]), k_cache)
        from_kernel_layout(ex.to_torch(o["v_cache"]), v_cache)
    if is_ttnn_tensor(pos):
        return Rollback(device.reshape(o["new_pos"], [B]), device.reshape(o["new_last"], [B]),
                        o.get("new_page_table"), o.get("freed")), r
    new_pos = ex.to_torch(o["new_pos"]).reshape(B).to(pos.dtype)  # the callers' dtypes
    new_last = ex.to_torch(o["new_last"]).reshape(B).to(last.dtype)
    if page_table is None:
        return Rollback(new_pos, new_last, None, None), r
    return Rollback(new_pos, new_last, ex.to_torch(o["new_page_table"]).to(page_table.dtype),
                    ex.to_torch(o["freed"]).to(page_table.dtype)), r


def rollback_kv_emu(pos: torch.Tensor, last: torch.Tensor, num_accepted: torch.Tensor, output_tokens: torch.Tensor, *,
                    page_table: torch.Tensor | None = None, block_size: int | None = None,
                    accepted_slots: torch.Tensor | None = None, k_cache: torch.Tensor | None = None,
                    v_cache: torch.Tensor | None = None):
    """The kernels on the emulator: (Rollback in the callers' dtypes, RunResult), caches compacted in place."""
    return run(emu, pos, last, num_accepted, output_tokens, page_table=page_table, block_size=block_size,
               accepted_slots=accepted_slots, k_cache=k_cache, v_cache=v_cache)
