"""Conformance of tt_specdec's kernels and program descriptions with the real ttnn 0.81.1.

No Tenstorrent card and no RISC-V kernel compiler exist here, so this checks what the real
ttnn wheel allows, and no more:

1. descriptions: every op's program description (tt_specdec/ops/<op>/program.py), at several
   shapes, converted by tt_specdec/runtime/device.py and given to the real `ttnn.generic_op` on a
   mock device (a one-chip Wormhole n150 cluster descriptor of our own). It must be
   accepted, and tt-metal's JIT must reach the kernel build: a stand-in compiler
   (standin_gxx.py) records every command line, and each kernel of the description must
   appear there with its role (-DCOMPILE_FOR_NCRISC / BRISC / TRISC) and exactly the
   compile-time args the description gave it.
2. dataflow: every recorded reader / writer kernel build is compiled for real with clang-19
   (`--target=riscv32-unknown-elf -fsyntax-only`, the recorded flags minus the SFPI-only
   ones) against the wheel's headers, with Debian's riscv64 libstdc++ and picolibc headers.
3. compute: compute kernels cannot be compiled here (they need sfpi.h, which ships only
   with the SFPI compiler); every function our compute kernels call that the real
   api/compute headers declare is checked for arity against them, every compute-API name
   the emulator declares (csrc/include/api/compute) must exist in the real headers with
   the same parameter types, and a call to a name neither the real API nor the kernel
   itself defines fails.

Run it with tools/conformance/run.sh (sets up .venv-tt: Python 3.12, ttnn, numpy, no torch).
Options: --kernel ROLE:PATH adds a one-kernel description (the broken-kernel fixtures of
tests/conformance/broken/ use it), --description FILE adds the programs() of a Python file,
--only-extra checks just those. Exit status 0 when every check passed; the last lines
print the counts.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OPS = REPO / "tt_specdec" / "ops"  # each op's kernels in OPS/<op>/kernels/
TTNN_VERSION = "0.81.1"
STANDIN_MARKER = "tt_specdec conformance stand-in"

CLUSTER_DESCRIPTOR = """\
# One Wormhole n150 (one chip, PCIe-attached), in tt-umd's cluster-descriptor format.
# Written by tt_specdec's conformance check (tools/conformance/check.py) for a mock device.
arch:
  0: wormhole_b0
chips:
  0: [0, 0, 0, 0]
ethernet_connections: []
chips_with_mmio:
  - 0: 0
harvesting:
  0:
    noc_translation: true
    harvest_mask: 64
    dram_harvesting_mask: 0
    eth_harvesting_mask: 0
    pcie_harvesting_mask: 0
chip_to_boardtype:
  0: n150
boards:
  -
    - board_id: 0x100014111111111  # the board type is encoded in the id: 0x14 = n150
    - board_type: n150
    - chips:
        - 0
"""

# One Blackhole p150 (one chip), the other single-chip card; `--arch blackhole_p150`.
CLUSTER_DESCRIPTOR_P150 = """\
# One Blackhole p150 (one chip, PCIe-attached), in tt-umd's cluster-descriptor format.
# Written by tt_specdec's conformance check (tools/conformance/check.py) for a mock device.
arch:
  0: blackhole
chips:
  {}
ethernet_connections: []
chips_with_mmio:
  - 0: 0
harvesting:
  0:
    noc_translation: true
    harvest_mask: 0
    dram_harvesting_mask: 0
    eth_harvesting_mask: 288
    pcie_harvesting_mask: 2
    l2cpu_harvesting_mask: 0
boards:
  -
    - board_id: 0x41220000001  # the board type is encoded in the id: 0x41 = p150
    - board_type: p150
    - chips:
        - 0
