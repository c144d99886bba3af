"""Instructions of the other dataflow kernels on a data-movement RISC-V: rollback_kv (the state update
per sequence, the tree compaction's reader per byte it reads) and verify_attention's reader (per byte
it reads: K/V tiles, q, pos, mask): each kernel built for rv32im with clang-19
and the JIT's flags and run under Unicorn on the first core of its program (bench/rv32_machine.py:
only the kernel's own instructions count; NoC transfers, their latency and the waits do not).
Shapes: B = 4, k = 4 (rollback_kv paged, 16 blocks of 32); compaction of a depth-2 tree path in
2 layers x 2 KV heads x [2048, 64] bf16; verify_attention T = 5, Hq 8, Hkv 2, S 2048, D 64 bf16 with
the cache full (pos = S - T) and 4 KV splits, on the core of split 1 (the combine core, split 0,
would wait for the other splits' partials). The compaction writer consumes the page its reader
filled, which the stubs leave empty, and verify_attention's writer the tiles compute packs: neither is
measured.

    python bench/rv32_kernels.py [--json]

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
from tt_specdec.ops.rollback_kv.program import KVCaches, rollback_kv_program  # noqa: E402
from tt_specdec.ops.verify_attention.program import verify_attention_program  # noqa: E402

I32 = torch.int32


def cases() -> list[tuple[str, object, dict, str, str, int]]:
    """(label, program, tensors, kernel file, unit, units per run or 0: the bytes read,
    which of the kernel's cores)"""
    B, k, S, T = 4, 4, 2048, 5
    paged = rollback_kv_program(B, k, max_blocks=16, block_size=32)
    state = {"pos": torch.tensor([[100, 200, 300, 400]], dtype=I32), "last": torch.zeros(1, B, dtype=I32),
             "num_accepted": torch.tensor([[4, 2, 0, -1]], dtype=I32),
             "output_tokens": torch.arange(B * (k + 1), dtype=I32).view(B, k + 1),
             "page_table": torch.arange(B * 16, dtype=I32).view(B, 16)}
    caches = KVCaches(2, 1, 2, S, 64, torch.bfloat16, True)
    compact = rollback_kv_program(1, k, caches=caches)
    path = {"pos": torch.tensor([[1000]], dtype=I32), "num_accepted": torch.tensor([[2]], dtype=I32),
            "accepted_slots": torch.tensor([[0, 2, 4, 3, 4]], dtype=I32)}  # nodes 2 and 4 move to pos + 1, pos + 2
    verify = verify_attention_program(1, T, 8, 2, S, 64, torch.bfloat16, 0.125, kv_splits=4)
    full = {"pos": torch.tensor([[S - T]], dtype=I32)}
    return [("rollback_kv paged", paged, state, "reader_rollback_kv.cpp", "sequence", B, 0),
            ("rollback_kv paged", paged, state, "writer_rollback_kv.cpp", "sequence", B, 0),
            ("rollback_kv compaction", compact, path, "reader_rollback_kv_compact.cpp", "byte read", 0, 0),
            ("verify_attention", verify, full, "reader_verify_attention.cpp", "byte read", 0, 1)]


def measure(label, prog, tensors, name, unit, units, which) -> dict:
    kernel = next(kk for kk in prog.kernels if kk.path.name == name)
    core = sorted(kernel.runtime_args)[which]
    run = Machine(prog, kernel, core, tensors).run()
    if run.stopped:
        raise RuntimeError(f"{name}: {run.stopped}")
    n = units or run.bytes_read
    return {"op": label, "kernel": name, "core": list(core), "instructions": run.instructions,
            "bytes_read": run.bytes_read, "bytes_written": run.bytes_written, "unit": unit, "units": n,
            "per_unit": run.instructions / n if n else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    rows = [measure(*c) for c in cases()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'op':24s} {'kernel':32s} {'instructions':>12s} {'read':>8s} {'written':>8s}  per unit")
    for r in rows:
        per = f"{r['per_unit']:.3f} per {r['unit']} ({r['units']})" if r["per_unit"] is not None else "nothing moved"
        print(f"{r['op']:24s} {r['kernel']:32s} {r['instructions']:12d} {r['bytes_read']:8d} {r['bytes_written']:8d}  {per}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
