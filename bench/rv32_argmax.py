"""Instructions per logit of the greedy argmax pass on a data-movement RISC-V, chain
(writer_accept_prefix.cpp) and tree (writer_accept_tree.cpp) alike (accept_prefix_common.hpp's
argmax_row_slice), and per element of their readers: each kernel built for rv32im with clang-19 and
the JIT's flags and run under Unicorn for one non-reducing core (core 1) of the program
(bench/rv32_machine.py: only the kernel's own instructions count; NoC transfers, their latency and the
waits do not). Vocabularies: SmolLM2's 49,152 (bf16) and Llama 3's 128,256 (fp32); chain k = 4, tree
T = 8. Issue 14 asks the greedy argmax for at most 20 instructions per logit.

    python bench/rv32_argmax.py [--json]

Needs clang-19, riscv64-unknown-elf-ld and its rv32im libgcc (Debian's gcc-riscv64-unknown-elf) and `unicorn`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rv32_machine import Machine  # noqa: E402
from tt_specdec.ops.accept_prefix import program as AP  # noqa: E402

CORE = (1, 0)  # a core that only scans its slice (core 0 also reduces)


def _slice_stream(prog, role: str, v_key: str, chunk_key: str, dtype: torch.dtype):
    """The kernel of `role`, its slice [v_start, v_end) and chunk, and one row's slice of random logits as
    chunk pages: the running best improves as on real rows."""
    kernel = next(kk for kk in prog.kernels if kk.role == role)
    rta = kernel.runtime_args[CORE]
    v_start, v_end = int(rta[AP.ARGS[v_key + "START"]]), int(rta[AP.ARGS[v_key + "END"]])
    chunk = kernel.compile_time_args[AP.ARGS[chunk_key]]
    pages = -(-(v_end - v_start) // chunk)
    vals = torch.randn(pages * chunk, generator=torch.Generator().manual_seed(0)).to(dtype)
    return kernel, v_end - v_start, (vals.view(torch.uint8).numpy().tobytes(), chunk * vals.element_size())


def measure(kind: str, V: int, dtype: torch.dtype, k: int = 4, T: int = 8) -> dict:
    """kind: chain_writer, tree_writer, chain_reader or tree_reader."""
    tree = kind.startswith("tree")
    role = kind.split("_")[1]
    rows = T if tree else k + 1
    prog = AP.accept_tree_program(1, T, V, dtype) if tree else AP.accept_prefix_program(1, k, V, dtype)
    prefix = ("T" if tree else "") + ("RT_WRITER_V_" if role == "writer" else "RT_READER_V_")
    chunk_key = ("T" if tree else "") + ("CT_WRITER_CHUNK" if role == "writer" else "CT_READER_CHUNK")
    kernel, count, stream = _slice_stream(prog, role, prefix, chunk_key, dtype)
    tensors = {"logits": torch.randn(prog.tensor("logits").shape, generator=torch.Generator().manual_seed(1))}
    if not tree:
        tensors["num_draft"] = torch.full((1, 1), k, dtype=torch.int32)
    ct = kernel.compile_time_args
    fills = {} if tree or role == "reader" else {  # cb_num_draft [B], which the reader fills
        ct[AP.ARGS["CT_WRITER_CB_NUM_DRAFT"]]: torch.tensor([k], dtype=torch.int32).numpy().tobytes()}
    cb_logits = ct[AP.ARGS[("T" if tree else "") + "CT_WRITER_CB_LOGITS"]] if role == "writer" else None
    streams = {cb_logits: stream} if role == "writer" else {}  # the reader's chunks
    run = Machine(prog, kernel, CORE, tensors, streams=streams, fills=fills).run()
    if run.stopped:
        raise RuntimeError(f"{kernel.path.name}: {run.stopped}")
    elements = rows * count
    return {"kernel": kernel.path.name, "V": V, "dtype": str(dtype).replace("torch.", ""), "rows": rows,
            "elements_per_core": elements, "instructions": run.instructions,
            "instructions_per_element": run.instructions / elements}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    rows = [measure(kind, V, dtype) for kind in ("chain_writer", "tree_writer", "chain_reader", "tree_reader")
            for V, dtype in ((49152, torch.bfloat16), (128256, torch.float32))]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'kernel':30s} {'V':>7s} {'dtype':8s} {'rows':>4s} {'elements':>9s} {'instructions':>12s} per element")
        for r in rows:
            print(f"{r['kernel']:30s} {r['V']:7d} {r['dtype']:8s} {r['rows']:4d} {r['elements_per_core']:9d} "
                  f"{r['instructions']:12d} {r['instructions_per_element']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