"""
CLUSTERS = {"wormhole_n150": CLUSTER_DESCRIPTOR, "blackhole_p150": CLUSTER_DESCRIPTOR_P150}

ROLE_DEFINE = {"reader": "-DCOMPILE_FOR_NCRISC", "writer": "-DCOMPILE_FOR_BRISC", "compute": "-DCOMPILE_FOR_TRISC"}

# Shapes per description builder (tt_specdec/ops/<op>/program.py: every function named *_program).
# A builder without an entry fails the check: add its shapes here when an op gets kernels.
BF16, FP32 = "bfloat16", "float32"
CASES: dict[str, list[dict]] = {
    "accept_prefix_program": [
        dict(B=1, k=1, V=32, logits_dtype=BF16),
        dict(B=4, k=4, V=2049, logits_dtype=BF16),
        dict(B=8, k=7, V=49152, logits_dtype=FP32),
        dict(B=3, k=15, V=6001, logits_dtype=FP32, max_cores=3),
    ],
    "accept_prefix_sampling_program": [
        dict(B=1, k=1, V=100, logits_dtype=BF16, temperature=0.7, has_draft_probs=False),
        dict(B=4, k=4, V=4103, logits_dtype=FP32, temperature=1.0, has_draft_probs=True),
        dict(B=8, k=7, V=49152, logits_dtype=BF16, temperature=0.3, has_draft_probs=True),
    ],
    "accept_tree_program": [  # greedy token trees: T node rows, [B, T] tokens and parents
        dict(B=1, T=1, V=32, logits_dtype=BF16),  # the root alone
        dict(B=4, T=5, V=2049, logits_dtype=BF16),
        dict(B=8, T=32, V=49152, logits_dtype=FP32),
        dict(B=3, T=16, V=6001, logits_dtype=FP32, max_cores=3),
    ],
    "accept_tree_sampling_program": [  # sampled token trees: the chain's rounds and reader, r kept in L1
        dict(B=1, T=1, V=100, logits_dtype=BF16, temperature=0.7, has_draft_probs=False),  # the root alone
        dict(B=4, T=5, V=4103, logits_dtype=FP32, temperature=1.0, has_draft_probs=True, top_k=50, top_p=0.9),
        dict(B=2, T=16, V=49152, logits_dtype=BF16, temperature=0.3, has_draft_probs=True),
        dict(B=3, T=32, V=6001, logits_dtype=FP32, temperature=1.5, has_draft_probs=False, max_cores=3),
    ],
    "verify_attention_program": [
        dict(B=1, T=1, Hq=1, Hkv=1, S=32, D=32, dtype=BF16, scale=0.17677669529663687),
        dict(B=2, T=5, Hq=9, Hkv=3, S=256, D=64, dtype=BF16, scale=0.125),
        dict(B=4, T=8, Hq=8, Hkv=2, S=1000, D=128, dtype=FP32, scale=0.08838834764831845),
        dict(B=2, T=4, Hq=8, Hkv=2, S=512, D=64, dtype=BF16, scale=0.125, num_blocks=32, block_size=64,
             max_blocks=8),  # paged KV cache
        dict(B=1, T=5, Hq=8, Hkv=2, S=2048, D=64, dtype=BF16, scale=0.125, kv_splits=4),  # chunks over 4 cores
        dict(B=8, T=1, Hq=8, Hkv=8, S=128, D=64, dtype=BF16, scale=0.125),  # plain decode, no GQA
        dict(B=2, T=4, Hq=16, Hkv=2, S=1024, D=128, dtype=FP32, scale=0.08838834764831845, num_blocks=64,
             block_size=32, max_blocks=32, kv_splits=2),  # paged, GQA 8 (32 packed rows), 2 splits
        # token trees: the row bitmasks [B, T] read into a DRAM-aligned CB
        dict(B=2, T=5, Hq=9, Hkv=3, S=256, D=64, dtype=BF16, scale=0.125, tree=True),
        dict(B=1, T=32, Hq=3, Hkv=3, S=2048, D=64, dtype=BF16, scale=0.125, kv_splits=4, tree=True),
        dict(B=4, T=16, Hq=8, Hkv=4, S=512, D=128, dtype=FP32, scale=0.08838834764831845, num_blocks=64,
             block_size=64, max_blocks=8, kv_splits=2, tree=True),  # paged, GQA 2 (32 packed rows), 2 splits
    ],
    "kv_write_program": [
        dict(B=1, T=1, Hkv=1, D=32, dtype=BF16, S=32),
        dict(B=8, T=5, Hkv=3, D=64, dtype=BF16, num_blocks=64, block_size=64, max_blocks=8),  # SmolLM2, paged
        dict(B=8, T=5, Hkv=8, D=128, dtype=BF16, num_blocks=32, block_size=64, max_blocks=4),  # Llama 3, 32 cores
        dict(B=2, T=32, Hkv=2, D=64, dtype=FP32, S=256),
    ],
    "rollback_kv_program": [
        dict(B=1, k=1),
        dict(B=8, k=7),
        dict(B=4, k=4, max_blocks=16, block_size=32),
        dict(B=32, k=15, max_blocks=64, block_size=16),
        # with the compaction copy: caches contiguous (one layer / stacked) and paged
        dict(B=1, k=4, caches=dict(type="KVCaches", layers=1, matrices=1, hkv=1, slot_rows=64, head_dim=32,
                                   dtype=BF16, stacked=False)),
        dict(B=8, k=7, caches=dict(type="KVCaches", layers=30, matrices=8, hkv=3, slot_rows=256, head_dim=64,
                                   dtype=BF16)),
        dict(B=4, k=15, max_blocks=8, block_size=64,
             caches=dict(type="KVCaches", layers=2, matrices=32, hkv=8, slot_rows=64, head_dim=128, dtype=FP32)),
    ],
}


class Report:
    def __init__(self):
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.counts = {"descriptions": 0, "descriptions_accepted": 0, "dataflow_kernels": set(),
                       "dataflow_builds": 0, "compute_kernels": set(), "compute_calls": 0,
                       "emu_compute_declarations": 0}

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        print(f"FAIL: {msg}", flush=True)

    def note(self, msg: str) -> None:
        self.notes.append(msg)
        print(f"note: {msg}", flush=True)


# ---- environment: mock device and stand-in compiler ------------------------------------------

def ttnn_package_dir() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("ttnn")
    if spec is None or spec.origin is None:
        raise SystemExit("conformance: ttnn is not installed in this Python; run tools/conformance/run.sh")
    return Path(spec.origin).parent


def install_standin(ttnn_dir: Path) -> Path:
    """riscv-tt-elf-g++ where ttnn's JIT looks for it: standin_gxx.c built with the host C compiler (a Python
    start per call made the JIT's ~10 calls per program most of a run), or, without a C compiler (or with
    TT_SPECDEC_STANDIN=python), a wrapper running standin_gxx.py. Both behave the same."""
    path = ttnn_dir / "runtime" / "sfpi" / "compiler" / "bin" / "riscv-tt-elf-g++"
    if path.exists() and STANDIN_MARKER.encode() not in path.read_bytes():
        raise SystemExit(f"conformance: {path} is a real compiler, not our stand-in; this check needs its own venv")
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get("TT_SPECDEC_STANDIN") != "python" and build_c_standin(path):
        return path
    text = (f"#!/bin/sh\n# {STANDIN_MARKER}: records JIT command lines, compiles nothing\n"
            f"exec \"{sys.executable}\" \"{HERE / 'standin_gxx.py'}\" \"$@\"\n")
    if not path.exists() or path.read_bytes() != text.encode():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return path


def build_c_standin(path: Path) -> bool:
    """standin_gxx.c compiled to `path` (kept while the source is unchanged); False without a C compiler."""
    import hashlib
    source = HERE / "standin_gxx.c"
    stamp = path.with_name(path.name + ".source-sha256")
    digest = hashlib.sha256(source.read_bytes() + STANDIN_MARKER.encode()).hexdigest()
    if path.exists() and stamp.exists() and stamp.read_text() == digest:
        return True
    cc = next((c for c in ("cc", "gcc", "clang-19", "clang") if shutil.which(c)), None)
    if cc is None:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    r = subprocess.run([cc, "-O2", "-o", str(tmp), str(source), f'-DSTANDIN_MARKER="{STANDIN_MARKER}"'],
                       capture_output=True, text=True)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        print(f"note: {cc} could not build {source.name} ({r.stderr.strip()[:200]}); using the Python stand-in",
              flush=True)
        return False
    os.replace(tmp, path)
    stamp.write_text(digest)
    return True


def read_log(log: Path, start: int = 0) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()[start:] if line.strip()]


# ---- descriptions ------------------------------------------------------------------------------

def case_args(kw: dict, mod, torch) -> dict:
    """A CASES entry as builder arguments: values of keys ending in dtype name a torch dtype; a dict
    with a "type" builds that class of the builder's module (e.g. rollback_kv.program.KVCaches)."""
    def value(key, v):
        if isinstance(v, dict):
            return getattr(mod, v["type"])(**{k: value(k, x) for k, x in v.items() if k != "type"})
        return getattr(torch, v) if key.endswith("dtype") else v
    return {k: value(k, v) for k, v in kw.items()}


