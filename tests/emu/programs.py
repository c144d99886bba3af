"""Small test programs for the emulator rules: a two-core DRAM copy whose kernels can be
swapped for the deliberately broken ones under tests/emu/broken/."""
from __future__ import annotations

from pathlib import Path

import torch

from tt_specdec import program as P

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
