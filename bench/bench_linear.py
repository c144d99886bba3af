"""Why a verify row is not free on a CPU core: the CPU decoder's linear (tt_specdec._cpu.PackedLinear,
bf16 weights widened to fp32, one FMA chain per output) at M = 1..9 rows, against the core's own fp32
FMA rate measured in the same run.

Three weight sizes: the SmolLM2 head (49152 x 576, 57 MB: streamed from DRAM every call, as every
layer of a decode step is), one that stays in L3 (1024 x 576, 1.2 MB: a layer's gate/up is 3.5 MB)
and one that fits this core's 512 KB L2 (384 x 576, 0.44 MB: the kernel's own compute rate). The
kernel is called directly (no Python wrapper or allocation in the timing: it would be a fifth of the
smallest call). The L3 is
shared with the machine's other tenants: when they are busy, the first two slow down while the FMA
loop does not. Per M: time relative to
M = 1 (the verify cost ratio v of this one matrix), GB/s of weights, GFLOP/s and that as a share of
the FMA peak. Compute-bound rows cost ~M x a row's FLOPs at near the peak; no kernel can make them
cheaper than the peak allows. Best of `--repeats` rounds, the M values and the peak interleaved
(this shared machine's speed drifts between runs by up to 2x: compare within one run).

    .venv/bin/python bench/bench_linear.py --json out/bench_linear.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from tt_specdec.models.cpu_llama import PackedLinear, set_threads

SHAPES = {"streamed": (49152, 576), "in_l3": (1024, 576), "in_l2": (384, 576)}
MS = range(1, 10)


def fma_peak() -> float:
    """GFLOP/s of the core's fp32 FMAs over ~10 ms."""
    from tt_specdec import _cpu
    return _cpu.fma_peak_gflops(4_000_000)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="kernel threads (the FMA peak is one core's)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    results = {"threads": args.threads, "shapes": {}}
    best_by_shape = {}  # name -> {M: least seconds}
    peak = 0.0  # best of the rounds, measured between the linears: this shared machine's speed drifts
    for name, (N, K) in SHAPES.items():
        lin = PackedLinear(torch.randn(N, K, generator=g).bfloat16())
        xs = {M: torch.randn(M, K, generator=g) for M in MS}
        outs = {M: torch.empty(M, N) for M in MS}
        best = {M: float("inf") for M in MS}
        for rep in range(args.repeats):
            print(f"[bench_linear] {name} round {rep + 1}/{args.repeats}", file=sys.stderr, flush=True)
            lin(xs[1])  # untimed: the first call after the FMA loop ran slow
            for M in MS:
                start = time.perf_counter()
                lin.packed.forward(xs[M], outs[M])
                best[M] = min(best[M], time.perf_counter() - start)
            peak = max(peak, fma_peak())
        best_by_shape[name] = best
    results["fma_peak_gflops_one_core"] = peak
    print(f"fp32 FMA peak of one core: {peak:.1f} GFLOP/s (best of the rounds)")
    for name, best in best_by_shape.items():
        N, K = SHAPES[name]
        rows = []
        for M in MS:
            gflops = 2 * M * N * K / best[M] / 1e9
            rows.append({"M": M, "ms": best[M] * 1e3, "v": best[M] / best[1], "weight_gb_per_s": N * K * 2 / best[M] / 1e9,
                         "gflops": gflops, "share_of_fma_peak": gflops / (peak * args.threads)})
        results["shapes"][name] = {"n": N, "k": K, "weight_mb": N * K * 2 / 1e6, "rows": rows}
        print(f"\n{name}: W [{N}, {K}] bf16, {N * K * 2 / 1e6:.1f} MB")
        print(f"{'M':>2} {'ms':>7} {'v':>5} {'GB/s':>6} {'GFLOP/s':>8} {'of peak':>8}")
        for r in rows:
            print(f"{r['M']:>2} {r['ms']:7.3f} {r['v']:5.2f} {r['weight_gb_per_s']:6.1f} {r['gflops']:8.1f} "
                  f"{r['share_of_fma_peak']:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
