"""Coupled sampling (Sampling(coupled=True)) next to speculative sampling's rejection rule, side by side
in one process on the SmolLM2 pair: for each drafter and k, whether the output is token for token the
target alone's for the same seed, the acceptance, and the wall-clock speedup over the same mode's target
alone; and what the Gumbel noise costs per position against a target decode step.

    nice .venv/bin/python bench/bench_coupled_sampling.py --prompts 24 --tokens 64 --json coupled.json

Every configuration decodes prompt i (seed + i) before any decodes prompt i+1, the order rotating per
prompt (as tt_specdec.bench.harness does), so machine drift hits them all alike. k auto measures each
drafter's cost model once per sampling mode (cached in $TT_SPECDEC_CACHE).
"""
from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from tt_specdec.api import SpeculativeDecoder, chat_prompt, load_pair
from tt_specdec.bench.harness import TARGET, Tally, build_drafters, ours, progress, prompt_set
from tt_specdec.sampling import Sampling, coupled_scores, process_logits
from tt_specdec.speculative.measure import measured

MODES = ("rejection", "coupled")


def noise_cost(pair, sampling: Sampling, ids: list[int], repeats: int = 50) -> dict:
    """Milliseconds per position of the coupled sample's extra work (coupled_scores on a real target row:
    top-p's support only, and the whole vocabulary) against process_logits and a target decode step."""
    target = pair.target
    target.allocate_cache(1, len(ids) + 2)
    logits = target.prefill(torch.tensor([ids]), torch.tensor([len(ids)]))  # [1, V]
    pos = torch.tensor([len(ids)])

    def ms(fn, n: int = repeats) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e3

    probs = process_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p)
    full = process_logits(logits, sampling.temperature)  # no top-p: the noise of every id
    seeds = torch.tensor([12345])
    return {"support_top_p": int((probs > 0).sum()), "vocab": int(logits.shape[-1]),
            "process_logits_ms": ms(lambda: process_logits(logits, sampling.temperature, sampling.top_k,
                                                           sampling.top_p)),
            "coupled_scores_top_p_ms": ms(lambda: coupled_scores(probs, seeds, pos)),
            "coupled_scores_full_vocab_ms": ms(lambda: coupled_scores(full, seeds, pos)),
            "target_decode_step_ms": ms(lambda: target.forward(torch.tensor([[ids[-1]]]), pos), repeats // 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--drafters", nargs="+", default=["model", "ngram", "lookup+eagle"])
    ap.add_argument("--k", nargs="+", default=["1", "4", "auto"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the report here")
    args = ap.parse_args()
    if args.json:
        open(args.json, "a").close()  # a bad path fails now, not after the run
    torch.set_num_threads(args.threads)
    ks = [k if k == "auto" else int(k) for k in args.k]
    pair = load_pair("smollm2")
    tok, eos = pair.tokenizer, pair.tokenizer.eos_token_id
    prompts = prompt_set("smollm2", args.prompts)
    ids = [tok.encode(chat_prompt(tok, text)) for _, text in prompts]
    drafters = build_drafters(pair, args.drafters)
    samplings = {mode: Sampling(args.temperature, 0, args.top_p, coupled=mode == "coupled") for mode in MODES}

    configs = []  # (mode, Config)
    for mode, sampling in samplings.items():
        configs.append((mode, ours(SpeculativeDecoder(pair, k=0, sampling=sampling, eos_token_id=eos), TARGET, 0)))
        for name, drafter in drafters.items():
            if "auto" in ks:
                progress(f"cost model of {name}, {mode} (measured once, then cached)")
                measured(pair.target, drafter, batch_size=1, k_max=8, sampling=sampling)
            configs += [(mode, ours(SpeculativeDecoder(pair, drafter, k, sampling, eos_token_id=eos), name, k))
                        for k in ks]
    progress(f"noise cost; warm-up of {len(configs)} configurations")
    noise = noise_cost(pair, samplings["coupled"], ids[0])
    for _, c in configs:
        c.run(ids[0], 4, args.seed)
    tallies = [Tally() for _ in configs]
    start = time.perf_counter()
    for i, ((category, _), p) in enumerate(zip(prompts, ids)):
        shift = i % len(configs)
        for j in itertools.chain(range(shift, len(configs)), range(shift)):
            tallies[j].add(category, configs[j][1].run(p, args.tokens, args.seed + i))
        elapsed = time.perf_counter() - start
        progress(f"prompt {i + 1}/{len(prompts)} done; elapsed {elapsed:.0f} s, "
                 f"about {elapsed / (i + 1) * (len(prompts) - i - 1):.0f} s left")

    base = {mode: t for (mode, c), t in zip(configs, tallies) if c.drafter == TARGET}
    results = []
    for (mode, c), t in zip(configs, tallies):
        b = base[mode]
        results.append({
            "mode": mode, "drafter": c.drafter, "k": c.k, "prompts": len(t.outputs), "new_tokens": t.stats.new_tokens,
            "seconds": t.seconds, "tokens_per_s": t.tokens_per_s,
            "acceptance_rate": t.stats.acceptance_rate if t.stats.drafted else None,
            "mean_accepted_length": t.stats.mean_accepted_length if c.drafter != TARGET else None,
            "speedup": t.tokens_per_s / b.tokens_per_s,  # over the same mode's target alone
            "identical_to_target": sum(x == y for x, y in zip(t.outputs, b.outputs)),
        })
    plain_same = sum(x == y for x, y in zip(base["rejection"].outputs, base["coupled"].outputs))
    meta = {"prompts": len(prompts), "max_new_tokens": args.tokens, "temperature": args.temperature,
            "top_p": args.top_p, "seed": args.seed, "threads": args.threads, "noise_cost": noise,
            "plain_coupled_over_plain_inverse_cdf_tok_s": base["coupled"].tokens_per_s / base["rejection"].tokens_per_s,
            "plain_outputs_equal_across_modes": plain_same}
    print(format_table(results, meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


def format_table(results: list[dict], meta: dict) -> str:
    head = f"{'drafter':14} {'k':>4} | {'rejection: accept':>17} {'speedup':>7} {'ident':>5} | " \
           f"{'coupled: accept':>15} {'speedup':>7} {'ident':>5}"
    lines = [head, "-" * len(head)]
    by = {(r["mode"], r["drafter"], str(r["k"])): r for r in results}
    for r in (r for r in results if r["mode"] == "rejection"):
        c = by[("coupled", r["drafter"], str(r["k"]))]
        cell = lambda x: f"{x['acceptance_rate']:.3f}" if x["acceptance_rate"] is not None else "-"  # noqa: E731
        lines.append(f"{r['drafter']:14} {str(r['k']):>4} | {cell(r):>17} {r['speedup']:>6.2f}x "
                     f"{r['identical_to_target']:>2}/{r['prompts']:<2} | {cell(c):>15} {c['speedup']:>6.2f}x "
                     f"{c['identical_to_target']:>2}/{c['prompts']:<2}")
    n = meta["noise_cost"]
    lines += ["", f"{meta['prompts']} prompts x up to {meta['max_new_tokens']} tokens, temperature "
                  f"{meta['temperature']}, top-p {meta['top_p']}, {meta['threads']} thread(s).",
              "speedup: tok/s over the same mode's target alone; ident: prompts whose output equals that target's.",
              f"plain decoding, coupled over inverse-CDF tok/s: {meta['plain_coupled_over_plain_inverse_cdf_tok_s']:.3f}; "
              f"their outputs equal on {meta['plain_outputs_equal_across_modes']}/{meta['prompts']} prompts "
              "(two exact samplers, different draws).",
              f"noise per position: {n['coupled_scores_top_p_ms']:.3f} ms on top-p's support ({n['support_top_p']} ids), "
              f"{n['coupled_scores_full_vocab_ms']:.3f} ms on all {n['vocab']}; process_logits {n['process_logits_ms']:.3f} ms; "
              f"target decode step {n['target_decode_step_ms']:.1f} ms."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