def builders(report: Report) -> list[tuple[str, object]]:
    """(label, Program) for every builder and shape in CASES."""
    import torch
    from torchless import builder_modules

    out = []
    found = set()
    for op, mod in builder_modules(REPO).items():
        for name in sorted(dir(mod)):
            fn = getattr(mod, name)
            if not (name.endswith("_program") and callable(fn) and getattr(fn, "__module__", "") == mod.__name__):
                continue
            found.add(name)
            if name not in CASES:
                report.fail(f"description builder tt_specdec.ops.{op}.program.{name} has no shapes in "
                            f"tools/conformance/check.py CASES: add some, so its kernels are checked")
                continue
            for kw in CASES[name]:
                args = case_args(kw, mod, torch)
                label = f"{name}({', '.join(f'{k}={v}' for k, v in kw.items())})"
                try:
                    out.append((label, fn(**args)))
                except Exception as e:  # noqa: BLE001
                    report.fail(f"description {label}: the builder raised {type(e).__name__}: {e}")
    for name in sorted(set(CASES) - found):  # a note: an op's builder may land after its shapes here
        report.note(f"CASES names builder {name}, which no tt_specdec/ops/<op>/program.py defines (yet): not checked")
    return out


def extra_programs(kernels: list[str], description_files: list[str], report: Report) -> list[tuple[str, object]]:
    """One-kernel descriptions for --kernel ROLE:PATH, and programs() of --description files."""
    import torch
    from tt_specdec.runtime import program as P

    out = []
    for spec in kernels:
        role, _, path = spec.partition(":")
        if role not in ROLE_DEFINE or not Path(path).is_file():
            raise SystemExit(f"--kernel {spec}: expected ROLE:PATH with ROLE in {list(ROLE_DEFINE)} and an existing file")
        k = P.Kernel(str(Path(path).resolve()), role, [P.CoreRange((0, 0), (0, 0))], [], {(0, 0): []})
        # generic_op wants at least one (output) tensor
        out.append((f"kernel {Path(path).name} ({role})",
                    P.Program(Path(path).stem, [k], [], [P.Tensor("in", (1, 8), torch.int32),
                                                         P.Tensor("out", (1, 8), torch.int32, is_output=True)])))
    for f in description_files:
        ns: dict = {"__file__": f}
        exec(compile(Path(f).read_text(), f, "exec"), ns)
        for label, prog in ns["programs"]():
            out.append((f"{label} ({Path(f).name})", prog))
    return out


def short_error(e: BaseException) -> str:
    text = str(e)
    # tt-metal exceptions carry a backtrace after the message
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith((" --- ", "backtrace"))]
    return " | ".join(lines[:6])


def find_builds(k, entries: list[dict]) -> list[dict]:
    """Recorded compile command lines of kernel `k` with exactly its compile-time args."""
    cta = ",".join(str(int(a) & 0xFFFFFFFF) for a in k.compile_time_args)

    def args_of(argv):
        vals = [a.split("=", 1)[1] for a in argv if a.startswith("-DKERNEL_COMPILE_TIME_ARGS=")]
        return vals[0] if vals else ""

    return [e for e in entries if "-c" in e["argv"]
            and any(a.startswith(f'-DFULL_KERNEL_NAME="{k.path.stem}/') for a in e["argv"])
            and args_of(e["argv"]) == cta]


