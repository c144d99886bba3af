"""Program descriptions: what a fused op runs, independent of where it runs.

A `Program` names its kernels (source files in the op's kernels/ folder, cores,
compile-time args, runtime args per core, defines), circular buffers and semaphores,
and the DRAM tensors it reads and writes. Two executors run one, each with
`run(program, tensors) -> RunResult`: `tt_specdec.runtime.emu` on the host emulator,
`tt_specdec.runtime.device` on a card, converting it to a `ttnn.ProgramDescriptor`
for `ttnn.generic_op`. Descriptions know no op, and neither do the executors.

Runtime args may hold placeholders the executor resolves: `BufferAddress(name)`
(a tensor's bank address) and `NocX(core)` / `NocY(core)` (a core's NoC
coordinates, which differ from its logical coordinates on a card). Everything that
changes per step is a runtime arg or a tensor, never a compile-time arg, so a step
with new positions or a new effective k reuses every compiled kernel.
"""
from __future__ import annotations

import contextlib
import contextvars
import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import torch

# Wormhole B0 (the emulator's default device)
DRAM_ALIGNMENT = 32
L1_ALIGNMENT = 16
# DRAM page alignment the descriptions bake in: Wormhole's unless a card says otherwise (Blackhole: 64)
_dram_alignment = contextvars.ContextVar("dram_alignment", default=DRAM_ALIGNMENT)


@contextlib.contextmanager
def dram_alignment(nbytes: int):
    """Descriptions built inside align DRAM pages to `nbytes` (the card's executor passes the card's,
    ttnn.get_dram_alignment())."""
    token = _dram_alignment.set(nbytes)
    try:
        yield
    finally:
        _dram_alignment.reset(token)
TILE = 32  # tiles are 32 x 32, stored as four 16 x 16 faces
FACE = 16


class DataFormat(IntEnum):
    """tt-metal's DataFormat values (tensix_types.h)."""
    Float32 = 0
    Float16_b = 5
    Int32 = 8
    UInt16 = 9
    UInt32 = 24


TORCH_FORMATS = {torch.float32: DataFormat.Float32, torch.bfloat16: DataFormat.Float16_b,
                 torch.int32: DataFormat.Int32, torch.uint16: DataFormat.UInt16, torch.uint32: DataFormat.UInt32}


def data_format(dtype: torch.dtype) -> DataFormat:
    if dtype not in TORCH_FORMATS:
        raise TypeError(f"dtype {dtype}: no tt-metal data format; expected one of {list(TORCH_FORMATS)}")
    return TORCH_FORMATS[dtype]


Core = tuple[int, int]  # logical (x, y)


@dataclass(frozen=True)
class CoreRange:
    """Inclusive rectangle of logical cores, like tt-metal's CoreRange."""
    start: Core
    end: Core

    def cores(self) -> list[Core]:
        return [(x, y) for y in range(self.start[1], self.end[1] + 1) for x in range(self.start[0], self.end[0] + 1)]


def cores_of(ranges: list[CoreRange]) -> list[Core]:
    return [c for r in ranges for c in r.cores()]


@dataclass(frozen=True)
class BufferAddress:
    """Runtime-arg placeholder: the DRAM bank address of tensor `name`."""
    name: str


@dataclass(frozen=True)
class NocX:
    core: Core


@dataclass(frozen=True)
class NocY:
    core: Core


RuntimeArg = int | BufferAddress | NocX | NocY


@dataclass
class Kernel:
    source: str  # path of the kernel's source file (an op's program.py names the files of its kernels/)
    role: str  # "reader" (NCRISC), "writer" (BRISC) or "compute" (TRISCs)
    core_ranges: list[CoreRange]
    compile_time_args: list[int] = field(default_factory=list)
    runtime_args: dict[Core, list[RuntimeArg]] = field(default_factory=dict)
    common_runtime_args: list[RuntimeArg] = field(default_factory=list)
    defines: dict[str, str] = field(default_factory=dict)
    fp32_dest_acc_en: bool = False  # compute only: fp32 dst (half the dst tiles)

    @property
    def path(self) -> Path:
        return Path(self.source)


@dataclass
class CircularBuffer:
    index: int
    core_ranges: list[CoreRange]
    num_pages: int
    page_size: int  # bytes
    data_format: DataFormat
    name: str = ""


@dataclass
class Semaphore:
    id: int
    core_ranges: list[CoreRange]
    initial_value: int = 0


@dataclass
class Tensor:
    """A DRAM tensor, interleaved page by page over the banks.

    layout "row_major": a page is one row of the last dim; "tile": a page is one
    32 x 32 tile (four 16 x 16 faces) of the last two dims.
    """
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    layout: str = "row_major"
    is_output: bool = False

    @property
    def page_size(self) -> int:
        elem = torch.empty((), dtype=self.dtype).element_size()
        return (TILE * TILE if self.layout == "tile" else self.shape[-1]) * elem

    @property
    def num_pages(self) -> int:
        n = 1
        for s in self.shape[:-1]:
            n *= s
        if self.layout == "tile":
            h, w = self.shape[-2], self.shape[-1]
            return n // h * -(-h // TILE) * -(-w // TILE)
        return n


