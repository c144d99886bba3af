"""Token trees against chains at equal verify rows: tokens per target step on the 24 bench prompts, greedy.

For each prompt the target's own greedy continuation G is decoded once (the CPU engine, the process's
matrix path). Lossless greedy speculative decoding must emit exactly G, so a step's outcome is fixed by
the proposal alone: the tree (or chain) proposed after prompt + G[:i] accepts the longest root path that
follows G[i:], as ops.accept_prefix.accept_tree does when the target's argmax at each node is G's next
token, and emits that many + 1. This measures acceptance exactly, with outputs identical to the target
alone by construction. --run also runs the best tree drafter for real on the CPU engine (a tree-masked
verify per step, accept_tree, rollback's compaction) and counts outputs identical to the target alone.

    .venv/bin/python bench/bench_tree.py --json out/bench_tree.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from tt_specdec import load_pair
from tt_specdec.api import chat_prompt
from tt_specdec.bench.harness import cpu_model_name
from tt_specdec.bench.prompts_smollm2 import PROMPTS
from tt_specdec.drafters.ngram import NgramDrafter
from tt_specdec.drafters.tree import Tree, TreeDrafter
from tt_specdec.ops import rollback_kv
from tt_specdec.ops.accept_prefix import accept_tree
from tt_specdec.speculative import generate_plain


class LookupChain:
    """Prompt lookup as a chain (NgramDrafter), for the comparison."""

    def __init__(self):
        self.ngram = NgramDrafter()

    def start(self, context, cache_len):
        pass

    def propose(self, context: list[int], rows: int) -> Tree:
        tree = Tree.root(context[-1])
        node = 0
        for tok in self.ngram.lookup(torch.tensor(context), rows - 1).tolist():
            node = tree.add(node, int(tok))
        return tree


def tree_generate(target, drafter, prompt: list[int], max_new_tokens: int, rows: int,
                  eos: int | None) -> tuple[list[int], int]:
    """Greedy tree speculative decoding on the CPU engine, one sequence: propose a tree, verify it in one
    tree-masked forward (CpuLlama.forward_tree), accept the longest accepted path (ops accept_tree),
    compact its KV (ops rollback_kv). Returns (the new tokens, target steps)."""
    target.allocate_cache(1, len(prompt) + max_new_tokens + rows + 1)
    target.forward(torch.tensor([prompt[:-1]]), torch.tensor([0]), with_logits=False)  # all but the newest
    drafter.start(prompt, len(prompt) + max_new_tokens + rows + 1)
    out: list[int] = []
    steps = 0
    while len(out) < max_new_tokens and (eos is None or eos not in out):
        context = prompt + out
        tree = drafter.propose(context, rows)
        tokens, parents, pos = torch.tensor([tree.tokens]), torch.tensor([tree.parents]), torch.tensor([len(context) - 1])
        logits = target.forward_tree(tokens, pos, parents)  # [1, T, V]
        n, emitted, slots = accept_tree(logits, tokens, parents)
        rollback_kv(pos, tokens[:, 0], n, emitted, accepted_slots=slots, k_cache=target.k_cache,
                    v_cache=target.v_cache)  # the accepted path's KV to pos .. pos + n
        out += emitted[0, :int(n) + 1].tolist()
        steps += 1
    if eos is not None and eos in out:
        out = out[:out.index(eos) + 1]
    return out[:max_new_tokens], steps


def steps_for(drafter, prompt: list[int], greedy: list[int], rows: int) -> int:
    """Target steps to emit `greedy` after `prompt` with `drafter`'s proposals of `rows` rows."""
    drafter.start(prompt, len(prompt) + len(greedy) + rows + 1)
    i = steps = 0
    while i < len(greedy):
        tree = drafter.propose(prompt + greedy[:i], rows)
        assert len(tree) <= rows
        i += tree.accepted(greedy[i:]) + 1
        steps += 1
    return steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rows", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--run", action="store_true",
                    help="also run the best-first + lookup tree for real (tree-masked verify on the CPU engine, "
                         "accept_tree, rollback compaction) and check its outputs equal the target alone's")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pair = load_pair("smollm2")
    tok = pair.tokenizer
    prompts = [tok.encode(chat_prompt(tok, text)) for _, text in PROMPTS[:args.prompts]]
    greedy = generate_plain(pair.target, prompts, max_new_tokens=args.tokens, eos_token_id=tok.eos_token_id).tokens
    emitted = sum(len(g) for g in greedy)
    drafters = {
        "chain: draft greedy": ("chain", TreeDrafter(pair.draft, top_children=1)),
        "chain: prompt lookup": ("chain", LookupChain()),
        "chain: lookup, then draft greedy": ("chain", TreeDrafter(pair.draft, top_children=1, lookup=True)),
        "tree: draft best-first": ("tree", TreeDrafter(pair.draft, top_children=4)),
        "tree: draft best-first + lookup branch": ("tree", TreeDrafter(pair.draft, top_children=4, lookup=True)),
    }
    results = []
    for rows in args.rows:
        for name, (kind, d) in drafters.items():
            t0 = time.perf_counter()
            steps = sum(steps_for(d, p, g, rows) for p, g in zip(prompts, greedy))
            results.append({"rows": rows, "drafter": name, "kind": kind, "steps": steps,
                            "tokens_per_step": emitted / steps})
            print(f"[bench_tree] rows {rows:2d} {name:40s} {emitted / steps:5.2f} tokens/step "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    real = []
    if args.run:
        for rows in args.rows:
            d = TreeDrafter(pair.draft, top_children=4, lookup=True)
            t0 = time.perf_counter()
            runs = [tree_generate(pair.target, d, p, args.tokens, rows, tok.eos_token_id) for p in prompts]
            same = sum(o == g for (o, _), g in zip(runs, greedy))
            steps = sum(st for _, st in runs)
            real.append({"rows": rows, "identical_outputs": same, "prompts": len(prompts), "steps": steps,
                         "tokens_per_step": sum(len(o) for o, _ in runs) / steps,
                         "seconds": time.perf_counter() - t0})
            print(f"[bench_tree] real tree run, rows {rows}: {same}/{len(prompts)} identical, "
                  f"{real[-1]['tokens_per_step']:.2f} tokens/step", file=sys.stderr, flush=True)
    print(f"smollm2, {len(prompts)} prompts x up to {args.tokens} greedy tokens ({emitted} in all), CPU: "
          f"{cpu_model_name()}, target path {pair.target.matrix_path}; tokens per target step")
    for rows in args.rows:
        mine = [r for r in results if r["rows"] == rows]
        chain = max((r for r in mine if r["kind"] == "chain"), key=lambda r: r["tokens_per_step"])
        tree = max((r for r in mine if r["kind"] == "tree"), key=lambda r: r["tokens_per_step"])
        print(f"rows {rows:2d}: best chain {chain['tokens_per_step']:.2f} ({chain['drafter']}), best tree "
              f"{tree['tokens_per_step']:.2f} ({tree['drafter']}), tree / chain {tree['tokens_per_step'] / chain['tokens_per_step']:.2f}")
        for r in mine:
            print(f"    {r['drafter']:40s} {r['tokens_per_step']:.2f}")
        for r in (r for r in real if r["rows"] == rows):
            print(f"    run for real (tree: best-first + lookup): {r['identical_outputs']}/{r['prompts']} outputs "
                  f"identical to the target alone, {r['tokens_per_step']:.2f} tokens/step")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"prompts": len(prompts), "tokens": args.tokens, "emitted": emitted,
                                "cpu_model": cpu_model_name(), "matrix_path": pair.target.matrix_path},
                       "results": results, "real_tree_runs": real}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
