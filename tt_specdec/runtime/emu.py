"""The emulator executor: runs a program description (tt_specdec.runtime.program) on the host
emulator (tt_specdec._emu, csrc/), with `run(program, tensors)`.

JIT like TT-Metal: each (kernel source, role, compile-time args, defines, CB data
formats) is compiled by the host C++ compiler into a shared object, cached by hash
in $TT_SPECDEC_CACHE (default ~/.cache/tt_specdec/kernels) beside a build.json recording its size and
sha256 (checked before use: a truncated or foreign .so is rebuilt), loaded once per process.
Torch tensors become interleaved DRAM buffers (row-major pages, or tiles of four
16 x 16 faces); outputs are read back into torch tensors. A flat list of ints stands for an
integer tensor of the description.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from tt_specdec.runtime import cachefile
from tt_specdec.runtime import program as P
from tt_specdec.runtime.program import RunResult

# the emulator's kernel API headers: csrc/include in a source checkout; a wheel ships a copy (setup.py)
EMU_INCLUDE = Path(__file__).resolve().parents[2] / "csrc" / "include"
if not EMU_INCLUDE.is_dir():
    EMU_INCLUDE = Path(__file__).resolve().parents[1] / "_emu_include"
# Wormhole B0 n150: 8 x 8 worker grid, 12 DRAM banks, 1464 KiB of L1 per core
GRID = (8, 8)
NUM_DRAM_BANKS = 12
L1_SIZE = 1464 * 1024
ROLE_DEFINES = {"reader": "COMPILE_FOR_NCRISC", "writer": "COMPILE_FOR_BRISC", "compute": "COMPILE_FOR_TRISC"}
# The real JIT's flags, as ttnn 0.81.1's JIT passes them for a dataflow kernel through generic_op (its
# command line recorded on a mock device by tools/conformance/, FACTS.md; tt-metal
# tt_metal/jit_build/build.cpp): warnings are errors, fast math that keeps NaN / inf / signed zeros and
# the order of additions, no exceptions or RTTI; -Os for the data-movement RISC-Vs, -O3 for compute.
# Left out: the SFPI compiler's own -ftt-* / -mcpu=tt-wh / LTO flags.
JIT_FLAGS = ["-std=c++17", "-ffast-math", "-fno-finite-math-only", "-fsigned-zeros", "-fno-associative-math",
             "-fno-exceptions", "-fno-rtti", "-fno-use-cxa-atexit", "-Wall", "-Werror",
             "-Wno-error=deprecated-declarations", "-Wno-error=multistatement-macros", "-Wno-error=parentheses",
             "-Wno-error=unused-but-set-variable", "-Wno-unused-variable", "-Wno-unused-function",
             "-DKERNEL_BUILD", "-DTENSIX_FIRMWARE"]
JIT_OPT = {"reader": "-Os", "writer": "-Os", "compute": "-O3"}
# Host-only: every kernel .so keeps its symbols to itself, as each kernel is its own ELF on the card
# (tt_metal/jit_build/build.cpp links one per kernel and RISC). Without these g++ exports the headers'
# inline thread_locals (emu_compute::state, emu_ctx) as STB_GNU_UNIQUE, which ld.so binds to ONE
# definition per process even under RTLD_LOCAL: a kernel then used another kernel's TLS, and State's size
# differs with DST_ACCUM_MODE ([4, 1024] vs [8, 1024] floats), so it wrote past it into the heap.
CXX_FLAGS = [*JIT_FLAGS, "-fPIC", "-fvisibility=hidden", "-fno-gnu-unique"]  # and JIT_OPT[role]
# Linked apart from the compile, without -ffast-math: g++ would link crtfastmath.o into the .so, whose
# constructor turns on flush-to-zero for the whole Python process.
LINK_FLAGS = ["-shared"]


class EmuError(RuntimeError):
    """A kernel broke a rule of the TT-Metal kernel API (the message names core, kernel and buffer)."""


def _emu_module():
    try:
        from tt_specdec import _emu
    except ImportError as e:
        raise ImportError("tt_specdec._emu is not built: run `pip install -e .` (needs g++, cmake, pybind11)") from e
    return _emu


def cache_dir() -> Path:
    return cachefile.root() / "kernels"


@dataclass
class CompileStats:
    compiled: int = 0  # g++ invocations
    disk_hits: int = 0  # .so found in the cache dir
    memory_hits: int = 0  # already loaded in this process


compile_stats = CompileStats()
_loaded: dict[str, str] = {}
_lock = threading.Lock()


def _descriptors_header(cb_formats: dict[int, tuple[int, int]]) -> str:
    """chlkc_descriptors.h as the real JIT generates it: per-CB data format and page size."""
    fmt = [0xFF] * 32
    size = [0] * 32
    for idx, (f, page) in cb_formats.items():
        fmt[idx], size[idx] = f, page
    return ("#pragma once\n"
            f"constexpr unsigned char unpack_src_format[32] = {{{', '.join(map(str, fmt))}}};\n"
            f"constexpr unsigned char pack_dst_format[32] = {{{', '.join(map(str, fmt))}}};\n"
            f"constexpr unsigned int unpack_tile_size[32] = {{{', '.join(map(str, size))}}};\n")


def _emu_sources_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(EMU_INCLUDE.rglob("*.h")):
        h.update(p.read_bytes())
    return h.hexdigest()


_GENERATED_HEADER = "chlkc_descriptors.h"  # _build writes it per compile (the real JIT generates it)
# An #include line: its delimiter ('"' or '<') and the name. Computed includes (#include MACRO) are not followed.
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.M)


def _include_dirs(src: Path) -> list[Path]:
    """The -I folders of a kernel's compile after the generated one (_build), in g++'s search order."""
    return [EMU_INCLUDE, src.parent]


def _resolve_include(name: str, quoted: bool, including: Path, src: Path) -> Path | None:
    """Where g++ finds `#include "name"` (the including file's folder first) or `<name>` in `including`
    during the compile of `src`; None for the generated chlkc_descriptors.h (its text is in the key) and for
    what resolves in no folder of ours (the C++ library's headers)."""
    if quoted and (including.parent / name).is_file():
        return including.parent / name
    if name == _GENERATED_HEADER:  # _build's own -I folder comes first
        return None
    return next((d / name for d in _include_dirs(src) if (d / name).is_file()), None)


def _kernel_sources_digest(src: Path) -> str:
    """The kernel's include closure: every file its #include lines reach, followed transitively as g++
    resolves them, each hashed once by its path relative to the kernel's folder (the key does not depend on
    where the tree lies) and its bytes. The emulator's own headers are left to _emu_sources_digest."""
    emu_root = EMU_INCLUDE.resolve()
    files: dict[Path, str] = {}  # resolved path -> path relative to the kernel's folder
    todo = [src]
    while todo:
        f = todo.pop()
        real = f.resolve()
        if real in files or real.is_relative_to(emu_root):
            continue
        files[real] = os.path.relpath(os.path.normpath(f), src.parent)
        for delimiter, name in _INCLUDE.findall(f.read_text(errors="replace")):
            found = _resolve_include(name.strip(), delimiter == '"', f, src)
            if found is not None:
                todo.append(found)
    h = hashlib.sha256()
    for real, rel in sorted(files.items(), key=lambda item: item[1]):
        data = real.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode() + data)
    return h.hexdigest()


def compile_kernel(kernel: P.Kernel, cb_formats: dict[int, tuple[int, int]]) -> str:
    """Returns the path of the kernel's shared object, compiling it on a cache miss."""
    src = kernel.path
    if not src.is_file():
        raise FileNotFoundError(f"kernel source {src}: not found")
    if kernel.role not in ROLE_DEFINES:
        raise ValueError(f"kernel {src.name}: role {kernel.role!r}, expected one of {list(ROLE_DEFINES)}")
    cta = ",".join(str(int(a)) for a in kernel.compile_time_args)
    defines = [f"-D{k}={v}" if v != "" else f"-D{k}" for k, v in sorted(kernel.defines.items())]
    if kernel.role == "compute":  # the real JIT generates this from the ComputeConfig
        defines.append(f"-DDST_ACCUM_MODE={'true' if kernel.fp32_dest_acc_en else 'false'}")
    header = _descriptors_header(cb_formats)
    key = hashlib.sha256("\n".join([
        _kernel_sources_digest(src), _emu_sources_digest(), kernel.role, cta, *defines, header, *CXX_FLAGS, *LINK_FLAGS,
        JIT_OPT[kernel.role],
        f"build.json v{KERNEL_BUILD_VERSION}",  # builds of another layout are other keys, never read
    ]).encode()).hexdigest()[:24]
    with _lock:
        if key in _loaded:
            compile_stats.memory_hits += 1
            return _loaded[key]
        out_dir = cache_dir() / f"{src.stem}-{key}"
        so = out_dir / "kernel.so"
        why = _invalid_build(out_dir)
        if why is None:
            compile_stats.disk_hits += 1
        else:
            with cachefile.locked(out_dir):  # one process rebuilds; the others then find its build
                why = _invalid_build(out_dir)
                if why is not None:
                    if out_dir.exists() or out_dir.is_symlink():
                        cachefile.notice(so, why)
                        cachefile.discard(out_dir)
                    _build(src, kernel, cta, defines, header, out_dir)
        _loaded[key] = str(so)
        return str(so)


KERNEL_BUILD_KIND = "tt_specdec.emu_kernel"
KERNEL_BUILD_VERSION = 1


def _invalid_build(out_dir: Path) -> str | None:
    """Why a cached kernel build does not validate (None: it does): kernel.so must be the file whose
    size and sha256 its build.json records."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return "missing"
    try:
        record = cachefile.read_json(out_dir / "build.json", KERNEL_BUILD_KIND, KERNEL_BUILD_VERSION)
        if record is None:
            return "no build.json beside it"
        cachefile.regular_file(out_dir / "kernel.so")
        if cachefile.file_digest(out_dir / "kernel.so") != record:
            return "kernel.so does not match the size and sha256 its build.json records"
    except (cachefile.Invalid, OSError) as e:
        return str(e)
    return None


def _build(src: Path, kernel: P.Kernel, cta: str, defines: list[str], header: str, out_dir: Path) -> None:
    """Compile into a temporary folder beside out_dir, record the .so's size and sha256, rename the folder
    to out_dir (atomic); the temporary folder is removed on any exit."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cachefile.stale_temporaries(out_dir.parent, ".build-*")  # left by a process killed mid-build
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".build-"))
    try:
        (tmp / _GENERATED_HEADER).write_text(header)
        cmd = [os.environ.get("CXX", "g++"), JIT_OPT[kernel.role], *CXX_FLAGS, f"-DKERNEL_COMPILE_TIME_ARGS={cta}",
               f"-D{ROLE_DEFINES[kernel.role]}", *defines, f"-I{tmp}", *(f"-I{d}" for d in _include_dirs(src)),
               "-include", "emu/kernel_entry.h", "-c", str(src), "-o", str(tmp / "kernel.o")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:  # linked without -ffast-math: see LINK_FLAGS
            r = subprocess.run([os.environ.get("CXX", "g++"), *LINK_FLAGS, str(tmp / "kernel.o"), "-o",
                                str(tmp / "kernel.so")], capture_output=True, text=True)
        if r.returncode != 0:
            raise EmuError(f"kernel {src} ({kernel.role}) does not compile:\n{r.stderr[-4000:]}")
        compile_stats.compiled += 1
        cachefile.write_json(tmp / "build.json", KERNEL_BUILD_KIND, KERNEL_BUILD_VERSION,
                             cachefile.file_digest(tmp / "kernel.so"))
        try:
            tmp.rename(out_dir)  # atomic: a concurrent build of the same key wins or loses whole
        except OSError:
            pass  # another process's build is there: the same key, the same kernel
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_device = None


def device():
    """The process-wide emulated device (Wormhole-like: 8 x 8 cores, 12 DRAM banks)."""
    global _device
    if _device is None:
        _device = _emu_module().Device(GRID[0], GRID[1], NUM_DRAM_BANKS, L1_SIZE)
    return _device


def aligned():
    """Descriptions built inside fit the emulated Wormhole (32-byte DRAM pages)."""
    return P.dram_alignment(P.DRAM_ALIGNMENT)


def to_torch(x: torch.Tensor) -> torch.Tensor:
    """An output of run() as a torch tensor: it is one already."""
    return x


def _to_pages(t: P.Tensor, x: torch.Tensor | list[int]) -> bytes:
    if isinstance(x, list):
        x = torch.tensor(x, dtype=t.dtype).view(t.shape)
    if tuple(x.shape) != tuple(t.shape) or x.dtype != t.dtype:
        raise ValueError(f"tensor {t.name!r}: got {list(x.shape)} {x.dtype}, expected {list(t.shape)} {t.dtype}")
    x = x.contiguous()
    if t.layout == "tile":
        x = P.tilize(x).contiguous()
    return x.reshape(-1).view(torch.uint8).numpy().tobytes()


def _from_pages(t: P.Tensor, raw: bytes) -> torch.Tensor:
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if t.layout == "tile":
        h, w = t.shape[-2], t.shape[-1]
        lead = t.shape[:-2]
        tiles = flat.view(t.dtype).reshape(*lead, -1, P.TILE * P.TILE)
        return P.untilize(tiles, h, w).contiguous()
    return flat.view(t.dtype).reshape(t.shape).clone()


def _resolve(arg: P.RuntimeArg, addresses: dict[str, int], dev) -> int:
    if isinstance(arg, P.BufferAddress):
        if arg.name not in addresses:
            raise KeyError(f"runtime arg BufferAddress({arg.name!r}): no tensor of that name in the program")
        return addresses[arg.name]
    if isinstance(arg, (P.NocX, P.NocY)):
        x, y = dev.noc_coord(*arg.core)
        return x if isinstance(arg, P.NocX) else y
    value = int(arg)
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"runtime arg {value}: does not fit 32 bits")
    return value & 0xFFFFFFFF


