"""Runs a program description (tt_specdec.program) on a Tenstorrent device through
`ttnn.generic_op`: the same kernels, the same description as the emulator (tt_specdec.emu).

    prog = accept_prefix_program(B, k, V, torch.bfloat16)
    outputs = device.run(prog, {"logits": ..., "drafts": ..., "num_draft": ...})  # ttnn device tensors

The description maps one to one: Kernel -> ttnn.KernelDescriptor (reader = NCRISC with
ReaderConfigDescriptor, writer = BRISC with WriterConfigDescriptor, compute = TRISCs with
ComputeConfigDescriptor), CircularBuffer -> CBDescriptor of one CBFormatDescriptor,
Semaphore -> SemaphoreDescriptor; runtime-arg placeholders resolve to the ttnn tensors'
buffer addresses and the device's NoC coordinates of logical cores. Outputs are
preallocated in DRAM and passed last, as generic_op requires.

ttnn is optional (`pip install 'tt_specdec[tt]'`, ttnn==0.81.1 on Python 3.10 / 3.12):
importing this module never imports ttnn or torch; calling into the device path without
ttnn raises ImportError saying what needs it. What is verified without a card (the
conformance check, tools/conformance/): real ttnn accepts every description this module
builds, on a mock device, and the JIT reaches the kernel build. What only a card verifies:
that the kernels compute the right answer there (`pytest --device`).
"""
from __future__ import annotations

import functools
import os

from tt_specdec import program as P

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


def card_present() -> bool:
    """A Tenstorrent card is visible to this machine (the kernel driver's device nodes exist).
    A mock cluster (TT_METAL_MOCK_CLUSTER_DESC_PATH) is not a card."""
    if os.environ.get("TT_METAL_MOCK_CLUSTER_DESC_PATH"):
        return False
    try:
        return any(os.scandir("/dev/tenstorrent"))
    except OSError:
        return False


def is_ttnn_tensor(x) -> bool:
    """True for a ttnn.Tensor, decided without importing ttnn."""
    return type(x).__module__.split(".")[0] == "ttnn"


_device = None


def device(device_id: int = 0):
    """The process-wide ttnn device (opened on first use; closed at exit)."""
    global _device
    if _device is None:
        ttnn = require_ttnn()
        _device = ttnn.open_device(device_id=device_id)
        import atexit
        atexit.register(close_device)
    return _device


def close_device() -> None:
    global _device
    if _device is not None:
        require_ttnn().close_device(_device)
        _device = None


def card_alignment(fn):
    """Runs `fn` with descriptions aligning DRAM pages as the card does (ttnn.get_dram_alignment():
    32 bytes on Wormhole, 64 on Blackhole), so their TensorAccessorArgs match ttnn's."""
    @functools.wraps(fn)
    def with_card_alignment(*args, **kwargs):
        with P.dram_alignment(require_ttnn().get_dram_alignment()):
            return fn(*args, **kwargs)
    return with_card_alignment


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
    kernels' compile-time args (tt_specdec.program.tensor_accessor_args)."""
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


@card_alignment
def run(prog: P.Program, inputs: dict, dev=None) -> dict:
    """Runs `prog` with `inputs` (ttnn device tensors by name); returns its outputs (ttnn tensors)."""
    ttnn = require_ttnn()
    dev = device() if dev is None else dev
    tensors = dict(inputs)
    for t in prog.tensors:
        if t.is_output and t.name not in tensors:
            tensors[t.name] = allocate(t, dev)
    check_tensors(prog, tensors)
    # generic_op: inputs first, preallocated outputs last
    order = [t for t in prog.tensors if not t.is_output] + [t for t in prog.tensors if t.is_output]
    ttnn.generic_op([tensors[t.name] for t in order], program_descriptor(prog, tensors, dev))
    return {t.name: tensors[t.name] for t in prog.tensors if t.is_output}


# ---- torch <-> ttnn, for the ops' backend="device" --------------------------------------

def to_device(x, t: P.Tensor, dev):
    """A torch tensor as the description's tensor `t` on `dev` (ttnn tensors pass through, reshaped
    to the description's shape when only leading 1s differ)."""
    ttnn = require_ttnn()
    if is_ttnn_tensor(x):
        if tuple(x.shape) != tuple(t.shape):
            x = ttnn.reshape(x, list(t.shape))
        return x
    layout = ttnn.TILE_LAYOUT if t.layout == "tile" else ttnn.ROW_MAJOR_LAYOUT
    return ttnn.from_torch(x.to(t.dtype).reshape(t.shape).contiguous(), dtype=ttnn_dtype(P.data_format(t.dtype)),
                           layout=layout, device=dev, memory_config=ttnn.DRAM_MEMORY_CONFIG)