def check_descriptions(progs, dev, log: Path, report: Report) -> list[tuple[str, object]]:
    from tt_specdec.runtime import device as D

    accepted = []
    for label, prog in progs:
        report.counts["descriptions"] += 1
        names = ", ".join(k.path.name for k in prog.kernels)
        inputs = {t.name: D.allocate(t, dev) for t in prog.tensors if not t.is_output}
        try:
            D.run(prog, inputs, dev)
        except Exception as e:  # noqa: BLE001
            report.fail(f"description {label} [kernels {names}]: rejected: {type(e).__name__}: {short_error(e)}")
            continue
        entries = read_log(log)
        ok = True
        for k in prog.kernels:
            cta = ",".join(str(int(a) & 0xFFFFFFFF) for a in k.compile_time_args)
            builds = find_builds(k, entries)
            if not builds:
                report.fail(f"description {label}: kernel {k.path.name} never reached the kernel build with its "
                            f"compile-time args [{cta}] (no recorded compiler command line names it)")
                ok = False
            elif not all(any(a == ROLE_DEFINE[k.role] or a.startswith(ROLE_DEFINE[k.role] + "=") for a in e["argv"])
                         for e in builds):
                report.fail(f"description {label}: kernel {k.path.name} ({k.role}) was built without "
                            f"{ROLE_DEFINE[k.role]}")
                ok = False
        if ok:
            report.counts["descriptions_accepted"] += 1
            accepted.append((label, prog))
            print(f"ok: description {label}: accepted, kernels built: {names}", flush=True)
    return accepted


def check_op_wrappers(dev, report: Report) -> None:
    """The public ops with ttnn tensors (dispatched to their kernels on the card executor, the
    process-wide device `dev`): inputs made with ttnn.Tensor / ttnn.empty, results must come back as
    device tensors of the documented shapes. The mock executes nothing, so values are not checked
    (that takes a card)."""
    import ttnn
    from tt_specdec.ops.accept_prefix import accept_prefix
    from tt_specdec.ops.rollback_kv import rollback_kv
    from tt_specdec.runtime import device as D

    B, k, V = 2, 3, 2049
    rm = ttnn.ROW_MAJOR_LAYOUT
    logits = ttnn.empty([B, k + 1, V], ttnn.bfloat16, rm, dev, ttnn.DRAM_MEMORY_CONFIG)
    drafts = ttnn.Tensor([1] * (B * k), [B, k], ttnn.int32, rm, dev)
    cases = {
        "accept_prefix greedy": lambda: accept_prefix(logits, drafts),
        "accept_prefix sampling": lambda: accept_prefix(logits, drafts, temperature=0.8, seed=5),
    }
    for name, run in cases.items():
        try:
            n, out = run()
            assert D.is_ttnn_tensor(n) and list(n.shape) == [B], f"num_accepted {list(n.shape)}"
            assert D.is_ttnn_tensor(out) and list(out.shape) == [B, k + 1], f"output_tokens {list(out.shape)}"
            print(f"ok: ops.{name} with ttnn tensors", flush=True)
        except Exception as e:  # noqa: BLE001
            report.fail(f"ops.{name} with ttnn tensors: {type(e).__name__}: {short_error(e)}")
    row = ttnn.Tensor([1] * B, [1, B], ttnn.int32, rm, dev)
    out = ttnn.Tensor([1] * (B * (k + 1)), [B, k + 1], ttnn.int32, rm, dev)
    table = ttnn.Tensor([0] * (B * 8), [B, 8], ttnn.int32, rm, dev)
    slots = ttnn.Tensor([0] * (B * (k + 1)), [B, k + 1], ttnn.int32, rm, dev)

    def tiles(shape, dtype=ttnn.bfloat16):
        return ttnn.empty(shape, dtype, ttnn.TILE_LAYOUT, dev, ttnn.DRAM_MEMORY_CONFIG)

    def rollback():
        r = rollback_kv(row, row, row, out, page_table=table, block_size=16)
        assert list(r.pos.shape) == [B] and list(r.page_table.shape) == [B, 8], (r.pos.shape, r.page_table.shape)

    def rollback_compaction(paged: bool):
        shape = [2, 16, 2, 64, 64] if paged else [2, B, 2, 128, 64]  # [L, blocks or B, Hkv, block or S, D]
        kc, vc = tiles(shape), tiles(shape)
        r = rollback_kv(row, row, row, out, page_table=table if paged else None, block_size=64 if paged else None,
                        accepted_slots=slots, k_cache=kc, v_cache=vc)
        assert list(r.pos.shape) == [B], r.pos.shape

    def tree_accept():
        from tt_specdec.ops.accept_prefix import accept_tree
        T = k + 1  # a chain-shaped tree of T nodes
        tree_logits = ttnn.empty([B, T, V], ttnn.bfloat16, rm, dev, ttnn.DRAM_MEMORY_CONFIG)
        tokens = ttnn.Tensor([1] * (B * T), [B, T], ttnn.int32, rm, dev)
        parents = ttnn.Tensor(list(range(-1, T - 1)) * B, [B, T], ttnn.int32, rm, dev)
        n, out, tree_slots = accept_tree(tree_logits, tokens, parents)
        assert all(D.is_ttnn_tensor(x) for x in (n, out, tree_slots)), (type(n), type(out), type(tree_slots))
        assert list(n.shape) == [B] and list(out.shape) == list(tree_slots.shape) == [B, T], (n.shape, out.shape)

    def tree_accept_sampled():
        from tt_specdec.ops.accept_prefix import accept_tree
        T = k + 1
        tree_logits = ttnn.empty([B, T, V], ttnn.bfloat16, rm, dev, ttnn.DRAM_MEMORY_CONFIG)
        tokens = ttnn.Tensor(list(range(T)) * B, [B, T], ttnn.int32, rm, dev)
        parents = ttnn.Tensor([-1, 0, 0, 1][:T] * B, [B, T], ttnn.int32, rm, dev)  # two siblings under the root
        n, out, tree_slots = accept_tree(tree_logits, tokens, parents, temperature=0.8, top_p=0.9, seed=5)
        assert all(D.is_ttnn_tensor(x) for x in (n, out, tree_slots)), (type(n), type(out), type(tree_slots))
        assert list(n.shape) == [B] and list(out.shape) == list(tree_slots.shape) == [B, T], (n.shape, out.shape)

    def kv_write_paged():
        from tt_specdec.ops.kv_write import kv_write
        kc, vc = tiles([16, 2, 64, 64]), tiles([16, 2, 64, 64])  # [blocks, Hkv, block, D]
        kv_write(tiles([B, 5, 2, 64]), tiles([B, 5, 2, 64]), kc, vc, row, page_table=table)

    wrappers = {"accept_tree greedy": tree_accept, "accept_tree sampled": tree_accept_sampled, "rollback_kv": rollback,
                "rollback_kv compaction (contiguous)": lambda: rollback_compaction(False),
                "rollback_kv compaction (paged)": lambda: rollback_compaction(True), "kv_write (paged)": kv_write_paged}
    for name, run in wrappers.items():
        try:
            run()
            print(f"ok: ops.{name} with ttnn tensors", flush=True)
        except Exception as e:  # noqa: BLE001
            report.fail(f"ops.{name} with ttnn tensors: {type(e).__name__}: {short_error(e)}")
    report.note("ops.verify_attention with ttnn tensors packs q [B, T, Hq, D] on the host with torch, which this "
                "environment lacks: its descriptions are checked above (verify_attention_program), its host packing "
                "by the emulator tests")


