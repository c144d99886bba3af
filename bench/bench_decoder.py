"""The target's step cost on each matrix path of the CPU engine, side by side in one process.

Per path this CPU runs (and with --torch the torch Llama in fp32 and bf16) (csrc/cpu/matrix_path.cpp: avx2, avx512_bf16, amx; portable on request, it is
the avx2 path's bits without vectors): the one-row decode time relative to the avx2 path's, the verify
cost ratio v(T) = time(T rows) / time(1 row) for T = 1..32, and whether a T-row verify gives
bit-identical logits to T one-row decodes (exact mode). Rounds are interleaved (each round times every
path at every T, the path order rotating), best of `--repeats`, so drift on a shared machine hits all
alike. Then, unless --agreement-tokens 0: how often the bf16-product paths' greedy target agrees with the
avx2 path's on the 24 bench prompts (a different target: rounding the activations to bf16 changes it).

    .venv/bin/python bench/bench_decoder.py --json out/bench_decoder.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from tt_specdec.bench.harness import cpu_model_name
from tt_specdec.models.cpu_llama import CpuLlama, matrix_path, matrix_paths, set_threads

TS = tuple(range(1, 33))
EXACT_TS = (2, 8, 16, 32)


def exact(model, tokens: torch.Tensor, context: int, T: int) -> bool:
    """T rows in one forward == T one-row forwards, bit for bit."""
    pos = torch.tensor([context])
    verify = model.forward(tokens[:, context:context + T], pos)
    decode = torch.cat([model.forward(tokens[:, context + t:context + t + 1], pos + t) for t in range(T)], 1)
    return bool(torch.equal(verify, decode))


def timings(models: dict, tokens: torch.Tensor, context: int, repeats: int) -> dict:
    """{(path, T): best seconds of one T-row forward at position `context`}."""
    best = {(p, T): float("inf") for p in models for T in TS}
    names = list(models)
    for rep in range(repeats):
        print(f"[bench_decoder] round {rep + 1}/{repeats}", file=sys.stderr, flush=True)
        for p in names[rep % len(names):] + names[:rep % len(names)]:
            for T in TS:
                start = time.perf_counter()
                models[p].forward(tokens[:, context:context + T], torch.tensor([context]))
                best[p, T] = min(best[p, T], time.perf_counter() - start)
    return best


def agreement(models: dict, reference: str, tokenizer, n_tokens: int) -> dict:
    """Greedy agreement of each path's target with the reference path's on the 24 bench prompts:
    identical free-running outputs, and teacher-forced argmax agreement on the reference's own tokens."""
    from tt_specdec.api import chat_prompt
    from tt_specdec.bench.prompts_smollm2 import PROMPTS
    from tt_specdec.speculative import generate_plain

    prompts = [tokenizer.encode(chat_prompt(tokenizer, text)) for _, text in PROMPTS]
    outs = {p: generate_plain(m, prompts, max_new_tokens=n_tokens).tokens for p, m in models.items()}
    result = {}
    for p, m in models.items():
        if p == reference:
            continue
        agree = total = 0
        for prompt, ref_out in zip(prompts, outs[reference]):
            seq = torch.tensor([prompt + ref_out])
            m.allocate_cache(1, seq.shape[1])
            logits = m.forward(seq, torch.zeros(1, dtype=torch.long))[0]  # [L, V]: one forward, exact mode
            pred = logits[len(prompt) - 1:seq.shape[1] - 1].argmax(-1)
            agree += int((pred == seq[0, len(prompt):]).sum())
            total += len(ref_out)
        result[p] = {"identical_outputs": sum(a == b for a, b in zip(outs[p], outs[reference])),
                     "prompts": len(prompts), "teacher_forced_argmax_agreement": agree / total, "tokens": total}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", default="smollm2", choices=("smollm2", "tiny"))
    ap.add_argument("--context", type=int, default=256, help="tokens already in the cache")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="threads of the engine's pool")
    ap.add_argument("--paths", nargs="+", help="matrix paths (default: all this CPU runs but portable)")
    ap.add_argument("--torch", action="store_true", help="also the torch Llama in fp32 and bf16 (not exact)")
    ap.add_argument("--agreement-tokens", type=int, default=64, help="greedy tokens per prompt; 0: skip")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    from tt_specdec.api import load_torch_pair

    torch.set_num_threads(1)
    set_threads(args.threads)
    paths = args.paths or [p for p in matrix_paths() if p != "portable"]
    pair = load_torch_pair(args.pair, torch.float32)
    models = {p: CpuLlama(pair.target, p) for p in paths}  # one torch module, each path its own packing
    if args.torch:
        models |= {f"torch-{n}": load_torch_pair(args.pair, dt).target
                   for n, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    g = torch.Generator().manual_seed(0)
    vocab = pair.target.cfg.vocab_size
    tokens = torch.randint(0, vocab, (1, args.context + 2 * max(TS)), generator=g)
    for m in models.values():
        m.allocate_cache(1, tokens.shape[1])
        m.prefill(tokens[:, :args.context], torch.tensor([args.context]))
    best = timings(models, tokens, args.context, args.repeats)
    base = "avx2" if "avx2" in models else paths[0]
    rows = [{"path": p, "decode_ms": best[p, 1] * 1e3, "decode_vs_" + base: best[p, 1] / best[base, 1],
             "v": {T: best[p, T] / best[p, 1] for T in TS},
             "exact_verify": {T: exact(m, tokens, args.context, T) for T in EXACT_TS}} for p, m in models.items()]
    cpu = cpu_model_name()
    print(f"{args.pair}, context {args.context}, {args.threads} thread(s), best of {args.repeats}, CPU: {cpu}; "
          f"process default path {matrix_path()}; v(T) = time(T rows) / time(1 row)")
    shown = (2, 3, 4, 5, 8, 9, 12, 16, 17, 24, 32)
    print(f"{'path':12} {'decode ms':>9} {'x ' + base:>9}  " + " ".join(f"v({T})".rjust(5) for T in shown)
          + "  exact T=" + ",".join(map(str, EXACT_TS)))
    for r in rows:
        print(f"{r['path']:12} {r['decode_ms']:9.1f} {r['decode_vs_' + base]:9.2f}  "
              + " ".join(f"{r['v'][T]:5.2f}" for T in shown) + "  " + str(list(r["exact_verify"].values())))
    agree = None
    engines = {p: m for p, m in models.items() if p in paths}
    if args.agreement_tokens and base in engines and len(engines) > 1 and args.pair == "smollm2":
        agree = agreement(engines, base, pair.tokenizer, args.agreement_tokens)
        for p, a in agree.items():
            print(f"greedy {p} vs {base}, {args.agreement_tokens} tokens x {a['prompts']} prompts: identical outputs "
                  f"{a['identical_outputs']}/{a['prompts']}, teacher-forced argmax agreement "
                  f"{a['teacher_forced_argmax_agreement']:.4f} of {a['tokens']} tokens")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"pair": args.pair, "context": args.context, "repeats": args.repeats,
                                "threads": args.threads, "cpu_model": cpu, "matrix_paths_available": matrix_paths(),
                                "process_matrix_path": matrix_path(), "torch": torch.__version__},
                       "results": rows, "greedy_agreement_vs_" + base: agree}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