def _const(values: list[int], t: P.Tensor, dev):
    ttnn = require_ttnn()
    return ttnn.Tensor([int(v) for v in values], list(t.shape), ttnn_dtype(P.data_format(t.dtype)),
                       ttnn.ROW_MAJOR_LAYOUT, dev)


def _tensor(prog: P.Program, name: str) -> P.Tensor:
    return next(t for t in prog.tensors if t.name == name)


@card_alignment
def accept_prefix(target_logits, draft_tokens, *, draft_probs=None, num_draft=None, temperature: float = 0.0,
                  top_k: int = 0, top_p: float = 1.0, seed=None, dev=None):
    """tt_specdec.ops.accept_prefix on the card. torch inputs: validated like the torch path, copied
    to the device, results back as int64 torch tensors. ttnn inputs: results stay on the device
    (num_accepted [B], output_tokens [B, k+1], int32)."""
    from tt_specdec.ops import accept_prefix_program as AP

    ttnn = require_ttnn()
    dev = device() if dev is None else dev
    on_host = not is_ttnn_tensor(target_logits)
    B, rows, V = (int(s) for s in target_logits.shape)
    k = rows - 1
    if on_host:
        from tt_specdec.ops.accept_prefix import check_accept_args
        check_accept_args(target_logits, draft_tokens, draft_probs, num_draft, temperature, top_k, top_p, seed)
        logits_dtype = target_logits.dtype
    else:
        import torch
        logits_dtype = {ttnn.bfloat16: torch.bfloat16, ttnn.float32: torch.float32}.get(target_logits.dtype)
        if logits_dtype is None:
            raise TypeError(f"target_logits: got ttnn dtype {target_logits.dtype}, expected bfloat16 or float32")
    if temperature == 0.0:
        prog = AP.accept_prefix_program(B, k, V, logits_dtype)
    else:
        prog = AP.accept_prefix_sampling_program(B, k, V, logits_dtype, temperature, top_k=top_k, top_p=top_p,
                                                 has_draft_probs=draft_probs is not None)
    tensors = {"logits": to_device(target_logits, _tensor(prog, "logits"), dev),
               "drafts": to_device(draft_tokens, _tensor(prog, "drafts"), dev)}
    nd = _tensor(prog, "num_draft")
    tensors["num_draft"] = _const([k] * B, nd, dev) if num_draft is None else to_device(num_draft, nd, dev)
    if temperature > 0:
        if is_ttnn_tensor(seed):
            tensors["seeds"] = to_device(seed, _tensor(prog, "seeds"), dev)
        else:
            vals = seed.reshape(-1).tolist() if hasattr(seed, "reshape") else [seed]
            seeds = [int(s) & 0xFFFFFFFF for s in (vals * B if len(vals) == 1 else vals)]
            seeds = [s - (1 << 32) if s >= 1 << 31 else s for s in seeds]  # the uint32 bits as int32
            tensors["seeds"] = _const(seeds, _tensor(prog, "seeds"), dev)
        if draft_probs is not None:
            tensors["draft_probs"] = to_device(draft_probs, _tensor(prog, "draft_probs"), dev)
    out = run(prog, tensors, dev)
    n, tokens = out["num_accepted"], out["output_tokens"]
    if not on_host:
        return ttnn.reshape(n, [B]), tokens
    return ttnn.to_torch(n).reshape(B).long(), ttnn.to_torch(tokens).reshape(B, rows).long()