def run(prog: P.Program, inputs: dict[str, torch.Tensor | list[int]], *, deadlock_ms: float = 200.0) -> RunResult:
    """Runs `prog` with `inputs` (one torch tensor per non-output Tensor) and returns its outputs."""
    dev = device()
    _emu = _emu_module()
    cb_formats_by_core: dict[P.Core, dict[int, tuple[int, int]]] = {}
    for cb in prog.circular_buffers:
        for c in P.cores_of(cb.core_ranges):
            cb_formats_by_core.setdefault(c, {})[cb.index] = (int(cb.data_format), cb.page_size)
    dev.free_all_dram()
    addresses = {}
    for t in prog.tensors:
        addresses[t.name] = dev.alloc_dram(t.name, t.num_pages, t.page_size)
        if not t.is_output or t.name in inputs:  # an output given as input is updated in place (a KV cache)
            if t.name not in inputs:
                raise KeyError(f"program {prog.name}: input tensor {t.name!r} not given")
            dev.write_dram(addresses[t.name], t.page_size, _to_pages(t, inputs[t.name]))
    kernels = []
    for k in prog.kernels:
        cores = P.cores_of(k.core_ranges)
        # one build per distinct CB configuration; every core of a kernel normally shares one
        formats = {tuple(sorted(cb_formats_by_core.get(c, {}).items())) for c in cores}
        if len(formats) != 1:
            raise ValueError(f"kernel {k.source}: its cores see different circular buffer formats")
        so = compile_kernel(k, dict(next(iter(formats))))
        unknown = set(k.runtime_args) - set(cores)
        if unknown:
            raise ValueError(f"kernel {k.source}: runtime args for cores {sorted(unknown)} outside its core ranges")
        kernels.append({
            "name": k.path.stem, "role": k.role, "so_path": so, "cores": cores,
            "runtime_args": {c: [_resolve(a, addresses, dev) for a in args] for c, args in k.runtime_args.items()},
            "common_runtime_args": [_resolve(a, addresses, dev) for a in k.common_runtime_args],
        })
    cbs = [{"name": cb.name, "index": cb.index, "num_pages": cb.num_pages, "page_size": cb.page_size,
            "data_format": int(cb.data_format), "cores": P.cores_of(cb.core_ranges)} for cb in prog.circular_buffers]
    sems = [{"id": s.id, "initial_value": s.initial_value, "cores": P.cores_of(s.core_ranges)} for s in prog.semaphores]
    try:
        stats = dev.run(kernels, cbs, sems, deadlock_ms)
    except _emu.EmuError as e:
        raise EmuError(f"program {prog.name}: {e}") from None
    outputs = {}
    for t in prog.tensors:
        if t.is_output:
            raw = dev.read_dram(addresses[t.name], t.page_size, t.num_pages * t.page_size)
            outputs[t.name] = _from_pages(t, raw)
    return RunResult(outputs, list(stats))