@dataclass
class Program:
    name: str
    kernels: list[Kernel]
    circular_buffers: list[CircularBuffer]
    tensors: list[Tensor]
    semaphores: list[Semaphore] = field(default_factory=list)

    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name)


@dataclass
class RunResult:
    """What an executor's run(program, tensors) returns: the output tensors by name (torch on the
    emulator, ttnn on a card) and, on the emulator, per (kernel, core) NoC and DRAM byte counts."""
    outputs: dict
    stats: list[dict] = field(default_factory=list)

    def bytes_by_kernel(self, key: str = "dram_bytes_read") -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stats:
            out[s["kernel"]] = out.get(s["kernel"], 0) + s[key]
        return out

    def total(self, key: str) -> int:
        return sum(s[key] for s in self.stats)


def align(n: int, a: int) -> int:
    return -(-n // a) * a


def dram_align(n: int) -> int:
    """n bytes rounded up to the DRAM alignment: the size of an L1 slot a DRAM page is read into, so
    the next slot starts where a DRAM read may land ((l1 & 31) == (dram & 31) on Wormhole; the kernels
    use DRAM_ALIGNMENT, the same number on the card they are built for)."""
    return align(n, _dram_alignment.get())


def tensor_accessor_args(t: Tensor) -> list[int]:
    """Compile-time args of an interleaved DRAM tensor, as ttnn.TensorAccessorArgs(t) gives them:
    [args_config (IsDram), aligned page size]."""
    IS_DRAM = 1 << 1
    return [IS_DRAM, align(t.page_size, _dram_alignment.get())]


_CONSTANT = re.compile(r"constexpr\s+(?:uint32_t|int|uint16_t|auto)\s+(\w+)\s*=\s*(\d+)\s*;")


def read_arg_indices(header: Path) -> dict[str, int]:
    """`constexpr uint32_t NAME = N;` lines of a kernel's <op>_common.hpp: the host builds
    its arg vectors with the same names as the kernel reads them."""
    return {m.group(1): int(m.group(2)) for m in _CONSTANT.finditer(header.read_text())}


def arg_vector(indices: dict[str, int], prefix: str, **values) -> list[RuntimeArg]:
    """Builds an arg vector from name=value pairs, one per index named `prefix` + NAME in the
    kernel's header; a list value (TensorAccessorArgs) fills consecutive slots. Every slot
    must be filled exactly once, so a new index in the header cannot be forgotten here."""
    names = {k: v for k, v in indices.items() if k.startswith(prefix)}
    slots: dict[int, RuntimeArg] = {}
    for key, value in values.items():
        name = prefix + key.upper()
        if name not in names:
            raise KeyError(f"{name}: not an arg index of this kernel (have {sorted(names)})")
        for j, v in enumerate(value if isinstance(value, list) else [value]):
            if names[name] + j in slots:
                raise KeyError(f"{name}: slot {names[name] + j} filled twice")
            slots[names[name] + j] = v
    missing = sorted(set(names) - {prefix + k.upper() for k in values})
    if missing or sorted(slots) != list(range(len(slots))):
        raise KeyError(f"arg vector {prefix}*: missing {missing or 'slots'} (filled {sorted(slots)})")
    return [slots[i] for i in range(len(slots))]


# ---- host tilize / untilize: ttnn's 32 x 32 tiles of four 16 x 16 faces ----------------

def tilize(x: torch.Tensor) -> torch.Tensor:
    """[..., H, W] -> [..., tiles, 1024] in tile order (row of tiles major), faces 0..3 =
    (top-left, top-right, bottom-left, bottom-right), each face row-major. Pads with zeros."""
    *lead, h, w = x.shape
    hp, wp = align(h, TILE), align(w, TILE)
    x = torch.nn.functional.pad(x, (0, wp - w, 0, hp - h)) if (hp, wp) != (h, w) else x
    x = x.reshape(*lead, hp // TILE, 2, FACE, wp // TILE, 2, FACE)
    n = len(lead)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2, n + 5)  # [.., tr, tc, fr, fc, r, c]
    return x.reshape(*lead, (hp // TILE) * (wp // TILE), TILE * TILE)


def untilize(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of tilize: [..., tiles, 1024] -> [..., h, w]."""
    *lead, _, _ = t.shape
    hp, wp = align(h, TILE), align(w, TILE)
    n = len(lead)
    x = t.reshape(*lead, hp // TILE, wp // TILE, 2, 2, FACE, FACE)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3, n + 5)
    return x.reshape(*lead, hp, wp)[..., :h, :w]
