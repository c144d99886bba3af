"""Builds every dataflow kernel (reader / writer) of the ops' descriptions for the data-movement
RISC-Vs as the JIT would: rv32im, no FPU (-mabi=ilp32), -Os and the JIT's warning and float flags
(tt_metal/jit_build/build.cpp), with clang-19 against the emulator's kernel API headers (the real
ones need the SFPI toolchain). It reports, per kernel, the soft-float routines the object calls
(__adddf3, __muldf3, exp, ...): any float or double arithmetic there runs in software on a card,
hundreds to thousands of instructions per operation.

    python bench/rv32_dataflow.py [--json]

Needs clang-19 and Debian's riscv64 libstdc++ / picolibc headers (tools/conformance/setup.sh installs
them). Shapes: SmolLM2's vocabulary 49,152 and Llama 3's 128,256 for accept_prefix.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tt_specdec.runtime import emu  # noqa: E402
from tt_specdec.runtime import program as P  # noqa: E402
from tt_specdec.ops.accept_prefix.program import (accept_prefix_program, accept_prefix_sampling_program,  # noqa: E402
                                                  accept_tree_program, accept_tree_sampling_program)
from tt_specdec.ops.rollback_kv.program import KVCaches, rollback_kv_program  # noqa: E402
from tt_specdec.ops.verify_attention.program import verify_attention_program  # noqa: E402

SYSTEM_HEADERS = ["/usr/riscv64-linux-gnu/include/c++/12", "/usr/riscv64-linux-gnu/include/c++/12/riscv64-linux-gnu",
                  "/usr/lib/picolibc/riscv64-unknown-elf/include", "/usr/riscv64-linux-gnu/include"]
# libgcc / compiler-rt soft-float entry points and libm: what float or double math becomes on RV32IM
SOFT_FLOAT = re.compile(r"^__(add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord|extend|trunc|fix|fixuns|float|floatun)"
                        r"[a-z]*[sdt]f\d?$|^(exp|expf|log|logf|pow|powf|sqrt|sqrtf|fabs|floor|ceil|ldexp|frexp)$")


def programs() -> list[tuple[str, P.Program]]:
    bf16, f32 = torch.bfloat16, torch.float32
    caches = KVCaches(1, 1, 1, 64, 32, bf16, False)
    return [
        ("accept_prefix greedy V=49152 bf16", accept_prefix_program(1, 4, 49152, bf16)),
        ("accept_prefix greedy V=128256 fp32", accept_prefix_program(1, 4, 128256, f32)),
        ("accept_tree greedy V=49152 bf16 T=16", accept_tree_program(2, 16, 49152, bf16)),
        ("accept_prefix sampling V=49152 bf16", accept_prefix_sampling_program(1, 4, 49152, bf16, 1.0,
                                                                                has_draft_probs=True)),
        ("accept_tree sampling V=49152 bf16 T=16", accept_tree_sampling_program(2, 16, 49152, bf16, 1.0,
                                                                                has_draft_probs=True)),
        ("rollback_kv paged", rollback_kv_program(4, 4, max_blocks=16, block_size=32)),
        ("rollback_kv compaction", rollback_kv_program(1, 4, caches=caches)),
        ("verify_attention", verify_attention_program(1, 5, 8, 2, 2048, 64, bf16, 0.125, kv_splits=4)),
    ]


def system_args(work: Path) -> list[str]:
    """-isystem paths: Debian's riscv64 libstdc++ and picolibc headers, and an empty gnu/stubs-ilp32.h
    (glibc's ilp32 check; nothing is stubbed for kernels)."""
    stubs = work / "stubs" / "gnu"
    stubs.mkdir(parents=True, exist_ok=True)
    (stubs / "stubs-ilp32.h").write_text("/* glibc's ilp32 check: nothing stubbed */\n")
    return [a for d in [*SYSTEM_HEADERS[:2], str(work / "stubs"), *SYSTEM_HEADERS[2:]] for a in ("-isystem", d)]


def build(kernel: P.Kernel, cb_formats: dict[int, tuple[int, int]], work: Path, extra: list[str] = ()) -> Path:
    (work / "chlkc_descriptors.h").write_text(emu._descriptors_header(cb_formats))
    system = system_args(work)
    defines = [f"-D{k}={v}" if v != "" else f"-D{k}" for k, v in sorted(kernel.defines.items())]
    obj = work / f"{kernel.path.stem}.o"
    cmd = ["clang-19", "--target=riscv32-unknown-elf", "-march=rv32im", "-mabi=ilp32", "-nostdinc++", *system,
           emu.JIT_OPT[kernel.role], *[f for f in emu.JIT_FLAGS if not f.startswith("-Wno-error=multistatement")],
           "-Wno-unknown-warning-option", f"-DKERNEL_COMPILE_TIME_ARGS={','.join(str(int(a)) for a in kernel.compile_time_args)}",
           f"-D{emu.ROLE_DEFINES[kernel.role]}", *defines, f"-I{work}", f"-I{emu.EMU_INCLUDE}", f"-I{kernel.path.parent}",
           *extra, "-include", "emu/kernel_entry.h", "-c", str(kernel.path), "-o", str(obj)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{kernel.path.name}: rv32 build failed:\n{r.stderr[-3000:]}")
    return obj


def undefined_symbols(obj: Path) -> list[str]:
    nm = shutil.which("llvm-nm-19") or shutil.which("llvm-nm") or "nm"
    out = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, check=True).stdout
    return sorted({ln.split()[-1] for ln in out.splitlines() if ln.strip()})


def survey() -> list[dict]:
    rows, seen = [], set()
    with tempfile.TemporaryDirectory(prefix="rv32_dataflow_") as tmp:
        for label, prog in programs():
            formats: dict[int, tuple[int, int]] = {}
            for cb in prog.circular_buffers:
                formats[cb.index] = (int(cb.data_format), cb.page_size)
            for k in prog.kernels:
                if k.role == "compute" or k.path in seen:
                    continue
                seen.add(k.path)
                work = Path(tmp) / f"{len(seen)}"
                work.mkdir()
                syms = undefined_symbols(build(k, formats, work))
                rows.append({"kernel": k.path.name, "from": label, "soft_float": [s for s in syms if SOFT_FLOAT.match(s)]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the survey as JSON")
    args = ap.parse_args(argv)
    rows = survey()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['kernel']:40s} {'soft-float: ' + ', '.join(r['soft_float']) if r['soft_float'] else 'integer only'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