# ---- dataflow: clang-19 syntax check with the recorded flags -----------------------------------

RISCV_HEADERS = ["/usr/riscv64-linux-gnu/include/c++/12", "/usr/riscv64-linux-gnu/include/c++/12/riscv64-linux-gnu"]
PICOLIBC = "/usr/lib/picolibc/riscv64-unknown-elf/include"
GLIBC_RISCV = "/usr/riscv64-linux-gnu/include"
DROP_WITH_VALUE = {"-o", "-MF", "-MT", "-MQ"}
DROP_PREFIXES = ("-ftt-", "-flto", "-mcpu=tt-", "--param", "-Wl,")
DROP_EXACT = {"-c", "-MMD", "-MD", "-MP", "-fno-tree-loop-distribute-patterns", "-Winvalid-pch", "-g"}


def clang_command(argv: list[str], stubs: Path, ttnn_dir: Path | None = None) -> list[str]:
    """The recorded JIT command as a clang-19 syntax check. The JIT's warning flags stay (-Wall -Werror
    and its -Wno-* list, tt_metal/jit_build/build.cpp): the kernel's own code is held to them, while the
    wheel's headers (-I under the ttnn package) become -isystem, since clang warns where the SFPI gcc
    does not. gcc-only -Wno-* options and the SFPI-only attributes are ignored."""
    out, skip = [], False
    wheel = str(ttnn_dir.resolve()) if ttnn_dir is not None else None
    for a in argv:
        if skip:
            skip = False
            continue
        if a in DROP_WITH_VALUE:
            skip = True
            continue
        if a in DROP_EXACT or a.startswith(DROP_PREFIXES):
            continue
        if wheel and a.startswith("-I") and len(a) > 2 and str(Path(a[2:]).resolve()).startswith(wheel):
            out += ["-isystem", a[2:]]
            continue
        out.append(a)
    system = []
    for d in RISCV_HEADERS + [str(stubs), PICOLIBC, GLIBC_RISCV]:
        system += ["-isystem", d]
    return ["clang-19", "--target=riscv32-unknown-elf", "-march=rv32im_zicsr", "-mabi=ilp32", "-fsyntax-only",
            "-nostdinc++", *system, *out, "-Wno-unknown-warning-option",
            "-Wno-unknown-attributes"]  # tt_l1_ptr is __attribute__((rvtt_l1_ptr)), known to the SFPI gcc only


def kernel_builds(prog, entries: list[dict], roles: tuple[str, ...]) -> list[tuple[object, dict]]:
    out = []
    for k in prog.kernels:
        if k.role in roles:
            out += [(k, e) for e in find_builds(k, entries)[:1]]
    return out


def check_dataflow(accepted, log: Path, work: Path, report: Report, jobs: int, ttnn_dir: Path | None = None) -> None:
    for d in RISCV_HEADERS + [PICOLIBC]:
        if not Path(d).is_dir():
            report.fail(f"dataflow syntax check: {d} missing (apt-get install libstdc++-12-dev-riscv64-cross "
                        "libc6-dev-riscv64-cross linux-libc-dev-riscv64-cross picolibc-riscv64-unknown-elf)")
            return
    if shutil.which("clang-19") is None:
        report.fail("dataflow syntax check: clang-19 not found (apt-get install clang-19)")
        return
    stubs = work / "stubs"
    (stubs / "gnu").mkdir(parents=True, exist_ok=True)
    (stubs / "gnu" / "stubs-ilp32.h").write_text("/* glibc's ilp32 stubs: nothing is stubbed for kernels */\n")
    entries = read_log(log)
    jobs_list = []
    seen = set()
    for label, prog in accepted:
        for k, e in kernel_builds(prog, entries, ("reader", "writer")):
            key = (k.path, tuple(e["argv"]))
            if key not in seen:
                seen.add(key)
                jobs_list.append((label, k, e))

    def run(item):
        label, k, e = item
        cmd = clang_command(e["argv"], stubs, ttnn_dir)
        r = subprocess.run(cmd, cwd=e["cwd"], capture_output=True, text=True)
        return item, r

    described = {k.path.resolve() for _, prog in accepted for k in prog.kernels}
    for src in sorted(OPS.glob("*/kernels/*.cpp")):
        if not src.name.startswith("compute") and src.resolve() not in described:
            report.note(f"dataflow kernel {src.relative_to(REPO)} is in no description of CASES yet: not syntax-checked")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (label, k, e), r in pool.map(run, jobs_list):
            report.counts["dataflow_builds"] += 1
            if r.returncode != 0:
                errors = [ln for ln in r.stderr.splitlines() if "error" in ln][:8]
                report.fail(f"dataflow kernel {k.path.name} ({k.role}, from {label}): clang-19 syntax check "
                            f"against ttnn {TTNN_VERSION}'s headers failed:\n    " + "\n    ".join(errors))
            else:
                report.counts["dataflow_kernels"].add(str(k.path))