@card_alignment
def rollback_kv(pos, last, num_accepted, output_tokens, *, page_table=None, block_size=None, accepted_slots=None,
                k_cache=None, v_cache=None, dev=None):
    """tt_specdec.ops.rollback_kv on the card; torch inputs give a Rollback of torch tensors in the
    callers' dtypes, ttnn inputs a Rollback of int32 device tensors. With accepted_slots, the caches
    are compacted in place: ttnn caches on the card ([L, M, Hkv, S, D] or [M, Hkv, S, D], tiles, S a
    multiple of 32), torch caches (validated by the op) through a copy on the card written back."""
    from tt_specdec.ops.rollback_kv import Rollback
    from tt_specdec.ops import rollback_kv_program as RK

    ttnn = require_ttnn()
    dev = device() if dev is None else dev
    B = int(list(pos.shape)[-1])
    rows = int(list(output_tokens.shape)[-1])
    max_blocks = 0 if page_table is None else int(list(page_table.shape)[-1])
    if max_blocks and (block_size is None or block_size < 1):
        raise ValueError(f"block_size: got {block_size}, expected a positive int with a page_table")
    caches = None
    if accepted_slots is not None:
        if is_ttnn_tensor(k_cache):
            import torch
            dtype = {ttnn.bfloat16: torch.bfloat16, ttnn.float32: torch.float32}.get(k_cache.dtype)
            if dtype is None:
                raise TypeError(f"k_cache: got ttnn dtype {k_cache.dtype}, expected bfloat16 or float32")
            caches = RK.kernel_caches((tuple(int(d) for d in k_cache.shape), dtype))
        else:
            caches = RK.kernel_caches(k_cache)
    prog = RK.rollback_kv_program(B, rows - 1, max_blocks, block_size or 0, caches)
    names = {"pos": pos, "last": last, "num_accepted": num_accepted, "output_tokens": output_tokens}
    if max_blocks:
        names["page_table"] = page_table
    if caches is not None:
        names["accepted_slots"] = accepted_slots
        for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
            names[name] = cache if is_ttnn_tensor(cache) else RK.to_kernel_layout(cache, caches)
    out = run(prog, {name: to_device(x, _tensor(prog, name), dev) for name, x in names.items()}, dev)
    if caches is not None and not is_ttnn_tensor(k_cache):  # torch caches: the card's copy written back
        RK.from_kernel_layout(ttnn.to_torch(out["k_cache"]), k_cache)
        RK.from_kernel_layout(ttnn.to_torch(out["v_cache"]), v_cache)
    if is_ttnn_tensor(pos):
        res = [ttnn.reshape(out["new_pos"], [B]), ttnn.reshape(out["new_last"], [B])]
        return Rollback(*res, out.get("new_page_table"), out.get("freed"))
    host = {name: ttnn.to_torch(out[name]) for name in ("new_pos", "new_last", "new_page_table", "freed")
            if name in out}
    return Rollback(host["new_pos"].reshape(B).to(pos.dtype), host["new_last"].reshape(B).to(last.dtype),
                    None if page_table is None else host["new_page_table"].to(page_table.dtype),
                    None if page_table is None else host["freed"].to(page_table.dtype))


@card_alignment
def verify_attention(q, k_cache, v_cache, pos, *, page_table=None, scale=None, kv_splits=None, dev=None):
    """tt_specdec.ops.verify_attention on the card. torch inputs (validated by the op) are packed on
    the host as for the emulator and the result comes back as torch [B, T, Hq, D]. ttnn inputs: the
    caches stay where they are (contiguous [B, Hkv, S, D] with S a multiple of 32, or paged [blocks,
    Hkv, block, D], tiles; page_table [B, max_blocks] int32); q [B, T, Hq, D] and pos [B], a few KB,
    are packed on the host (a model running on the card would emit the packed q directly), and the
    result is a ttnn tensor [B, T, Hq, D] on the card. More than 32 // (Hq/Hkv) rows run as row blocks."""
    from tt_specdec.ops import verify_attention_program as VA

    ttnn = require_ttnn()
    dev = device() if dev is None else dev
    on_card = is_ttnn_tensor(q)
    q_host, pos_host = (ttnn.to_torch(q), ttnn.to_torch(pos).reshape(-1)) if on_card else (q, pos)
    Hkv = int(k_cache.shape[1])

    def run_rows(q_rows, k, v, p, *, page_table, scale):
        prog, inputs = VA.host_inputs(q_rows, k, v, p, page_table=page_table, scale=scale, kv_splits=kv_splits)
        out = run(prog, {name: to_device(x, _tensor(prog, name), dev) for name, x in inputs.items()}, dev)
        B, T, Hq, D = q_rows.shape
        return VA.unpack_output(ttnn.to_torch(out["out"]).to(q_rows.dtype), B, T, Hq, Hkv, D)

    result = VA.run_backend(q_host, k_cache, v_cache, pos_host, page_table=page_table, scale=scale, run_rows=run_rows)
    if not on_card:
        return result
    return ttnn.from_torch(result, dtype=q.dtype, layout=q.layout, device=dev, memory_config=ttnn.DRAM_MEMORY_CONFIG)


# ---- `tt-specdec info` and `tt-specdec bench --device` -------------------------------------

