"""SmolLM2's EAGLE head next to the distilled draft model, same run: greedy acceptance and mean
accepted length at k = 1..6 per prompt category on the held-out bench prompts, every output checked
against the target alone (lossless), and each drafter's cost ratio c = one draft step / one target
decode step (speculative/cost.py `measure`, both drafters timed against the same target in this process),
with S = E (1 + o0) / (d0 + k·c + v(k+1) + o) predicted from them.

    nice -n 10 .venv/bin/python bench/bench_eagle_smollm2.py --threads 1 --tokens 64 --json eagle.json
    nice -n 10 .venv/bin/python bench/bench_eagle_smollm2.py --vocab-sweep 2048,4096,8192,16384,49152 --cost-only
    nice -n 10 .venv/bin/python bench/bench_eagle_smollm2.py --k 5 --head3 tt_specdec/models/weights/smollm2_eagle3.safetensors --no-model

The target and the draft model run on load_pair's default CPU engine (weights rounded to bf16, fp32
compute: the weights the head was trained on). --vocab-sweep: the head restricted to the N most frequent tokens
(a prefix of its ranking; beyond the shipped N the extra rows only time the cost), c and acceptance per N.
--head3: an EAGLE-3 head (tools/train_eagle3_smollm2.py) beside the EAGLE head, same prompts and target.
"""
from __future__ import annotations

import argparse
import json

import torch

import tt_specdec
from tt_specdec.drafters import ModelDrafter
from tt_specdec.drafters.eagle import SMOLLM2_EAGLE, EagleDrafter, load_head
from tt_specdec.drafters.eagle3 import Eagle3Drafter, load_head3
from tt_specdec.models.cpu_llama import matrix_path
from tt_specdec.speculative import generate_plain, speculative_generate
from tt_specdec.bench.harness import merge, prompt_set
from tt_specdec.speculative.measure import measure
from tt_specdec.speculative.stats import Stats


def stats_row(s: Stats) -> dict:
    return {"acceptance": round(s.acceptance_rate, 4), "mean_accepted_length": round(s.mean_accepted_length, 3),
            "accepted": s.accepted, "drafted": s.drafted,
            "acceptance_per_position": [round(a, 3) for a in s.acceptance_per_position]}


def head_with_vocabulary(head, n: int, vocab_size: int):
    """The head restricted to its n most frequent tokens; past its own list, the other ids in order."""
    ids = head.vocab_ids
    if n > len(ids):
        rest = torch.ones(vocab_size, dtype=torch.bool)
        rest[ids] = False
        ids = torch.cat([ids, rest.nonzero().flatten()[:n - len(ids)]])
    return head.with_vocabulary(ids[:n])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokens", type=int, default=64, help="new tokens per prompt")
    p.add_argument("--prompts", type=int, default=24, help="first n bench prompts, round-robin over categories")
    p.add_argument("--k", default="1,2,3,4,5,6", help="draft lengths")
    p.add_argument("--head", default=str(SMOLLM2_EAGLE), help="EAGLE head safetensors")
    p.add_argument("--head3", help="also an EAGLE-3 head (tools/train_eagle3_smollm2.py) safetensors")
    p.add_argument("--head3-vocab", type=int, default=None, help="the EAGLE-3 head's N most frequent tokens only")
    p.add_argument("--no-model", action="store_true", help="leave out the distilled draft model")
    p.add_argument("--vocab-sweep", help="comma-separated vocabulary sizes N: the EAGLE head only, per N")
    p.add_argument("--cost-only", action="store_true", help="only the cost ratios, no generation")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.k.split(",")]
    pair = tt_specdec.load_pair("smollm2")  # the CPU engine: bf16-rounded weights, fp32 compute
    target, tok = pair.target, pair.tokenizer
    head = load_head(args.head)
    if args.vocab_sweep:
        drafters = {f"eagle N={n}": EagleDrafter(target, head_with_vocabulary(head, n, target.vocab_size))
                    for n in map(int, args.vocab_sweep.split(","))}
    else:
        drafters = {f"eagle N={len(head.vocab_ids)}": EagleDrafter(target, head)}
        if args.head3:
            head3 = load_head3(args.head3, target.max_seq_len)
            if args.head3_vocab:
                head3 = head3.with_vocabulary(head3.vocab_ids[:args.head3_vocab])
            drafters[f"eagle3 N={len(head3.vocab_ids)}"] = Eagle3Drafter(target, head3)
        if not args.no_model:
            drafters["model"] = ModelDrafter(pair.draft)
    res: dict = {"threads": args.threads, "tokens": args.tokens, "k": ks, "head": args.head, "head3": args.head3,
                 "matrix_path": matrix_path(), "drafters": {}}
    costs = {}
    for name, drafter in drafters.items():
        cost = measure(target, drafter, k_max=max(ks + [2]))
        costs[name] = cost
        res["drafters"][name] = {"c": round(cost.c, 4), "d0": round(cost.d0, 4), "v": [round(x, 3) for x in cost.v]}
        print(f"{name}: c {cost.c:.4f} d0 {cost.d0:.4f} v {[round(x, 2) for x in cost.v]}", flush=True)
    if args.cost_only:
        ks = []

    totals = {(name, k): Stats() for name in drafters for k in ks}
    per_cat = {(name, k): {} for name in drafters for k in ks}
    lossless = True
    for cat, text in prompt_set("smollm2", args.prompts) if ks else []:
        ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}]))
        plain = generate_plain(target, [ids], max_new_tokens=args.tokens, eos_token_id=tok.eos_token_id)
        line = []
        for name, drafter in drafters.items():
            for k in ks:
                gen = speculative_generate(target, drafter, [ids], k=k, max_new_tokens=args.tokens,
                                           eos_token_id=tok.eos_token_id)
                if gen.tokens != plain.tokens:
                    lossless = False
                    print(f"NOT LOSSLESS: {name} k={k} on {text[:40]!r}", flush=True)
                merge(totals[name, k], gen.stats)
                merge(per_cat[name, k].setdefault(cat, Stats()), gen.stats)
            line.append(f"{name} k={ks[-1]} {gen.stats.acceptance_rate:.2f}")
        print(f"{cat:14s} {'; '.join(line)}  {text[:40]!r}", flush=True)
    res["lossless"] = lossless if ks else None
    for name in drafters:
        rows = res["drafters"][name]["k"] = {}
        for k in ks:
            s = totals[name, k]
            row = stats_row(s)
            # S = E (1 + o0) / (d0 + k·c + v(k+1) + o), E the measured mean accepted length
            row["predicted_speedup"] = round(costs[name].speedup_at_length(s.mean_accepted_length, k), 3)
            row["per_category"] = {c: stats_row(st) for c, st in per_cat[name, k].items()}
            rows[k] = row
            cats = " ".join(f"{c} {st.acceptance_rate:.3f}" for c, st in per_cat[name, k].items())
            print(f"{name:14s} k={k}: acceptance {row['acceptance']:.3f} mean accepted length "
                  f"{row['mean_accepted_length']:.2f} predicted S {row['predicted_speedup']:.2f} | {cats}", flush=True)
    if ks:
        print(f"lossless (greedy output = target alone on every prompt, drafter and k): {lossless}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
