"""Program description of the rollback_kv kernels (kernels/rollback_kv/): one core, because
the work is O(B * max_blocks). The step's num_accepted arrives as a tensor, so every step
reuses the compiled kernels; B, k+1, max_blocks and block_size are compile-time shapes.
"""
from __future__ import annotations

import torch

from tt_specdec import program as P
from tt_specdec.errors import check_shape
from tt_specdec.ops.rollback_kv import Rollback

KERNEL_DIR = P.KERNELS_DIR / "rollback_kv"
ARGS = P.read_arg_indices(KERNEL_DIR / "rollback_kv_common.hpp")


def rollback_kv_program(B: int, k: int, max_blocks: int = 0, block_size: int = 0) -> P.Program:
    """pos, last, num_accepted [B] and output_tokens [B, k+1] (int32) -> new pos, last [B];
    with max_blocks > 0 also page_table [B, max_blocks] -> new table and freed ids."""
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
    state_page = P.align(B * 4, 16)
    cb = dict(state=0, tokens=1, table=2, out=16)
    i32 = P.DataFormat.Int32
    cbs = [P.CircularBuffer(cb["state"], core, 3, state_page, i32, "state"),
           P.CircularBuffer(cb["tokens"], core, 2, P.align(rows * 4, 16), i32, "tokens"),
           P.CircularBuffer(cb["out"], core, 2, P.align(max(B, max_blocks) * 4, 16), i32, "out")]
    if paged:
        cbs.append(P.CircularBuffer(cb["table"], core, 2, P.align(max_blocks * 4, 16), i32, "page_table"))
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
    kernels = [P.Kernel("rollback_kv/reader_rollback_kv.cpp", "reader", core, reader_ct, {(0, 0): reader_rt}),
               P.Kernel("rollback_kv/writer_rollback_kv.cpp", "writer", core, writer_ct, {(0, 0): writer_rt})]
    return P.Program("rollback_kv", kernels, cbs, tensors)


def rollback_kv_emu(pos: torch.Tensor, last: torch.Tensor, num_accepted: torch.Tensor, output_tokens: torch.Tensor, *,
                    page_table: torch.Tensor | None = None, block_size: int | None = None):
    """The kernels on the emulator; returns (Rollback in the callers' dtypes, RunResult)."""
    from tt_specdec import emu

    check_shape("pos", pos, (None,))
    B = pos.shape[0]
    check_shape("output_tokens", output_tokens, (B, None), "= [B, k+1]")
    k = output_tokens.shape[1] - 1
    max_blocks = 0 if page_table is None else page_table.shape[1]
    prog = rollback_kv_program(B, k, max_blocks, block_size or 0)
    i32 = lambda t: t.to(torch.int32).reshape(1, B)  # noqa: E731
    inputs = {"pos": i32(pos), "last": i32(last), "num_accepted": i32(num_accepted),
              "output_tokens": output_tokens.to(torch.int32)}
    if page_table is not None:
        inputs["page_table"] = page_table.to(torch.int32)
    r = emu.run(prog, inputs)
    o = r.outputs
    if page_table is None:
        return Rollback(o["new_pos"].view(B).to(pos.dtype), o["new_last"].view(B).to(last.dtype), None, None), r
    return Rollback(o["new_pos"].view(B).to(pos.dtype), o["new_last"].view(B).to(last.dtype),
                    o["new_page_table"].to(page_table.dtype), o["freed"].to(page_table.dtype)), r