def unavailable_reason() -> str | None:
    """Why the card path cannot run here, or None when it can."""
    if ttnn_version() is None:
        return f"ttnn is not installed ({INSTALL_HINT})"
    if not card_present():
        return "no Tenstorrent card found (/dev/tenstorrent is missing or empty)"
    return None


def print_info() -> None:
    """The `tt-specdec info` lines of the card path: ttnn's version, the card, and which checks apply."""
    version = ttnn_version()
    card = card_present()
    print(f"  ttnn      {version or 'not installed'}"
          + ("" if version == "0.81.1" or version is None else " (tt_specdec is written against 0.81.1)"))
    print(f"  card      {'found (/dev/tenstorrent)' if card else 'none found (/dev/tenstorrent is missing or empty)'}")
    print("checks:")
    print("  emulator     the kernels run on the host emulator in the test suite (pytest tests/emu)")
    print("  conformance  real ttnn 0.81.1 accepts every program description on a mock device and reaches the "
          "kernel build;\n               dataflow kernels pass clang-19 against its headers; compute API calls match "
          "its declarations\n               (pytest tests/conformance, or tools/conformance/run.sh: needs apt-get, "
          "Python 3.12 or 3.10)")
    if card and version:
        print("  card         applies: pytest --device (op property tests through ttnn.generic_op), "
              "tt-specdec bench --device")
    else:
        print(f"  card         does not apply here: {unavailable_reason()}; pytest --device and "
              "tt-specdec bench --device skip")


def bench_cli(args) -> int:
    """`tt-specdec bench --device`: per k, the greedy accept_prefix and rollback_kv kernels on the card
    (device-resident ttnn tensors, ttnn.generic_op) against the torch ops on the same inputs; every
    result is compared with the torch one, and a mismatch fails the run."""
    reason = unavailable_reason()
    if reason:
        print(f"tt-specdec bench --device: skipped: {reason}")
        return 0
    import time

    import torch

    from tt_specdec import ops

    ttnn = require_ttnn()
    dev = device()
    B, V = 1, 49152  # one sequence, SmolLM2's vocabulary
    ks = [k for k in args.k if isinstance(k, int) and k > 0] or [4]
    repeats = max(3, args.repeats * 10)
    print(f"accept_prefix (greedy, bf16 logits [B={B}, k+1, V={V}]) and rollback_kv, ms per call, "
          f"median of {repeats}")
    print(f"{'k':>3} {'torch accept':>13} {'card accept':>12} {'torch rollback':>15} {'card rollback':>14}")
    g = torch.Generator().manual_seed(args.seed)

    def timed(fn):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = fn()
            ttnn.synchronize_device(dev)
            times.append(time.perf_counter() - t0)
        return result, sorted(times)[len(times) // 2] * 1e3

    def on_card(x, dtype):
        return ttnn.from_torch(x, dtype=dtype, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)

    for k in ks:
        logits = (torch.randn(B, k + 1, V, generator=g) * 3).to(torch.bfloat16)
        drafts = logits.argmax(-1)[:, :k].clone()
        t_logits, t_drafts = on_card(logits, ttnn.bfloat16), on_card(drafts.to(torch.int32), ttnn.int32)
        (n, out), torch_ms = timed(lambda: ops.accept_prefix(logits, drafts))
        (t_n, t_out), card_ms = timed(lambda: ops.accept_prefix(t_logits, t_drafts))
        if not (torch.equal(ttnn.to_torch(t_n).long().view(-1), n) and torch.equal(ttnn.to_torch(t_out).long(), out)):
            print(f"tt-specdec bench --device: accept_prefix k={k}: the card's result differs from torch's")
            return 1
        pos, last = torch.tensor([100] * B), torch.tensor([7] * B)
        row = lambda x: on_card(x.to(torch.int32).view(1, B), ttnn.int32)  # noqa: E731
        want, torch_rb = timed(lambda: ops.rollback_kv(pos, last, n, out))
        args_card = (row(pos), row(last), row(n), on_card(out.to(torch.int32), ttnn.int32))
        got, card_rb = timed(lambda: ops.rollback_kv(*args_card))
        if not torch.equal(ttnn.to_torch(got.pos).long().view(-1), want.pos):
            print(f"tt-specdec bench --device: rollback_kv k={k}: the card's result differs from torch's")
            return 1
        print(f"{k:>3} {torch_ms:>13.3f} {card_ms:>12.3f} {torch_rb:>15.3f} {card_rb:>14.3f}")
    return 0
