"""Instructions per logit of the greedy accept_prefix writer on a data-movement RISC-V: the kernel is
built for rv32im with clang-19 and the JIT's flags (bench/rv32_dataflow.py), linked with
bench/rv32_harness.cpp (kernel API stubs that cost nothing: only the kernel's own instructions
count), and run on the Unicorn CPU emulator (PyPI `unicorn`) for one non-reducing core's slice of
every row. Vocabularies: SmolLM2's 49,152 (bf16) and Llama 3's 128,256 (fp32), k = 4.

    python bench/rv32_argmax.py [--json]

Needs clang-19, riscv64-unknown-elf-ld and its rv32im libgcc (Debian's gcc-riscv64-unknown-elf) and `unicorn`.
"""
from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rv32_dataflow as R  # noqa: E402
from tt_specdec.runtime import emu  # noqa: E402
from tt_specdec.runtime import program as P  # noqa: E402
from tt_specdec.ops.accept_prefix import program as AP  # noqa: E402

RETURN_ADDR = 0x1000
STACK_TOP = 0x4000000


def rv32_object(src: Path, work: Path, kernel: P.Kernel | None, cb_formats: dict) -> Path:
    """clang-19 -c for rv32im as rv32_dataflow.build, with thread_local dropped (one thread here)."""
    if kernel is not None:
        obj = R.build(kernel, cb_formats, work, extra=["-Dthread_local="])
        return obj
    obj = work / (src.stem + ".o")
    system = R.system_args(work)
    subprocess.run(["clang-19", "--target=riscv32-unknown-elf", "-march=rv32im", "-mabi=ilp32", "-nostdinc++",
                    *system, "-Os", "-std=c++17", "-fno-exceptions", "-Dthread_local=", f"-I{emu.EMU_INCLUDE}",
                    "-c", str(src), "-o", str(obj)], check=True)
    return obj


def load_elf(mu, path: Path) -> None:
    data = path.read_bytes()
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    for i in range(phnum):
        p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, _, _ = struct.unpack_from("<8I", data, phoff + i * phentsize)
        if p_type != 1 or p_memsz == 0:  # PT_LOAD
            continue
        start, end = p_vaddr & ~0xFFF, (p_vaddr + p_memsz + 0xFFF) & ~0xFFF
        mu.mem_map(start, end - start)
        mu.mem_write(p_vaddr, data[p_offset:p_offset + p_filesz])


def symbols(elf: Path) -> dict[str, int]:
    out = subprocess.run(["llvm-nm-19", str(elf)], capture_output=True, text=True, check=True).stdout
    return {ln.split()[2]: int(ln.split()[0], 16) for ln in out.splitlines() if len(ln.split()) == 3}


def resolve(arg) -> int:
    if isinstance(arg, P.BufferAddress):
        return 0
    if isinstance(arg, P.NocX):
        return arg.core[0] + 1
    if isinstance(arg, P.NocY):
        return arg.core[1] + 1
    return int(arg) & 0xFFFFFFFF


def greedy_writer(V: int, dtype: torch.dtype, k: int = 4) -> dict:
    from unicorn import UC_ARCH_RISCV, UC_HOOK_CODE, UC_MODE_RISCV32, Uc
    from unicorn.riscv_const import UC_RISCV_REG_RA, UC_RISCV_REG_SP
    prog = AP.accept_prefix_program(1, k, V, dtype)
    writer = next(kk for kk in prog.kernels if kk.role == "writer")
    formats = {cb.index: (int(cb.data_format), cb.page_size) for cb in prog.circular_buffers}
    core = (1, 0)  # a core that only scans its slice (core 0 also reduces)
    rta = [resolve(a) for a in writer.runtime_args[core]]
    v_start, v_end = rta[AP.ARGS["RT_WRITER_V_START"]], rta[AP.ARGS["RT_WRITER_V_END"]]
    ct = writer.compile_time_args
    chunk = ct[AP.ARGS["CT_WRITER_CHUNK"]]
    with tempfile.TemporaryDirectory(prefix="rv32_argmax_") as tmp:
        work = Path(tmp)
        kobj = rv32_object(writer.path, work, writer, formats)
        hobj = rv32_object(Path(__file__).resolve().parent / "rv32_harness.cpp", work, None, {})
        elf = work / "bench.elf"
        libgcc = subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv32im", "-mabi=ilp32", "-print-libgcc-file-name"],
                                capture_output=True, text=True, check=True).stdout.strip()  # soft-float, if called
        subprocess.run(["riscv64-unknown-elf-ld", "-m", "elf32lriscv", "-e", "bench_main", "-Ttext=0x10000",
                        str(hobj), str(kobj), libgcc, "-o", str(elf)], check=True)
        sym = symbols(elf)
        mu = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        load_elf(mu, elf)
        mu.mem_map(RETURN_ADDR, 0x1000)
        mu.mem_map(STACK_TOP - 0x100000, 0x100000)
        mu.mem_write(sym["bench_rta"], struct.pack(f"<{len(rta)}I", *rta))
        mu.mem_write(sym["bench_rta_count"], struct.pack("<I", len(rta)))
        mu.mem_write(sym["bench_cb_stream"], struct.pack("<I", ct[AP.ARGS["CT_WRITER_CB_LOGITS"]]))
        mu.mem_write(sym["bench_cb_small"], struct.pack("<I", ct[AP.ARGS["CT_WRITER_CB_NUM_DRAFT"]]))
        mu.mem_write(sym["bench_small"], struct.pack("<i", k))
        # one row's slice of random logits, page by page: the running best improves as on real rows
        pages = -(-(v_end - v_start) // chunk)
        g = torch.Generator().manual_seed(0)
        slice_vals = torch.randn(pages * chunk, generator=g).to(dtype)
        page_bytes = chunk * slice_vals.element_size()
        assert pages * page_bytes <= 1 << 17, "bench_stream too small for this slice"
        mu.mem_write(sym["bench_stream"], slice_vals.view(torch.uint8).numpy().tobytes())
        mu.mem_write(sym["bench_stream_page_bytes"], struct.pack("<I", page_bytes))
        mu.mem_write(sym["bench_stream_pages"], struct.pack("<I", pages))
        mu.reg_write(UC_RISCV_REG_SP, STACK_TOP - 16)
        mu.reg_write(UC_RISCV_REG_RA, RETURN_ADDR)
        count = [0]

        def hook(uc, address, size, user):
            count[0] += 1
        mu.hook_add(UC_HOOK_CODE, hook)
        mu.emu_start(sym["bench_main"], RETURN_ADDR)
        failed, = struct.unpack("<I", mu.mem_read(sym["bench_failed"], 4))
        if failed:
            raise RuntimeError("the kernel called the API's fail() under the harness")
    logits = (k + 1) * (v_end - v_start)
    return {"kernel": writer.path.name, "V": V, "dtype": str(dtype).replace("torch.", ""), "k": k,
            "logits_per_core": logits, "instructions": count[0], "instructions_per_logit": count[0] / logits}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    rows = [greedy_writer(49152, torch.bfloat16), greedy_writer(128256, torch.float32)]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['kernel']} V={r['V']} {r['dtype']}: {r['instructions']} instructions for "
                  f"{r['logits_per_core']} logits, {r['instructions_per_logit']:.2f} per logit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
