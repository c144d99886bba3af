"""The whole speculative step of tt_specdec on real ttnn 0.81.1, on a mock Wormhole n150 (no card).

For each pair and batch size: the target and draft decoders of tt_specdec/models/ttnn_llama.py with placeholder
weights (ttnn.empty: the real shapes, layouts and memory, no values), both prefilled, then speculative steps of
tt_specdec/speculative/device_step.py (k = 4): draft k tokens, verify k+1 rows with our verify_attention kernel
(ttnn.generic_op), accept_prefix and rollback_kv on device tensors. Step 1 fills the program cache; steps 2 and
3 run with `device.set_program_cache_misses_allowed(False)`; a 4th step runs each op under its own NO_DISPATCH
graph capture for its peak CB / L1 per core, which must stay below the usable L1. Printed per pair and B: ops
per step, host readback bytes per step, each op's peak. What the mock checks: every op's validation, program
selection, the real allocator (out of memory, CBs clashing with L1 buffers), the program cache. Not values (the
mock reads back zeros), not kernel compilation (see check.py), not hangs or speed.

Run it with tools/conformance/run_step.sh (the conformance venv: Python 3.12, ttnn, numpy, no torch).
--break memory_config / l1_budget: a fixture that must fail with ttnn's own error (exit 1).
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
USABLE_L1 = 1_463_968  # bytes per Tensix core on the mock n150 (FACTS.md; the allocator's usable L1)
PAIRS = {"smollm2": ("SmolLM2-135M", "smollm2_draft"), "llama3": ("Llama-3.1-8B", "Llama-3.2-1B")}
K = 4
STEPS = 3
PROMPT_LENGTHS = (37, 20, 64, 5, 33, 48, 12, 29)  # rows of different lengths: per-row positions from the start


def open_mock(work: Path):
    """ttnn with a mock n150 and the stand-in compiler (check.py's set-up); returns the ttnn module."""
    sys.path.insert(0, str(HERE))
    import check
    os.chdir(work)  # tt-metal writes generated/ into the working directory
    (work / "cluster.yaml").write_text(check.CLUSTERS["wormhole_n150"])
    os.environ["TT_METAL_MOCK_CLUSTER_DESC_PATH"] = str(work / "cluster.yaml")
    os.environ["TT_METAL_CACHE"] = str(work / "cache") + "/"  # fresh: every program is built
    os.environ.setdefault("TT_METAL_LOGGER_LEVEL", "Error")
    os.environ.setdefault("LOGURU_LEVEL", "WARNING")
    check.install_standin(check.ttnn_package_dir())
    import ttnn  # before the torch stand-in: ttnn probes for torch with importlib
    import torchless
    torchless.install(REPO)
    from loguru import logger
    logger.disable("ttnn.graph")  # one warning per capture that fast dispatch records no sub-graphs: known

    sys.path.insert(0, str(REPO))
    return ttnn


def run_pair(ttnn, dev, pair: str, B: int, breaks: str | None) -> dict:
    from tt_specdec.models.ttnn_llama import CONFIGS, OpLog, TtLlama
    from tt_specdec.speculative.device_step import DeviceStep

    target_name, draft_name = PAIRS[pair]
    ops = OpLog()
    kv = dict(max_seq_len=256, block_size=64, ops=ops)
    target = TtLlama.placeholder(CONFIGS[target_name], dev, batch_size=B, **kv)
    draft = TtLlama.placeholder(CONFIGS[draft_name], dev, batch_size=B, **kv)
    if breaks == "l1_budget":  # the verify kernel's K buffer made larger than a core's L1
        prog = target.step_constants(K + 1)["program"]
        cb = next(c for c in prog.circular_buffers if c.name == "k")
        cb.num_pages = -(-USABLE_L1 // cb.page_size) + cb.num_pages
    if breaks == "memory_config":  # the QKV matmul asked for a height-sharded L1 output without a shard spec
        target.qkv_memory_config = ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG
    step = DeviceStep(target, draft, K)
    prompts = [[(7 * b + i) % 1000 + 1 for i in range(PROMPT_LENGTHS[b % len(PROMPT_LENGTHS)])] for b in range(B)]
    t0 = time.time()
    step.start(prompts)
    prefill_ops = ops.total()
    rows = []
    for i in range(1, STEPS + 2):
        capture = i == STEPS + 1
        if i == 2:
            dev.set_program_cache_misses_allowed(False)
        ops.reset()
        ops.capture = capture
        step.readback_bytes = 0
        if capture:
            step.readback = lambda x: [[0] * int(x.shape[-1])] * (int(x.volume()) // int(x.shape[-1]))  # no host read
        t = time.time()
        n, out = step.step()
        assert len(n) == B and all(len(r) == K + 1 for r in out), (n, out)
        rows.append((i, ops.total(), step.readback_bytes, dict(ops.counts), time.time() - t))
    dev.set_program_cache_misses_allowed(True)
    return dict(prefill_ops=prefill_ops, steps=rows, peaks=dict(ops.peaks), seconds=time.time() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", action="append", choices=sorted(PAIRS), help="default: both")
    ap.add_argument("--batch", action="append", type=int, help="default: 1 and 8")
    ap.add_argument("--break", dest="breaks", choices=("memory_config", "l1_budget"),
                    help="a broken fixture: the step must fail with ttnn's own error")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tt_specdec_step_"))
    failures = 0
    try:
        ttnn = open_mock(work)
        from tt_specdec.runtime import device as D
        dev = D.device()
        for pair in args.pair or ["smollm2", "llama3"]:
            for B in args.batch or [1, 8]:
                label = f"{pair} ({' -> '.join(reversed(PAIRS[pair]))}) B={B} k={K}"
                try:
                    r = run_pair(ttnn, dev, pair, B, args.breaks)
                except Exception as e:  # noqa: BLE001
                    dev.set_program_cache_misses_allowed(True)
                    failures += 1
                    lines = [ln for ln in str(e).splitlines() if ln.strip() and not ln.startswith((" --- ", "backtrace"))]
                    print(f"FAIL: {label}: {type(e).__name__}: {' | '.join(lines[:4])}", flush=True)
                    if not args.breaks:
                        traceback.print_exc()
                    continue
                finally:
                    gc.collect()
                print(f"ok: {label}: prefill {r['prefill_ops']} ops; {r['seconds']:.1f} s", flush=True)
                for i, n_ops, nbytes, counts, secs in r["steps"]:
                    what = ("program cache filled" if i == 1 else "NO_DISPATCH capture" if i == STEPS + 1
                            else "program-cache misses forbidden")
                    print(f"  step {i} ({what}): {n_ops} ops, host readback {nbytes} B, "
                          f"{secs:.1f} s on the host", flush=True)
                print("  ops per step: " + ", ".join(f"{k} {v}" for k, v in sorted(r["steps"][-1][3].items())))
                print(f"  peak per core from NO_DISPATCH captures, usable L1 {USABLE_L1:,} B:")
                for name, (cb, l1, dfb, total) in sorted(r["peaks"].items(), key=lambda kv: -kv[1][3]):
                    flag = "" if total < USABLE_L1 else "  OVER THE USABLE L1"
                    print(f"    {name:20s} {total:>9,} B (CB {cb:,}, L1 buffers {l1:,}, dataflow buffers {dfb:,}){flag}")
                    if total >= USABLE_L1:
                        failures += 1
                        print(f"FAIL: {label}: {name} peaks at {total:,} B per core, over the usable L1")
        D.close_device()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"speculative step on a mock n150: {'FAILED' if failures else 'OK'}, {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
