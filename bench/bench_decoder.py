"""The target's step cost, side by side in one process: our batch-invariant CPU decoder
(models/cpu_llama.py; 1 and 2 kernel threads) against the torch Llama in fp32 and bf16.

Per decoder: the one-row decode time relative to the fastest decoder, the verify cost ratio
v(T) = time(T rows) / time(1 row) for T = 2..9, and whether a T-row verify gives bit-identical
logits to T one-row decodes (exact mode). The decoders run interleaved, best of `--repeats`,
so drift on a shared machine hits all alike.

    .venv/bin/python bench/bench_decoder.py --json out/bench_decoder.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from tt_specdec import load_pair
from tt_specdec.models.cpu_llama import set_threads

TS = (1, 2, 3, 4, 5, 6, 7, 8, 9)


def exact(model, tokens: torch.Tensor, context: int, T: int) -> bool:
    """T rows in one forward == T one-row forwards, bit for bit."""
    pos = torch.tensor([context])
    verify = model.forward(tokens[:, context:context + T], pos)
    decode = torch.cat([model.forward(tokens[:, context + t:context + t + 1], pos + t) for t in range(T)], 1)
    return bool(torch.equal(verify, decode))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", default="smollm2", choices=("smollm2", "tiny"))
    ap.add_argument("--context", type=int, default=256, help="tokens already in the cache")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    decoders = {"cpu": load_pair(args.pair).target,
                "torch-fp32": load_pair(args.pair, torch.float32, engine="torch").target,
                "torch-bf16": load_pair(args.pair, torch.bfloat16, engine="torch").target}
    threads = {"cpu": 1, "cpu-2threads": 2}
    decoders["cpu-2threads"] = decoders["cpu"]  # the same weights, its pool at 2 threads
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, decoders["cpu"].vocab_size, (1, args.context + 2 * max(TS)), generator=g)
    for model in decoders.values():
        model.allocate_cache(1, tokens.shape[1])
        model.prefill(tokens[:, :args.context], torch.tensor([args.context]))
    best = {(name, T): float("inf") for name in decoders for T in TS}
    for rep in range(args.repeats):
        print(f"[bench_decoder] round {rep + 1}/{args.repeats}", file=sys.stderr, flush=True)
        for name, model in decoders.items():
            set_threads(threads.get(name, 1))
            for T in TS:
                start = time.perf_counter()
                model.forward(tokens[:, args.context:args.context + T], torch.tensor([args.context]))
                best[name, T] = min(best[name, T], time.perf_counter() - start)
    set_threads(1)
    fastest = min(best[name, 1] for name in decoders)
    rows = []
    for name, model in decoders.items():
        set_threads(threads.get(name, 1))
        rows.append({"decoder": name, "decode_ms": best[name, 1] * 1e3, "decode_vs_fastest": best[name, 1] / fastest,
                     "v": {T: best[name, T] / best[name, 1] for T in TS},
                     "exact_verify": {T: exact(model, tokens, args.context, T) for T in (2, 5, 9)}})
    set_threads(1)
    print(f"{args.pair}, context {args.context}, best of {args.repeats}; v(T) = time(T rows) / time(1 row)")
    print(f"{'decoder':14} {'decode ms':>9} {'x fastest':>9}  " + " ".join(f"v({T})" for T in TS[1:])
          + "  verify bit-identical to decode (T=2,5,9)")
    for r in rows:
        print(f"{r['decoder']:14} {r['decode_ms']:9.1f} {r['decode_vs_fastest']:9.2f}  "
              + " ".join(f"{r['v'][T]:4.2f}" for T in TS[1:]) + "  " + str(list(r["exact_verify"].values())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"pair": args.pair, "context": args.context, "repeats": args.repeats,
                                "torch": torch.__version__}, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
