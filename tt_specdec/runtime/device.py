"""The card executor: runs a program description (tt_specdec.runtime.program) on a Tenstorrent
device through `ttnn.generic_op`, with `run(program, tensors)`: the same kernels, the same
description as the emulator executor (tt_specdec.runtime.emu).

    with device.aligned():
        prog = accept_prefix_program(B, k, V, torch.bfloat16)  # tt_specdec/ops/accept_prefix/program.py
    outputs = device.run(prog, {"logits": ..., "drafts": ..., "num_draft": ...}).outputs  # ttnn tensors

The description maps one to one: Kernel -> ttnn.KernelDescriptor (reader = NCRISC with
ReaderConfigDescriptor, writer = BRISC with WriterConfigDescriptor, compute = TRISCs with
ComputeConfigDescriptor), CircularBuffer -> CBDescriptor of one CBFormatDescriptor,
Semaphore -> SemaphoreDescriptor; runtime-arg placeholders resolve to the ttnn tensors'
buffer addresses and the device's NoC coordinates of logical cores. Outputs are
preallocated in DRAM and passed last, as generic_op requires.

ttnn is optional (`pip install 'tt_specdec[tt]'`, ttnn==0.81.1 on Python 3.10 / 3.12):
importing this module never imports ttnn; calling into the device path without
ttnn raises ImportError saying what needs it. What is verified without a card (the
conformance check, tools/conformance/): real ttnn accepts every description the ops build,
on a mock device, and the JIT reaches the kernel build. What only a card verifies:
that the kernels compute the right answer there (`pytest --device`).
"""
from __future__ import annotations

import os

from tt_specdec.runtime import program as P

TTNN_REQUIREMENT = "ttnn==0.81.1"
INSTALL_HINT = ("pip install 'tt_specdec[tt]' (ttnn==0.81.1, which has wheels for Python 3.10 and 3.12 only)")
# DataFormat of a description -> name of the ttnn DataType (tt-metal maps it back to the same DataFormat)
TTNN_DTYPES = {P.DataFormat.Float32: "float32", P.DataFormat.Float16_b: "bfloat16", P.DataFormat.Int32: "int32",
               P.DataFormat.UInt16: "uint16", P.DataFormat.UInt32: "uint32"}
ROLES = ("reader", "writer", "compute")


class DeviceDescriptionError(ValueError):
    """A description (or the tensors given to it) does not fit what ttnn will run."""


def require_ttnn():
    """The ttnn module, or ImportError naming what needs it and how to install it."""
    try:
        import ttnn
    except ImportError as e:
        raise ImportError(f"the Tenstorrent device path (ttnn tensors, backend='device', `pytest --device`, "
                          f"`tt-specdec bench --device`) needs ttnn: {INSTALL_HINT}") from e
    return ttnn