# ---- compute: calls against the real api/compute declarations ----------------------------------

DECL = re.compile(r"(?:template\s*<(?P<tpl>[^;{}]*?)>\s*)?(?:\[\[[^\]]*\]\]\s*)?"
                  r"\b(?:ALWI|inline|FORCE_INLINE)\b(?P<ret>[^;{}()=]*?)\b(?P<name>[A-Za-z_]\w*)\s*\(")
CALL = re.compile(r"(?<![\w.>:])(?P<name>[A-Za-z_]\w*)\s*(?:<[^;(){}]*?>)?\s*\(")
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "alignof", "static_assert", "decltype",
            "static_cast", "reinterpret_cast", "const_cast", "dynamic_cast", "constexpr", "defined", "void",
            "catch", "noexcept", "alignas", "kernel_main", "MAIN", "namespace", "operator", "typeid", "throw"}
BUILTIN_TYPES = {"uint8_t", "uint16_t", "uint32_t", "uint64_t", "int8_t", "int16_t", "int32_t", "int64_t", "float",
                 "double", "int", "unsigned", "bool", "char", "size_t"}


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', src)


def balanced(src: str, i: int) -> tuple[str, int]:
    """Text inside the parenthesis opening at src[i], and the index after its closing one."""
    depth = 0
    for j in range(i, len(src)):
        c = src[j]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return src[i + 1:j], j + 1
    return src[i + 1:], len(src)


