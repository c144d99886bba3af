"""Side-by-side wall clock: the target alone vs speculative decoding, same prompts, one process.

Plain and speculative runs are interleaved prompt by prompt, so machine drift hits both
alike; the figure that matters is the ratio `speedup` = plain time / speculative time.
"""
from __future__ import annotations

import json
import sys
import time

from tt_specdec.drafters import Sampling
from tt_specdec.spec.stats import Stats

# byte-level prompts in the style of the tiny pair's text (Python sources), none taken from it
TINY_PROMPTS = [
    "def fibonacci(n):\n    ",
    "import os\nimport sys\n\n\ndef main():\n    ",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        ",
    "    for key, value in sorted(mapping.items()):\n        ",
    "def read_lines(path):\n    \"\"\"Return the lines of the file at path.\"\"\"\n    with open(path) as f:\n",
    "        if not isinstance(value, str):\n            raise TypeError(",
    "# Copyright (C) 2001 Python Software Foundation\n",
    "    def __repr__(self):\n        return ",
]


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_config(dec, prompts: list[list[int]], max_new_tokens: int, seed: int) -> tuple[float, Stats, list]:
    """Total seconds, merged stats and outputs of one decoder over the prompts (one at a time)."""
    total, merged, outputs = 0.0, Stats(k=dec.k), []
    for i, p in enumerate(prompts):
        start = time.perf_counter()
        gen = dec.generate_ids([p], max_new_tokens, seed + i)
        total += time.perf_counter() - start
        outputs.append(gen.tokens[0])
        merge(merged, gen.stats)
    merged.total_s = total
    return total, merged, outputs


def merge(into: Stats, s: Stats) -> None:
    for f in ("steps", "drafted", "accepted", "emitted", "row_steps", "new_tokens", "ttft_s"):
        setattr(into, f, getattr(into, f) + getattr(s, f))
    if not into.accepted_per_position:
        into.accepted_per_position, into.offered_per_position = [0] * s.k, [0] * s.k
    for t in range(s.k):
        into.accepted_per_position[t] += s.accepted_per_position[t]
        into.offered_per_position[t] += s.offered_per_position[t]


def bench(pair, *, ks: list[int], drafters: list[str], prompts: list[str], max_new_tokens: int,
          sampling: Sampling = Sampling(), seed: int = 0, repeats: int = 1) -> list[dict]:
    """One row per (drafter, k): acceptance, mean accepted length, tokens/s of plain and speculative,
    wall-clock speedup (plain time / speculative time) and whether greedy outputs matched."""
    from tt_specdec import SpeculativeDecoder

    ids = [pair.tokenizer.encode(p) for p in prompts]
    plain = SpeculativeDecoder(pair, k=0, sampling=sampling, eos_token_id=-1)
    specs = [(d, k, SpeculativeDecoder(pair, d, k, sampling, eos_token_id=-1)) for d in drafters for k in ks]
    plain.generate_ids(ids[:1], 4)  # warm-up: first calls pay one-off allocation costs
    for _, _, s in specs:
        s.generate_ids(ids[:1], 4)
    rows = []
    for idx, (drafter, k, spec) in enumerate(specs):
        progress(f"[bench] {idx + 1}/{len(specs)} drafter={drafter} k={k}")
        t_plain = t_spec = 0.0
        for r in range(repeats):  # plain and speculative alternate, so drift hits both
            tp, plain_stats, plain_out = run_config(plain, ids, max_new_tokens, seed)
            ts, stats, spec_out = run_config(spec, ids, max_new_tokens, seed)
            t_plain, t_spec = t_plain + tp, t_spec + ts
        rows.append({
            "drafter": drafter, "k": k, "prompts": len(ids), "max_new_tokens": max_new_tokens,
            "temperature": sampling.temperature,
            "acceptance_rate": stats.acceptance_rate,
            "mean_accepted_length": stats.mean_accepted_length,
            "acceptance_per_position": stats.acceptance_per_position,
            "plain_tokens_per_s": plain_stats.new_tokens * repeats / t_plain,
            "spec_tokens_per_s": stats.new_tokens * repeats / t_spec,
            "speedup": t_plain / t_spec,
            "outputs_match": plain_out == spec_out if sampling.greedy else None,
        })
    return rows


def format_table(rows: list[dict]) -> str:
    head = f"{'drafter':8} {'k':>2} {'accept':>7} {'mean len':>8} {'plain tok/s':>11} {'spec tok/s':>10} {'speedup':>7} {'match':>5}"
    lines = [head, "-" * len(head)]
    for r in rows:
        match = "-" if r["outputs_match"] is None else ("yes" if r["outputs_match"] else "NO")
        lines.append(f"{r['drafter']:8} {r['k']:>2} {r['acceptance_rate']:>7.3f} {r['mean_accepted_length']:>8.2f} "
                     f"{r['plain_tokens_per_s']:>11.1f} {r['spec_tokens_per_s']:>10.1f} {r['speedup']:>6.2f}x {match:>5}")
    return "\n".join(lines)


def write_json(rows: list[dict], path: str, meta: dict) -> None:
    with open(path, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=2)


def plot(rows: list[dict], path: str) -> None:
    """Left: acceptance per draft position for each config; right: wall-clock speedup per k."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("--plot needs matplotlib: pip install 'tt_specdec[plot]'") from e
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        acc = r["acceptance_per_position"]
        ax1.plot(range(1, len(acc) + 1), acc, marker="o", label=f"{r['drafter']} k={r['k']}")
    ax1.set(xlabel="draft position t", ylabel="P(d_t accepted)", title="Acceptance per draft position", ylim=(0, 1.05))
    ax1.legend(fontsize=7)
    for drafter in dict.fromkeys(r["drafter"] for r in rows):
        sel = [r for r in rows if r["drafter"] == drafter and r["k"] != "auto"]
        line = ax2.plot([r["k"] for r in sel], [r["speedup"] for r in sel], marker="o", label=drafter)[0]
        for r in rows:
            if r["drafter"] == drafter and r["k"] == "auto":
                ax2.axhline(r["speedup"], color=line.get_color(), ls=":", label=f"{drafter}, k auto")
    ax2.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax2.set(xlabel="k (draft tokens per step)", ylabel="wall-clock speedup vs target alone", title="Speedup per k")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