def ttnn_version() -> str | None:
    """ttnn's installed version, without importing it (import ttnn takes seconds); None if absent."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("ttnn")
    except PackageNotFoundError:
        return None


def mock_cluster() -> bool:
    """tt-metal runs on a mock cluster (TT_METAL_MOCK_CLUSTER_DESC_PATH names its descriptor): no card."""
    return bool(os.environ.get("TT_METAL_MOCK_CLUSTER_DESC_PATH"))


def card_present() -> bool:
    """A Tenstorrent card is visible to this machine (the kernel driver's device nodes exist).
    A mock cluster (TT_METAL_MOCK_CLUSTER_DESC_PATH) is not a card."""
    if mock_cluster():
        return False
    try:
        return any(os.scandir("/dev/tenstorrent"))
    except OSError:
        return False


def unavailable_reason() -> str | None:
    """Why the card path cannot run here, or None when it can."""
    if ttnn_version() is None:
        return f"ttnn is not installed ({INSTALL_HINT})"
    if not card_present():
        return "no Tenstorrent card found (/dev/tenstorrent is missing or empty)"
    return None



def is_ttnn_tensor(x) -> bool:
    """True for a ttnn.Tensor, decided without importing ttnn."""
    return type(x).__module__.split(".")[0] == "ttnn"


# the device's DRAM reserved for captured traces: tt-transformers' text demo opens its device with 30,000,000
# (models/tt_transformers/demo/simple_text_demo.py, device_params {"trace_region_size": 30000000,
# "num_command_queues": 1}); ttnn's default (ttnn.device.DEFAULT_TRACE_REGION_SIZE) is 0: no trace fits
TRACE_REGION_SIZE = 30_000_000
_device = None
_trace_region: dict[int, int] = {}  # id(device) -> the trace_region_size it was opened with here


def device(device_id: int = 0):
    """The process-wide ttnn device (opened on first use with TRACE_REGION_SIZE; closed at exit)."""
    global _device
    if _device is None:
        ttnn = require_ttnn()
        _device = ttnn.open_device(device_id=device_id, trace_region_size=TRACE_REGION_SIZE)
        _trace_region[id(_device)] = TRACE_REGION_SIZE
        import atexit
        atexit.register(close_device)
    return _device


def close_device() -> None:
    global _device
    if _device is not None:
        _trace_region.pop(id(_device), None)
        require_ttnn().close_device(_device)
        _device = None


def trace_unavailable_reason(dev) -> str | None:
    """Why a trace cannot be captured and replayed on `dev`, or None when it can; decided from the environment
    and how the device was opened, never by trying (on a mock device ttnn's execute_trace crashes the process)."""
    if mock_cluster():
        return ("a mock device (TT_METAL_MOCK_CLUSTER_DESC_PATH is set): ttnn 0.81.1 crashes in execute_trace "
                "there")
    # tt-metal takes the variable being set at all as slow dispatch (getenv(...) != nullptr throughout)
    if "TT_METAL_SLOW_DISPATCH_MODE" in os.environ:
        return "slow dispatch (TT_METAL_SLOW_DISPATCH_MODE is set): trace capture needs fast dispatch"
    size = _trace_region.get(id(dev))
    if size is None:  # ttnn 0.81.1 has no query for a device's trace region
        return ("the device's trace region is unknown (not opened by tt_specdec.runtime.device.device(), which "
                f"opens it with trace_region_size={TRACE_REGION_SIZE})")
    if size <= 0:
        return f"the device was opened with trace_region_size={size}: no room for a trace"
    return None


def aligned():
    """Descriptions built inside align DRAM pages as the card does (ttnn.get_dram_alignment():
    32 bytes on Wormhole, 64 on Blackhole), so their TensorAccessorArgs match ttnn's."""
    return P.dram_alignment(require_ttnn().get_dram_alignment())


# ---- description -> ttnn.ProgramDescriptor ----------------------------------------------

def ttnn_dtype(fmt: P.DataFormat):
    ttnn = require_ttnn()
    if fmt not in TTNN_DTYPES:
        raise DeviceDescriptionError(f"data format {fmt!r}: no ttnn DataType for it")
    return getattr(ttnn, TTNN_DTYPES[fmt])


def core_range_set(ranges: list[P.CoreRange]):
    ttnn = require_ttnn()
    return ttnn.CoreRangeSet([ttnn.CoreRange(ttnn.CoreCoord(*r.start), ttnn.CoreCoord(*r.end)) for r in ranges])


def _u32(value: int, what: str) -> int:
    value = int(value)
    if not -(1 << 31) <= value < (1 << 32):
        raise DeviceDescriptionError(f"{what}: {value} does not fit 32 bits")
    return value & 0xFFFFFFFF


def resolve_arg(arg: P.RuntimeArg, tensors: dict, dev, what: str) -> int:
    """A runtime arg of a description as the kernel will read it on `dev`."""
    if isinstance(arg, P.BufferAddress):
        if arg.name not in tensors:
            raise DeviceDescriptionError(f"{what}: BufferAddress({arg.name!r}) names no tensor of the program")
        return _u32(tensors[arg.name].buffer_address(), what)
    if isinstance(arg, (P.NocX, P.NocY)):
        ttnn = require_ttnn()
        noc = dev.worker_core_from_logical_core(ttnn.CoreCoord(*arg.core))
        return noc.x if isinstance(arg, P.NocX) else noc.y
    return _u32(arg, what)


def check_tensors(prog: P.Program, tensors: dict) -> None:
    """Every tensor of the description is given, on a device, with its shape, dtype and page size,
    and ttnn's TensorAccessorArgs for it equal the ones the description baked into the
    kernels' compile-time args (tt_specdec.runtime.program.tensor_accessor_args)."""
    ttnn = require_ttnn()
    for t in prog.tensors:
        if t.name not in tensors:
            raise DeviceDescriptionError(f"program {prog.name}: tensor {t.name!r} not given")
        x = tensors[t.name]
        want_layout = ttnn.TILE_LAYOUT if t.layout == "tile" else ttnn.ROW_MAJOR_LAYOUT
        want_dtype = ttnn_dtype(P.data_format(t.dtype))
        got = (tuple(x.shape), x.dtype, x.layout)
        if got != (tuple(t.shape), want_dtype, want_layout):
            raise DeviceDescriptionError(f"program {prog.name}: tensor {t.name!r} is {got}, expected "
                                         f"{(tuple(t.shape), want_dtype, want_layout)}")
        if not x.is_allocated() or x.storage_type() != ttnn.StorageType.DEVICE:
            raise DeviceDescriptionError(f"program {prog.name}: tensor {t.name!r} is not on a device")
        if x.buffer_page_size() != t.page_size:
            raise DeviceDescriptionError(f"program {prog.name}: tensor {t.name!r} has {x.buffer_page_size()}-byte "
                                         f"pages in ttnn, the kernels expect {t.page_size}")
        real = [int(a) for a in ttnn.TensorAccessorArgs(x).get_compile_time_args()]
        ours = [int(a) for a in P.tensor_accessor_args(t)]
        if real != ours:
            raise DeviceDescriptionError(f"program {prog.name}: tensor {t.name!r}: ttnn's TensorAccessorArgs are "
                                         f"{real}, the kernels were given {ours}")


def program_descriptor(prog: P.Program, tensors: dict, dev):
    """The ttnn.ProgramDescriptor of `prog` with its runtime args resolved for `tensors` on `dev`."""
    ttnn = require_ttnn()
    kernels = []
    for k in prog.kernels:
        if k.role not in ROLES:
            raise DeviceDescriptionError(f"kernel {k.source}: role {k.role!r}, expected one of {ROLES}")
        if not k.path.is_file():
            raise DeviceDescriptionError(f"kernel {k.source}: source {k.path} not found")
        cores = set(P.cores_of(k.core_ranges))
        outside = sorted(set(k.runtime_args) - cores)
        if outside:
            raise DeviceDescriptionError(f"kernel {k.source}: runtime args for cores {outside} outside its core ranges")
        rt = ttnn.RuntimeArgs()
        for (x, y), args in sorted(k.runtime_args.items()):
            rt[x][y] = [resolve_arg(a, tensors, dev, f"kernel {k.source} core {(x, y)} runtime arg {i}")
                        for i, a in enumerate(args)]
        if k.role == "reader":
            config = ttnn.ReaderConfigDescriptor()
        elif k.role == "writer":
            config = ttnn.WriterConfigDescriptor()
        else:
            config = ttnn.ComputeConfigDescriptor(fp32_dest_acc_en=k.fp32_dest_acc_en)
        # the JIT compiles '#include "<kernel_source>"' (tt_metal/jit_build/genfiles.cpp, kernel_includes.hpp) with
        # -I<the kernel's folder> (tt_metal/jit_build/build.cpp, settings->process_include_paths): a kernel's quoted
        # includes resolve from its own folder, so ../../kernels/tile_rows.hpp is found (as recorded on the mock
        # device by tools/conformance); ttnn's -I list names no other folder of ours
        kernels.append(ttnn.KernelDescriptor(
            kernel_source=str(k.path), source_type=ttnn.KernelDescriptor.SourceType.FILE_PATH,
            core_ranges=core_range_set(k.core_ranges),
            compile_time_args=[_u32(a, f"kernel {k.source} compile-time arg {i}")
                               for i, a in enumerate(k.compile_time_args)],
            defines=[(name, str(value)) for name, value in sorted(k.defines.items())],
            runtime_args=rt,
            common_runtime_args=[resolve_arg(a, tensors, dev, f"kernel {k.source} common runtime arg {i}")
                                 for i, a in enumerate(k.common_runtime_args)],
            config=config))
    cbs = [ttnn.CBDescriptor(
        total_size=cb.num_pages * cb.page_size, core_ranges=core_range_set(cb.core_ranges),
        format_descriptors=[ttnn.CBFormatDescriptor(buffer_index=cb.index, data_format=ttnn_dtype(cb.data_format),
                                                    page_size=cb.page_size)]) for cb in prog.circular_buffers]
    sems = [ttnn.SemaphoreDescriptor(id=s.id, core_ranges=core_range_set(s.core_ranges),
                                     initial_value=s.initial_value) for s in prog.semaphores]
    return ttnn.ProgramDescriptor(kernels=kernels, semaphores=sems, cbs=cbs)


def allocate(t: P.Tensor, dev):
    """An uninitialized DRAM tensor laid out as the description's tensor `t`."""
    ttnn = require_ttnn()
    layout = ttnn.TILE_LAYOUT if t.layout == "tile" else ttnn.ROW_MAJOR_LAYOUT
    return ttnn.empty(list(t.shape), ttnn_dtype(P.data_format(t.dtype)), layout, dev, ttnn.DRAM_MEMORY_CONFIG)


def run(prog: P.Program, inputs: dict, dev=None) -> P.RunResult:
    """Runs `prog` with `inputs` by name: ttnn device tensors, torch tensors (copied to the device as
    the description's tensor) or flat lists of ints (made on the device, without torch). Returns its
    outputs as ttnn tensors; an output given as input (a KV cache) is updated in place."""
    ttnn = require_ttnn()
    dev = device() if dev is None else dev
    with aligned():
        tensors = {name: to_device(x, prog.tensor(name), dev) for name, x in inputs.items()}
        for t in prog.tensors:
            if t.is_output and t.name not in tensors:
                tensors[t.name] = allocate(t, dev)
        check_tensors(prog, tensors)
        # generic_op: inputs first, preallocated outputs last
        order = [t for t in prog.tensors if not t.is_output] + [t for t in prog.tensors if t.is_output]
        ttnn.generic_op([tensors[t.name] for t in order], program_descriptor(prog, tensors, dev))
    return P.RunResult({t.name: tensors[t.name] for t in prog.tensors if t.is_output})


def to_device(x, t: P.Tensor, dev):
    """An input as the description's tensor `t` on `dev`: ttnn tensors pass through (reshaped to the
    description's shape when only leading 1s differ), torch tensors are copied, lists of ints made."""
    ttnn = require_ttnn()
    if is_ttnn_tensor(x):
        if tuple(x.shape) != tuple(t.shape):
            x = ttnn.reshape(x, list(t.shape))
        return x
    if isinstance(x, list):
        return ttnn.Tensor([int(v) for v in x], list(t.shape), ttnn_dtype(P.data_format(t.dtype)),
                           ttnn.ROW_MAJOR_LAYOUT, dev)
    layout = ttnn.TILE_LAYOUT if t.layout == "tile" else ttnn.ROW_MAJOR_LAYOUT
    return ttnn.from_torch(x.to(t.dtype).reshape(t.shape).contiguous(), dtype=ttnn_dtype(P.data_format(t.dtype)),
                           layout=layout, device=dev, memory_config=ttnn.DRAM_MEMORY_CONFIG)


def to_torch(x):
    """A ttnn tensor (an output of run()) copied to a torch tensor."""
    return require_ttnn().to_torch(x)


def torch_dtype(x):
    """The torch dtype of a bf16 / fp32 ttnn tensor, or None."""
    import torch
    ttnn = require_ttnn()
    return {ttnn.bfloat16: torch.bfloat16, ttnn.float32: torch.float32}.get(x.dtype)


def reshape(x, shape: list[int]):
    """A ttnn tensor viewed with another shape, on the device."""
    return require_ttnn().reshape(x, shape)


def from_torch_like(x, like):
    """A torch tensor copied to the device with the dtype and layout of the ttnn tensor `like`."""
    ttnn = require_ttnn()
    return ttnn.from_torch(x, dtype=like.dtype, layout=like.layout, device=device(),
                           memory_config=ttnn.DRAM_MEMORY_CONFIG)
