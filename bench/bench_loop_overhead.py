"""The speculative loop's own work per step, in target decode steps: the cost model's o, o0, o_plain
(accept, rollback, the policy, bookkeeping; forwards and proposals timed apart), on SmolLM2.

    python bench/bench_loop_overhead.py --drafter lookup+eagle --json out/loop_overhead.json

Run it from two checkouts one after the other (PYTHONPATH=<checkout>) to compare a change side by side.
"""
from __future__ import annotations

import argparse
import pathlib
import platform
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drafter", default="lookup+eagle")
    parser.add_argument("--context", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import tt_specdec
    from tt_specdec.bench.harness import write_json
    if (pathlib.Path(tt_specdec.__file__).parent / "speculative").is_dir():
        from tt_specdec.speculative.measure import loop_overhead, own_text
    else:  # a checkout from before the speculative/ layout
        from tt_specdec.spec.cost import loop_overhead, own_text

    pair = tt_specdec.load_pair("smollm2")
    drafter = tt_specdec.DRAFTERS[args.drafter](pair)
    target = pair.target
    prompts = own_text(target, 1, args.context).tolist()
    target.allocate_cache(1, args.context + 2)
    tokens = torch.tensor(prompts)[:, :1]
    start = time.perf_counter()
    for _ in range(10):
        target.forward(tokens, torch.tensor([args.context]))
    step_s = (time.perf_counter() - start) / 10
    o, o0, o_plain = loop_overhead(target, drafter, 1, args.context, repeats=args.repeats, prompts=prompts)
    report = {"cpu": platform.processor() or platform.machine(), "drafter": args.drafter, "decode_step_ms":
              round(step_s * 1e3, 3), "o_ms": round(o * 1e3, 3), "o0_ms": round(o0 * 1e3, 3),
              "o_plain_ms": round(o_plain * 1e3, 3)}
    print(" ".join(f"{k}={v}" for k, v in report.items()))
    if args.json:
        write_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
