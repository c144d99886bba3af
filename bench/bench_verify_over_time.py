"""How the verify cost v(T) moves over a minute on this machine: the target's T-row forward against its
1-row decode, measured again and again in short rounds.

The cost model (speculative/cost.py) times each T once, least-disturbed of its repeats, when it is first
measured. A multi-row verify is compute-bound (bench_linear.py) and a decode is memory-bound, so
anything that takes the core's arithmetic away (on a shared host, a busy neighbour) slows the first
and barely the second: v(T) then drifts in spells, and a run that meets such a spell is slower than
the model predicted (the bench's meas/pred column). Per round (T = 1, 2, 4, 8 interleaved, best of
`--per-round` each): the decode's ms and v(T). Reported: the spread of v(T) over the rounds, the
share of rounds whose v(4) is 1.2x or more its least value, and with `--plot` v(T) over time.

    .venv/bin/python bench/bench_verify_over_time.py --json out/bench_verify_over_time.json --plot out/bench_verify_over_time.png
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from tt_specdec import load_pair
from tt_specdec.models.cpu_llama import set_threads

TS = (1, 2, 4, 8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to keep measuring")
    ap.add_argument("--per-round", type=int, default=3, help="forwards per T in a round (its best is kept)")
    ap.add_argument("--context", type=int, default=200, help="tokens already in the cache")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--plot", help="write v(T) over time here (.png)")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.per_round < 1:
        raise SystemExit(f"--seconds {args.seconds} / --per-round {args.per_round}: expected > 0 and >= 1")
    set_threads(args.threads)
    torch.set_num_threads(1)
    target = load_pair("smollm2", engine="cpu").target
    target.allocate_cache(1, args.context + max(TS) + 1)
    tokens = torch.randint(0, target.vocab_size, (1, args.context + max(TS)), generator=torch.Generator().manual_seed(0))
    pos = torch.tensor([args.context])
    target.prefill(tokens[:, :args.context], pos)

    rounds, start = [], time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        best = {T: float("inf") for T in TS}
        for _ in range(args.per_round):
            for T in TS:  # interleaved, so a spell hits every T of the round
                t0 = time.perf_counter()
                target.forward(tokens[:, args.context:args.context + T], pos)
                best[T] = min(best[T], time.perf_counter() - t0)
        rounds.append({"t_s": time.perf_counter() - start, "decode_ms": best[1] * 1e3,
                       "v": {T: best[T] / best[1] for T in TS[1:]}})
        if len(rounds) % 10 == 0:
            print(f"[bench_verify_over_time] {len(rounds)} rounds, {time.perf_counter() - start:.0f} of "
                  f"{args.seconds:.0f} s", file=sys.stderr, flush=True)

    summary = {"rounds": len(rounds), "decode_ms": spread([r["decode_ms"] for r in rounds])}
    for T in TS[1:]:
        summary[f"v{T}"] = spread([r["v"][T] for r in rounds])
    v4 = np.array([r["v"][4] for r in rounds])
    summary["share_of_rounds_v4_at_least_1.2x_its_least"] = float((v4 >= 1.2 * v4.min()).mean())
    print(f"{len(rounds)} rounds over {args.seconds:.0f} s, context {args.context}, {args.threads} thread(s)")
    print(f"{'':10s} {'least':>7s} {'median':>7s} {'most':>7s}")
    for key in ["decode_ms"] + [f"v{T}" for T in TS[1:]]:
        s = summary[key]
        print(f"{key:10s} {s['least']:7.2f} {s['median']:7.2f} {s['most']:7.2f}")
    print(f"rounds with v(4) >= 1.2x its least: {summary['share_of_rounds_v4_at_least_1.2x_its_least']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv[1:], "summary": summary, "rounds": rounds}, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot(rounds, args.plot)
        print(f"wrote {args.plot}")
    return 0


def spread(xs: list[float]) -> dict:
    return {"least": float(np.min(xs)), "median": float(np.median(xs)), "most": float(np.max(xs))}


def plot(rounds: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] for r in rounds]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for T in TS[1:]:
        top.plot(t, [r["v"][T] for r in rounds], label=f"v({T})")
    top.set_ylabel("T-row forward / decode")
    top.legend(loc="upper left", ncol=3)
    bottom.plot(t, [r["decode_ms"] for r in rounds], color="k")
    bottom.set_ylabel("decode ms")
    bottom.set_xlabel("seconds")
    top.set_title("SmolLM2-135M target on the CPU engine: verify cost over time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
