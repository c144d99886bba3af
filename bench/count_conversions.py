"""Count the conversions between torch, numpy and Python lists in one step of the speculative loop.

A conversion is a call, seen by sys.setprofile, of one of the functions that move per-row data from one
form to another: torch.tensor / as_tensor / from_numpy (into torch), Tensor.numpy (torch -> numpy),
Tensor.tolist / item and ndarray.tolist / item (into Python). (np.array / np.asarray are not counted: the
profiler does not see their arguments, and most of their calls here take lists.) Counted over the decode
steps of a greedy run after prefill, divided by the steps it took.

    python bench/count_conversions.py --pair smollm2 --drafter lookup+eagle --k 4 --json out/conversions.json
"""
from __future__ import annotations

import argparse
import collections
import platform
import sys

import numpy as np
import torch

INTO_TORCH = {"tensor", "as_tensor", "from_numpy"}
TORCH_OUT = {"numpy", "tolist", "item"}
NUMPY_OUT = {"tolist", "item"}


def kind_of(fn) -> str | None:
    """The conversion a C function call makes, or None."""
    name, owner = getattr(fn, "__name__", ""), getattr(fn, "__self__", None)
    if isinstance(owner, torch.Tensor) and name in TORCH_OUT:
        return f"Tensor.{name}"
    if isinstance(owner, np.ndarray) and name in NUMPY_OUT:
        return f"ndarray.{name}"
    module = getattr(fn, "__module__", None) or ""
    if name in INTO_TORCH and (owner is torch or module.startswith("torch")):
        return f"torch.{name}"
    return None


class Counter:
    """Counts conversions while active (sys.setprofile sees every C call)."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self.sites: collections.Counter = collections.Counter()  # (file:line, kind) of each conversion
        self.active = False

    def profile(self, frame, event, arg):
        if event == "c_call" and self.active:
            kind = kind_of(arg)
            if kind is not None:
                self.counts[kind] += 1
                code = frame.f_code
                self.sites[(f"{code.co_filename.rsplit('tt_specdec/', 1)[-1]}:{frame.f_lineno}", kind)] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="smollm2")
    parser.add_argument("--drafter", default="lookup+eagle")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--prompt", default="Write a Python function that returns the n-th Fibonacci number.")
    parser.add_argument("--json", help="write the counts here")
    parser.add_argument("--where", type=int, default=0, help="also print the N commonest call sites")
    args = parser.parse_args(argv)

    import tt_specdec
    from tt_specdec.bench.harness import write_json

    pair = tt_specdec.load_pair(args.pair)
    dec = tt_specdec.SpeculativeDecoder(pair, args.drafter, args.k)
    counter = Counter()
    ids = pair.tokenizer.encode(tt_specdec.chat_prompt(pair.tokenizer, args.prompt))
    dec.generate_ids([ids], 4)  # warm-up: first calls build caches and engines

    def start(_row, _ids):  # the prefill's token is out: count the decode steps from here
        counter.active = True

    sys.setprofile(counter.profile)
    try:
        gen = dec.generate_ids([ids], args.max_new_tokens, on_tokens=start)
    finally:
        sys.setprofile(None)
    steps = gen.stats.steps
    total = sum(counter.counts.values())
    report = {"cpu": platform.processor() or platform.machine(), "pair": args.pair, "drafter": args.drafter,
              "k": args.k, "batch": 1, "steps": steps, "conversions": total,
              "per_step": round(total / max(steps, 1), 2), "by_kind": dict(counter.counts.most_common()),
              "by_site": {f"{site} {kind}": n for (site, kind), n in counter.sites.most_common()}}
    print(f"{args.drafter} k={args.k}, B=1, greedy, {steps} steps: {report['per_step']} conversions per step")
    for kind, n in counter.counts.most_common():
        print(f"  {kind:24s} {n / max(steps, 1):6.2f} per step")
    for (site, kind), n in counter.sites.most_common(args.where):
        print(f"  {n / max(steps, 1):6.2f}  {kind:18s} {site}")
    if args.json:
        write_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
