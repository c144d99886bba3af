"""One dataflow kernel of a program on one data-movement RISC-V under the Unicorn CPU emulator (PyPI
`unicorn`): the kernel built for rv32im with clang-19 and the JIT's flags (bench/rv32_dataflow.py),
linked with bench/rv32_harness.cpp, its DRAM tensors and CBs placed in the emulator's memory.

What is counted: the instructions of the kernel's own text (its inlined kernel API wrappers, the
memcpy / memset it calls and any libgcc routine included). What is not: the harness's stubs that
stand for the firmware's NoC and CB calls (a transfer is a free copy), NoC latency, and the time a
core waits on a CB or a semaphore. RV32IM without the C extension: every instruction is 4 bytes, so a
translated block of n bytes is n / 4 instructions, counted per executed block.

Used by bench/rv32_argmax.py and bench/rv32_sampling.py. Needs clang-19, riscv64-unknown-elf-ld and
its rv32im libgcc (Debian's gcc-riscv64-unknown-elf) and `unicorn`.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rv32_dataflow as R  # noqa: E402
from tt_specdec.runtime import emu  # noqa: E402
from tt_specdec.runtime import program as P  # noqa: E402

HARNESS = Path(__file__).resolve().parent / "rv32_harness.cpp"
KERNEL_TEXT = 0x10000      # the kernel's text (and the libc / libgcc it calls): the counted range
HARNESS_TEXT = 0x200000    # the stubs, then data
DRAM = 0x10000000          # DRAM tensors, page by page at their aligned pitch
L1 = 0x30000000            # CBs
STACK_TOP = 0x3F000000
RETURN_ADDR = 0x1000
LINKER_SCRIPT = """ENTRY(bench_main)
SECTIONS {{
  . = {kernel:#x};
  .kernel_text : {{ *{kobj}(.text .text.*) *libgcc.a:*(.text .text.*) *(.kernel_libc) }}
  kernel_text_end = .;
  . = {harness:#x};
  .text : {{ *(.text .text.*) }}
  .rodata : {{ *(.rodata .rodata.* .srodata .srodata.*) }}
  .data : {{ *(.data .data.* .sdata .sdata.*) }}
  .bss : {{ *(.bss .bss.* .sbss .sbss.* COMMON) }}
}}
"""


def align(n: int, a: int) -> int:
    return -(-n // a) * a


@dataclass
class Mark:
    """The harness saw semaphore `sem` move, `instructions` into the run; `word`: its mailbox's first
    word (a command's op), `page`: the second (a ReadCommand's page)."""
    sem: int
    word: int
    page: int
    instructions: int


@dataclass
class Run:
    instructions: int
    marks: list[Mark] = field(default_factory=list)
    stopped: str | None = None  # the message of a fail() or of a wait no one would end
    bytes_read: int = 0  # what the kernel's NoC reads and writes moved
    bytes_written: int = 0
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


def _object(src: Path, work: Path, kernel: P.Kernel | None, cb_formats: dict) -> Path:
    if kernel is not None:  # thread_local dropped: one thread here
        return R.build(kernel, cb_formats, work, extra=["-Dthread_local="])
    obj = work / (src.stem + ".o")
    subprocess.run(["clang-19", "--target=riscv32-unknown-elf", "-march=rv32im", "-mabi=ilp32", "-nostdinc++",
                    *R.system_args(work), "-Os", "-std=c++17", "-fno-exceptions", "-Dthread_local=",
                    f"-I{emu.EMU_INCLUDE}", "-c", str(src), "-o", str(obj)], check=True)
    return obj


def _symbols(elf: Path) -> dict[str, int]:
    out = subprocess.run(["llvm-nm-19", str(elf)], capture_output=True, text=True, check=True).stdout
    return {ln.split()[2]: int(ln.split()[0], 16) for ln in out.splitlines() if len(ln.split()) == 3}


def _load_elf(mu, path: Path) -> None:
    data = path.read_bytes()
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    mapped: set[int] = set()
    for i in range(phnum):
        p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, _, _ = struct.unpack_from("<8I", data, phoff + i * phentsize)
        if p_type != 1 or p_memsz == 0:  # PT_LOAD
            continue
        for page in range(p_vaddr & ~0xFFF, p_vaddr + p_memsz, 0x1000):
            if page not in mapped:
                mu.mem_map(page, 0x1000)
                mapped.add(page)
        mu.mem_write(p_vaddr, data[p_offset:p_offset + p_filesz])


class Machine:
    """`kernel` of `prog` as core `core` runs it. tensors: name -> torch tensor (the program's dtype and
    shape); outputs are read back after the run. streams: CB -> (bytes, page_bytes): the CB's front walks
    those pages as a ring, one per pop (a reader's chunks). fills: CB -> bytes at its front. reader: the
    sampling writer's reader (see rv32_harness.cpp) as (sem, cb_mailbox, [(cb, tensor, offset)] for op 1, 2).
    mailboxes: semaphore -> the CB whose first words each increment reports (Mark). sems: initial values."""

    def __init__(self, prog: P.Program, kernel: P.Kernel, core: tuple[int, int], tensors: dict[str, torch.Tensor],
                 *, streams: dict[int, tuple[bytes, int]] = None, fills: dict[int, bytes] = None,
                 reader: tuple[int, int, list[tuple[int, str, int]]] | None = None,
                 mailboxes: dict[int, int] = None, sems: dict[int, int] = None):
        from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV32, Uc
        self.prog, self.kernel = prog, kernel
        self._tmp = tempfile.TemporaryDirectory(prefix="rv32_machine_")
        work = Path(self._tmp.name)
        formats = {cb.index: (int(cb.data_format), cb.page_size) for cb in prog.circular_buffers}
        kobj = _object(kernel.path, work, kernel, formats)
        hobj = _object(HARNESS, work, None, {})
        libgcc = subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv32im", "-mabi=ilp32",
                                 "-print-libgcc-file-name"], capture_output=True, text=True, check=True).stdout.strip()
        (work / "bench.ld").write_text(LINKER_SCRIPT.format(kernel=KERNEL_TEXT, harness=HARNESS_TEXT, kobj=kobj.name))
        elf = work / "bench.elf"
        subprocess.run(["riscv64-unknown-elf-ld", "-m", "elf32lriscv", "--no-warn-rwx-segments", "-T", str(work / "bench.ld"),
                        str(hobj), str(kobj), libgcc, "-o", str(elf)], check=True)
        self.sym = sym = _symbols(elf)
        self.text_end = sym["kernel_text_end"]
        self.mu = mu = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        _load_elf(mu, elf)
        mu.mem_map(RETURN_ADDR, 0x1000)
        mu.mem_map(STACK_TOP - 0x100000, 0x100000)

        # DRAM: each tensor's pages at the accessor's pitch (page size aligned to DRAM_ALIGNMENT)
        self.addr: dict[str, int] = {}
        at = DRAM
        for t in prog.tensors:
            self.addr[t.name] = at
            at += align(t.num_pages * align(t.page_size, P.DRAM_ALIGNMENT), 0x1000)
        mu.mem_map(DRAM, max(align(at - DRAM, 0x100000), 0x100000))
        for name, value in tensors.items():
            self.write_tensor(name, value)

        # CBs, each at a 32-byte aligned L1 base
        streams, fills = streams or {}, fills or {}
        cb_at, at = {}, L1
        for cb in prog.circular_buffers:
            cb_at[cb.index] = at
            at += align(cb.num_pages * cb.page_size, 32)
        for cb, (data, _) in streams.items():
            cb_at[cb] = at
            at += align(len(data), 32)
        mu.mem_map(L1, max(align(at - L1, 0x100000), 0x100000))
        fronts = [0] * 32
        base, page_bytes, ring = [0] * 32, [1] * 32, [0] * 32
        for cb, a in cb_at.items():
            fronts[cb] = base[cb] = a
        for cb, (data, page) in streams.items():
            mu.mem_write(cb_at[cb], data)
            page_bytes[cb], ring[cb] = page, len(data) // page
        for cb, data in fills.items():
            mu.mem_write(cb_at[cb], data)
        self._write("bench_cb_front", "I", fronts)
        self._write("bench_cb_base", "I", base)
        self._write("bench_cb_page_bytes", "I", page_bytes)
        self._write("bench_cb_ring", "I", ring)
        self._write("bench_sems", "I", [0] * 8)
        for s in prog.semaphores:
            value = (sems or {}).get(s.id, s.initial_value)
            mu.mem_write(sym["bench_sems"] + 4 * s.id, struct.pack("<I", value))
        mailbox_words = [0] * 8
        for sem, cb in (mailboxes or {}).items():
            mailbox_words[sem] = cb_at[cb]
        if reader is not None:
            sem, cb_mailbox, targets = reader
            mailbox_words[sem] = cb_at[cb_mailbox]
            self._write("bench_read_sem", "I", [sem])
            self._write("bench_read_mailbox", "I", [cb_at[cb_mailbox]])
            self._write("bench_read_cb", "I", [t[0] for t in targets])
            self._write("bench_read_base", "I", [self.addr[t[1]] for t in targets])
            self._write("bench_read_pitch", "I",
                        [align(prog.tensor(t[1]).page_size, P.DRAM_ALIGNMENT) for t in targets])
            self._write("bench_read_offset", "I", [t[2] for t in targets])
        self._write("bench_sem_mailbox", "I", mailbox_words)
        rta = [self._resolve(a) for a in kernel.runtime_args[core]]
        self._write("bench_rta", "I", rta)
        self._write("bench_rta_count", "I", [len(rta)])

    def _write(self, name: str, fmt: str, values: list[int]) -> None:
        self.mu.mem_write(self.sym[name], struct.pack(f"<{len(values)}{fmt}", *values))

    def _resolve(self, arg) -> int:
        if isinstance(arg, P.BufferAddress):
            return self.addr[arg.name]
        if isinstance(arg, (P.NocX, P.NocY)):
            return 0  # one core's L1: worker addresses are local
        return int(arg) & 0xFFFFFFFF

    def write_tensor(self, name: str, value: torch.Tensor) -> None:
        t = self.prog.tensor(name)
        pitch = align(t.page_size, P.DRAM_ALIGNMENT)
        raw = value.to(t.dtype).contiguous().reshape(t.num_pages, -1).view(torch.uint8)
        pages = torch.zeros(t.num_pages, pitch, dtype=torch.uint8)
        pages[:, :t.page_size] = raw
        self.mu.mem_write(self.addr[name], pages.numpy().tobytes())

    def read_tensor(self, name: str) -> torch.Tensor:
        t = self.prog.tensor(name)
        pitch = align(t.page_size, P.DRAM_ALIGNMENT)
        raw = bytes(self.mu.mem_read(self.addr[name], t.num_pages * pitch))
        pages = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(t.num_pages, pitch)[:, :t.page_size]
        return pages.contiguous().view(t.dtype).view(t.shape)

    def run(self, outputs: tuple[str, ...] = ()) -> Run:
        from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE
        from unicorn.riscv_const import UC_RISCV_REG_A0, UC_RISCV_REG_A1, UC_RISCV_REG_RA, UC_RISCV_REG_SP
        mu, sym = self.mu, self.sym
        count = [0]
        result = Run(0)
        stopped: list[str] = []

        def block(uc, address, size, user):
            count[0] += size >> 2

        def mark(uc, address, size, user):
            sem, word = uc.reg_read(UC_RISCV_REG_A0), uc.reg_read(UC_RISCV_REG_A1)
            mailbox, = struct.unpack("<I", uc.mem_read(sym["bench_sem_mailbox"] + 4 * sem, 4)) if sem < 8 else (0,)
            page = struct.unpack("<I", uc.mem_read(mailbox + 4, 4))[0] if mailbox else 0
            result.marks.append(Mark(sem, word, page, count[0]))

        def stop(uc, address, size, user):
            ptr = uc.reg_read(UC_RISCV_REG_A0)
            stopped.append(bytes(uc.mem_read(ptr, 160)).split(b"\0")[0].decode(errors="replace"))
            uc.emu_stop()

        mu.hook_add(UC_HOOK_BLOCK, block, begin=KERNEL_TEXT, end=self.text_end - 1)
        mu.hook_add(UC_HOOK_CODE, mark, begin=sym["bench_mark"], end=sym["bench_mark"])
        mu.hook_add(UC_HOOK_CODE, stop, begin=sym["bench_stop"], end=sym["bench_stop"])
        mu.reg_write(UC_RISCV_REG_SP, STACK_TOP - 16)
        mu.reg_write(UC_RISCV_REG_RA, RETURN_ADDR)
        mu.emu_start(sym["bench_main"], RETURN_ADDR)
        result.instructions = count[0]
        result.stopped = stopped[0] if stopped else None
        result.bytes_read, result.bytes_written = struct.unpack("<II", mu.mem_read(sym["bench_bytes_read"], 4) +
                                                                mu.mem_read(sym["bench_bytes_written"], 4))
        for name in outputs:
            result.outputs[name] = self.read_tensor(name)
        return result