def split_top(args: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for c in args:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def param_type(p: str) -> tuple[str, str]:
    """`const std::uint32_t icb = 0` -> (`uint32_t`, `icb`): qualifiers, std:: and defaults dropped."""
    p = p.split("=")[0].strip()
    p = re.sub(r"\bstd::", "", p)
    p = re.sub(r"\b(const|volatile)\b", "", p)
    toks = re.findall(r"[A-Za-z_][\w:]*|[*&<>]+", p)
    name = ""
    if len(toks) >= 2 and re.fullmatch(r"[A-Za-z_]\w*", toks[-1]):
        name, toks = toks[-1], toks[:-1]
    return " ".join(toks), name


def namespace_spans(src: str, prefix: str) -> list[tuple[int, int]]:
    """[start, end) of every `namespace <prefix>... { }` block."""
    spans = []
    for m in re.finditer(r"\bnamespace\s+(" + prefix + r"\w*)\s*\{", src):
        _, end = balanced(src, m.end() - 1)
        spans.append((m.start(), end))
    return spans


def declarations(headers: list[Path], skip_namespace: str | None = None) -> dict[str, list[dict]]:
    """name -> overloads [{types, names, required, file}] of functions defined in `headers`
    (those inside `namespace <skip_namespace>...` blocks left out: the emulator's internals)."""
    out: dict[str, list[dict]] = {}
    for h in headers:
        src = strip_comments(h.read_text(errors="replace"))
        hidden = namespace_spans(src, skip_namespace) if skip_namespace else []
        for m in DECL.finditer(src):
            if any(a <= m.start() < b for a, b in hidden):
                continue
            params_text, end = balanced(src, m.end() - 1)
            rest = src[end:end + 80].lstrip()
            if not re.match(r"(const\s*)?(noexcept\s*)?[{;]", rest):
                continue
            params = split_top(params_text)
            if params == ["void"]:
                params = []
            parsed = [param_type(p) for p in params]
            out.setdefault(m.group("name"), []).append({
                "params": [t for t, _ in parsed], "names": [n for _, n in parsed],
                "defaulted": ["=" in p for p in params],
                "required": sum("=" not in p for p in params), "file": str(h)})
    return out


def call_compatible(emu: dict, real: dict) -> bool:
    """The emulator's overload takes the real one's leading parameters (same types, same names where
    both are named), and every real parameter it leaves out has a default: each call the emulator
    accepts means the same on the card."""
    n = len(emu["params"])
    if n > len(real["params"]) or emu["params"] != real["params"][:n]:
        return False
    if any(a and b and a != b for a, b in zip(emu["names"], real["names"][:n])):
        return False
    return all(real["defaulted"][n:])


def sig(o: dict) -> str:
    return ", ".join(f"{t} {n}".strip() + (" = ..." if d else "")
                     for t, n, d in zip(o["params"], o["names"], o["defaulted"]))


def macro_names(headers: list[Path]) -> set[str]:
    names = set()
    for h in headers:
        names.update(re.findall(r"^\s*#\s*define\s+([A-Za-z_]\w*)", h.read_text(errors="replace"), re.M))
    return names


def calls(src: str) -> list[tuple[str, int, int]]:
    """(name, arg count, line) of every call-like expression in `src` (comments stripped)."""
    clean = strip_comments(src)
    out = []
    for m in CALL.finditer(clean):
        name = m.group("name")
        if name in KEYWORDS or name in BUILTIN_TYPES:
            continue
        args, _ = balanced(clean, m.end() - 1)
        out.append((name, len(split_top(args)), clean.count("\n", 0, m.start()) + 1))
    return out


def local_names(files: list[Path]) -> set[str]:
    """Functions, types, lambdas and variables a kernel defines itself (its .cpp and the headers beside it)."""
    names = set()
    for f in files:
        src = strip_comments(f.read_text(errors="replace"))
        names.update(re.findall(r"\b(?:struct|class|union|enum(?:\s+class)?|using|namespace)\s+([A-Za-z_]\w*)", src))
        names.update(re.findall(r"\b[A-Za-z_][\w:<>,\s\*&]*?\s[\*&]?([A-Za-z_]\w*)\s*\([^;{}]*\)\s*(?:const\s*)?\{",
                                src))
        names.update(re.findall(r"\b(?:auto|uint32_t|int32_t|float|bool|int)\s*[\*&]?\s*([A-Za-z_]\w*)\s*[=({;]", src))
        names.update(re.findall(r"#\s*define\s+([A-Za-z_]\w*)", src))
    return names


INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def reachable_headers(src_path: Path, hw_inc: Path) -> set[Path]:
    """The real headers a kernel's #include chain reaches: its own includes resolved under the wheel's
    tt_metal/hw/inc (as the JIT's -I has it) or beside the including file, followed transitively; LLK and
    ckernel headers that resolve nowhere here are left out (they declare no api/ function)."""
    seen: set[Path] = set()
    todo = [src_path]
    while todo:
        f = todo.pop()
        for inc in INCLUDE.findall(strip_comments_keep_includes(f.read_text(errors="replace"))):
            for cand in (hw_inc / inc, f.parent / inc):
                if cand.is_file():
                    cand = cand.resolve()
                    if cand not in seen:
                        seen.add(cand)
                        if cand.is_relative_to(hw_inc.resolve()):  # follow the real headers only
                            todo.append(cand)
                    break
    return seen


def strip_comments_keep_includes(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def check_compute(accepted, ttnn_dir: Path, report: Report, extra_compute: list[Path], repo_kernels: bool = True,
                  emu_root: Path = REPO / "csrc" / "include") -> None:
    api = ttnn_dir / "tt_metal" / "hw" / "inc" / "api"
    real_compute = declarations(sorted((api / "compute").rglob("*.h")))
    real_any = declarations(sorted(api.rglob("*.h")))
    real_macros = macro_names(sorted(api.rglob("*.h")))
    if not real_compute:
        report.fail(f"compute check: no declarations parsed from {api / 'compute'}")
        return
    # 1. the emulator's compute API: every name it declares exists in the real headers with the same parameters
    emu_api = emu_root / "api" / "compute"
    emu = declarations(sorted(emu_api.rglob("*.h")), skip_namespace="emu") if emu_api.is_dir() else {}
    for name, overloads in sorted(emu.items()):
        report.counts["emu_compute_declarations"] += 1
        real = real_compute.get(name) or real_any.get(name)
        if real is None:
            report.fail(f"emulator compute API: {name} (csrc/include/api/compute) does not exist in ttnn "
                        f"{TTNN_VERSION}'s api headers")
            continue
        for o in overloads:
            if not any(call_compatible(o, r) for r in real):
                report.fail(f"emulator compute API: {name}({sig(o)}) in {Path(o['file']).name} differs from ttnn "
                            f"{TTNN_VERSION}: " + "; ".join(f"{name}({sig(r)})" for r in real))
    # 1b. the emulator's headers include no api/ header that the real one of the same path does not
    #     reach: a kernel compiling on the emulator must not rely on an include the card lacks
    for h in sorted((emu_root / "api").rglob("*.h")):
        rel = h.relative_to(emu_root)
        real_h = api.parent / rel
        if not real_h.is_file():
            continue
        real_reach = {p.relative_to(api.parent.resolve()) for p in reachable_headers(real_h, api.parent)
                      if p.is_relative_to(api.parent.resolve())}
        for inc in INCLUDE.findall(strip_comments_keep_includes(h.read_text(errors="replace"))):
            if inc.startswith("api/"):
                target = Path(inc)
            elif (h.parent / inc).is_file() and (h.parent / inc).resolve().is_relative_to(emu_root.resolve()):
                target = (h.parent / inc).resolve().relative_to(emu_root.resolve())
            else:
                continue  # the emulator's own emu/ headers, or a standard header
            if (api.parent / target).is_file() and target not in real_reach:
                report.fail(f"emulator header {rel} includes {target}, which ttnn {TTNN_VERSION}'s {rel} does not "
                            "reach: kernels would compile here and not on a card")
    # 2. our compute kernels: those of the accepted descriptions, tt_specdec/ops/*/kernels/compute_*.cpp, and extras
    sources = {k.path for _, prog in accepted for k in prog.kernels if k.role == "compute"}
    sources |= set(extra_compute)
    op_compute = set(OPS.glob("*/kernels/compute*.cpp"))
    if repo_kernels:
        sources |= op_compute
    if repo_kernels and not op_compute:
        report.note("no compute kernels under tt_specdec/ops/*/kernels/ yet: the compute check ran on the emulator's "
                    "compute API declarations and on any other compute kernel given")
    emu_test_kernels = sorted((REPO / "tests" / "emu" / "kernels").glob("compute*.cpp"))
    if repo_kernels:
        sources |= set(emu_test_kernels)  # the emulator's own compute test kernels use the same API
    emu_names = set(emu)
    for src_path in sorted(sources):
        beside = [src_path] + sorted(src_path.parent.glob("*.h*"))
        local = local_names(beside)
        src = src_path.read_text(errors="replace")
        n_checked = 0
        reach = None
        for name, nargs, line in calls(src):
            where = f"{src_path.name}:{line}"
            if name in real_compute:
                n_checked += 1
                fits = [o for o in real_compute[name] if o["required"] <= nargs <= len(o["params"])]
                if not fits:
                    report.fail(f"compute kernel {where}: {name} called with {nargs} argument(s); ttnn "
                                f"{TTNN_VERSION} declares " + "; ".join(
                                    f"{name}({sig(o)})" for o in real_compute[name]))
                # the JIT adds no include: a called name must be declared in a header the kernel's own
                # #include chain reaches in the real headers (compute_kernel_api.h brings no tile_move_copy.h)
                if reach is None:
                    reach = reachable_headers(src_path, api.parent)
                if name not in local and not any(Path(o["file"]).resolve() in reach for o in real_compute[name]):
                    homes = sorted({str(Path(o["file"]).relative_to(api.parent)) for o in real_compute[name]})
                    report.fail(f"compute kernel {where}: {name} is declared in {' / '.join(homes)}, which the "
                                f"kernel's #include chain does not reach in ttnn {TTNN_VERSION}'s headers")
            elif name in real_any or name in real_macros or name in local:
                continue
            elif name in emu_names:
                report.fail(f"compute kernel {where}: {name} is declared by the emulator but not by ttnn "
                            f"{TTNN_VERSION}'s api headers")
            else:
                report.fail(f"compute kernel {where}: calls {name}, which neither ttnn {TTNN_VERSION}'s api "
                            "headers nor the kernel's own sources declare")
        report.counts["compute_calls"] += n_checked
        report.counts["compute_kernels"].add(str(src_path))


# ---- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", action="append", default=[], metavar="ROLE:PATH",
                    help="also check this kernel in a one-kernel description (role reader, writer or compute)")
    ap.add_argument("--description", action="append", default=[], metavar="FILE",
                    help="also check the programs() [(label, Program)] of this Python file")
    ap.add_argument("--only-extra", action="store_true", help="check only --kernel / --description")
    ap.add_argument("--jobs", type=int, default=2, help="parallel clang-19 runs")
    ap.add_argument("--arch", choices=sorted(CLUSTERS), default="wormhole_n150",
                    help="the mock card (default wormhole_n150, the emulator's; descriptions take its DRAM "
                         "alignment from ttnn: 32 bytes on Wormhole, 64 on Blackhole)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (JIT log, tt-metal cache)")
    ap.add_argument("--emu-include", type=Path, default=REPO / "csrc" / "include", metavar="DIR",
                    help="the emulator's kernel API headers to compare with the real ones (default csrc/include)")
    args = ap.parse_args(argv)
    t0 = time.time()
    report = Report()

    args.kernel = [f"{s.partition(':')[0]}:{Path(s.partition(':')[2]).resolve()}" for s in args.kernel]
    args.description = [str(Path(f).resolve()) for f in args.description]
    args.emu_include = args.emu_include.resolve()  # before the chdir below
    ttnn_dir = ttnn_package_dir()
    install_standin(ttnn_dir)
    work = Path(tempfile.mkdtemp(prefix="tt_specdec_conformance_"))
    os.chdir(work)  # tt-metal writes generated/ (fabric, watcher files) into the working directory
    log = work / "jit.jsonl"
    (work / "cluster.yaml").write_text(CLUSTERS[args.arch])
    os.environ["TT_METAL_MOCK_CLUSTER_DESC_PATH"] = str(work / "cluster.yaml")
    os.environ["TT_METAL_CACHE"] = str(work / "cache") + "/"  # fresh: every kernel is built, so recorded
    os.environ["TT_SPECDEC_JIT_LOG"] = str(log)
    os.environ.setdefault("TT_METAL_LOGGER_LEVEL", "Error")
    os.environ.setdefault("LOGURU_LEVEL", "WARNING")
    try:
        import ttnn  # before the torch stand-in: ttnn probes for torch with importlib
        version = getattr(ttnn, "__version__", None) or _dist_version("ttnn")
        if not str(version).startswith(TTNN_VERSION):
            report.fail(f"ttnn {version} is installed; this check is written against ttnn {TTNN_VERSION}")
        sys.path.insert(0, str(HERE))
        import torchless
        torchless.install(REPO)
        from tt_specdec.runtime import device as D
        from tt_specdec.runtime import program as P
        with P.dram_alignment(ttnn.get_dram_alignment()):  # the mock card's: Wormhole 32, Blackhole 64
            progs = [] if args.only_extra else builders(report)
            progs += extra_programs(args.kernel, args.description, report)
        dev = D.device()  # the process-wide device the ops run on
        try:
            accepted = check_descriptions(progs, dev, log, report)
            if not args.only_extra:
                check_op_wrappers(dev, report)
        finally:
            D.close_device()
        check_dataflow(accepted, log, work, report, args.jobs, ttnn_dir)
        extra_compute = [Path(s.partition(":")[2]).resolve() for s in args.kernel if s.startswith("compute:")]
        if not args.only_extra or extra_compute or args.emu_include != (REPO / "csrc" / "include").resolve():
            check_compute(accepted, ttnn_dir, report, extra_compute, repo_kernels=not args.only_extra,
                          emu_root=args.emu_include)
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001
        report.fail("conformance check crashed:\n" + traceback.format_exc())
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    c = report.counts
    print(f"\nconformance with ttnn {TTNN_VERSION} (mock {args.arch}, stand-in compiler, clang-19), "
          f"{time.time() - t0:.1f} s")
    print(f"descriptions accepted: {c['descriptions_accepted']}/{c['descriptions']}")
    print(f"dataflow kernels syntax-checked: {len(c['dataflow_kernels'])} ({c['dataflow_builds']} kernel builds)")
    print(f"compute calls checked: {c['compute_calls']} (in {len(c['compute_kernels'])} compute kernels; "
          f"{c['emu_compute_declarations']} emulator compute API declarations compared)")
    print(f"conformance: {'FAILED' if report.failures else 'OK'}, {len(report.failures)} failure(s)")
    return 1 if report.failures else 0


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
