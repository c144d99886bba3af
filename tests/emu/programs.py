"""Small test programs for the emulator rules: a two-core DRAM copy whose kernels can be
swapped for the deliberately broken ones under tests/emu/broken/."""
from __future__ import annotations

from pathlib import Path

import torch

from tt_specdec.runtime import program as P

HERE = Path(__file__).resolve().parent


def copy_program(shape=(4, 64), dtype=torch.bfloat16, *, cores: int = 2, reader: str = "kernels/reader_copy.cpp",
                 writer: str = "kernels/writer_copy.cpp", cb_pages: int = 2, cb_page_size: int | None = None,
                 semaphores: list[P.Semaphore] | None = None, drop_runtime_arg: bool = False) -> P.Program:
    """src [*shape] -> dst [*shape], pages split over `cores` cores in a row."""
    src = P.Tensor("src", tuple(shape), dtype)
    dst = P.Tensor("dst", tuple(shape), dtype, is_output=True)
    n = src.num_pages
    per = -(-n // cores)
    cr = [P.CoreRange((0, 0), (cores - 1, 0))]
    rt_reader, rt_writer = {}, {}
    for c in range(cores):
        start, end = min(n, c * per), min(n, (c + 1) * per)
        # reader: [src_addr, start_page, num_pages]; writer: [dst_addr, start_page, num_pages]
        rt_reader[(c, 0)] = [P.BufferAddress("src"), start, end - start]
        rt_writer[(c, 0)] = [P.BufferAddress("dst"), start, end - start]
        if drop_runtime_arg:
            rt_reader[(c, 0)] = rt_reader[(c, 0)][:2]
    page = cb_page_size or P.align(src.page_size, P.L1_ALIGNMENT)
    return P.Program(
        "copy",
        [P.Kernel(str(HERE / reader), "reader", cr, [0, src.page_size, *P.tensor_accessor_args(src)], rt_reader),
         P.Kernel(str(HERE / writer), "writer", cr, [0, src.page_size, *P.tensor_accessor_args(dst)], rt_writer)],
        [P.CircularBuffer(0, cr, cb_pages, page, P.data_format(dtype), "cb_in")],
        [src, dst], semaphores or [])


def tiles_program(n_tiles: int, in_dtype=torch.bfloat16, out_dtype=torch.bfloat16, *, op: int = 0, idst: int = 0,
                  compute: str = "kernels/compute_binary.cpp", fp32_dest_acc_en: bool = False,
                  b_dtype=None) -> P.Program:
    """a, b [n_tiles * 32, 32] (tile layout) -> out [n_tiles * 32, 32] through a compute kernel
    on one core (kernels/compute_binary.cpp: `op` picks the tile op, `idst` its dst slot); b in
    b_dtype when given (mixed formats), else in in_dtype."""
    shape = (n_tiles * 32, 32)
    b_dtype = b_dtype or in_dtype
    a, b = P.Tensor("a", shape, in_dtype, "tile"), P.Tensor("b", shape, b_dtype, "tile")
    out = P.Tensor("out", shape, out_dtype, "tile", is_output=True)
    core = [P.CoreRange((0, 0), (0, 0))]
    cb_a, cb_b, cb_out = 0, 1, 16
    return P.Program(
        "tiles",
        [P.Kernel(str(HERE / "kernels/reader_tiles.cpp"), "reader", core,
                  [cb_a, cb_b, *P.tensor_accessor_args(a), *P.tensor_accessor_args(b)],
                  {(0, 0): [P.BufferAddress("a"), P.BufferAddress("b"), n_tiles]}),
         P.Kernel(str(HERE / compute), "compute", core, [cb_a, cb_b, cb_out, op, idst], {(0, 0): [n_tiles]},
                  fp32_dest_acc_en=fp32_dest_acc_en),
         P.Kernel(str(HERE / "kernels/writer_tiles.cpp"), "writer", core, [cb_out, *P.tensor_accessor_args(out)],
                  {(0, 0): [P.BufferAddress("out"), n_tiles]})],
        [P.CircularBuffer(cb_a, core, 2, a.page_size, P.data_format(in_dtype), "cb_a"),
         P.CircularBuffer(cb_b, core, 2, b.page_size, P.data_format(b_dtype), "cb_b"),
         P.CircularBuffer(cb_out, core, 2, out.page_size, P.data_format(out_dtype), "cb_out")],
        [a, b, out])
