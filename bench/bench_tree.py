"""Token trees against chains at equal verify rows: tokens per target step on the 24 bench prompts, greedy.

For each prompt the target's own greedy continuation G is decoded once (the CPU engine, the process's
matrix path). Lossless greedy speculative decoding must emit exactly G, so a step's outcome is fixed by
the proposal alone: the tree (or chain) proposed after prompt + G[:i] accepts the longest root path that
follows G[i:], as ops.accept_prefix.accept_tree does when the target's argmax at each node is G's next
token, and emits that many + 1. This measures acceptance exactly, with outputs identical to the target
alone by construction. --run also runs the best tree drafter for real in the speculative loop
(speculative_generate: a tree-masked verify per step, accept_tree, rollback's compaction; all prompts
as one batch) and counts outputs identical to the target alone. --policy runs it with the cost model's
TreePolicy choosing chain or tree and k, on the measured v(T) and on free rows (v(T) = 1).

    .venv/bin/python bench/bench_tree.py --json out/bench_tree.json
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
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
from tt_specdec.ops.accept_prefix import MAX_DRAFT
from tt_specdec.sampling import Sampling
from tt_specdec.speculative import generate_plain, speculative_generate
from tt_specdec.speculative.measure import measured
from tt_specdec.speculative.policy import TreePolicy


def as_tree(proposal) -> Tree:
    """A one-row tree Proposal (TreeDrafter's) as a Tree, root first."""
    tree = Tree.root(-1)
    for tok, parent in zip(proposal.tokens[0].tolist(), proposal.parents[0, 1:].tolist()):
        tree.add(parent, tok)
    return tree


def lookup_chain(context: list[int], rows: int) -> Tree:
    """Prompt lookup as a chain (NgramDrafter), for the comparison."""
    tree = Tree.root(context[-1])
    node = 0
    for tok in NgramDrafter().lookup(torch.tensor(context), rows - 1).tolist():
        node = tree.add(node, int(tok))
    return tree


def steps_for(drafter, prompt: list[int], greedy: list[int], rows: int) -> int:
    """Target steps to emit `greedy` after `prompt` with `drafter`'s proposals of `rows` rows (a TreeDrafter,
    or lookup_chain)."""
    cache_len = len(prompt) + len(greedy) + rows + 1
    if isinstance(drafter, TreeDrafter):
        drafter.reset(1, cache_len)
    i = steps = 0
    while i < len(greedy):
        context = prompt + greedy[:i]
        if isinstance(drafter, TreeDrafter):
            tree = as_tree(drafter.propose(torch.tensor([context]), torch.tensor([len(context)]), rows - 1,
                                           Sampling(), torch.zeros(1, dtype=torch.long)))
        else:
            tree = drafter(context, rows)
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
    ap.add_argument("--policy", action="store_true",
                    help="also run the best-first + lookup tree drafter one prompt at a time with TreePolicy (k auto), on "
                         "this machine's measured cost model and with v(T) = 1 (free verify rows, a 32-row tile): "
                         "tokens per target step and the shapes it picks")
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
        "chain: prompt lookup": ("chain", lookup_chain),
        "tree: draft greedy + lookup branch": ("tree", TreeDrafter(pair.draft, top_children=1, lookup=True)),
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
    if args.run:  # the speculative loop itself, all prompts in one batch of rows
        for rows in args.rows:
            d = TreeDrafter(pair.draft, top_children=4, lookup=True)
            t0 = time.perf_counter()
            gen = speculative_generate(pair.target, d, prompts, k=rows - 1, max_new_tokens=args.tokens,
                                       eos_token_id=tok.eos_token_id)
            same = sum(o == g for o, g in zip(gen.tokens, greedy))
            real.append({"rows": rows, "identical_outputs": same, "prompts": len(prompts), "steps": gen.stats.steps,
                         "tokens_per_step": gen.stats.mean_accepted_length, "seconds": time.perf_counter() - t0})
            print(f"[bench_tree] real tree run, rows {rows}: {same}/{len(prompts)} identical, "
                  f"{real[-1]['tokens_per_step']:.2f} tokens/step", file=sys.stderr, flush=True)
    picked = []
    if args.policy:
        d = TreeDrafter(pair.draft, top_children=4, lookup=True)
        here = measured(pair.target, d, batch_size=1, k_max=MAX_DRAFT)
        for name, cost in (("measured v(T)", here), ("v(T) = 1", dataclasses.replace(here, v=(1.0,) * len(here.v)))):
            gens = [speculative_generate(pair.target, d, [p], k=MAX_DRAFT, max_new_tokens=args.tokens,
                                         eos_token_id=tok.eos_token_id, policy=TreePolicy(cost, MAX_DRAFT))
                    for p in prompts]
            shapes = collections.Counter()
            for g in gens:
                shapes.update(g.stats.shape_steps)
            picked.append({"cost": name, "v": list(cost.v), "identical_outputs": sum(g.tokens[0] == r for g, r in
                                                                                      zip(gens, greedy)),
                           "tokens_per_step": sum(g.stats.emitted for g in gens) / sum(g.stats.row_steps for g in gens),
                           "shapes": dict(shapes.most_common())})
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
    for r in picked:
        print(f"TreePolicy with {r['cost']}: {r['tokens_per_step']:.2f} tokens/step, {r['identical_outputs']}/"
              f"{len(prompts)} identical; shapes (k drafts, w children per node; w=1 a chain), most frequent: "
              + ", ".join(f"{shape} {n}" for shape, n in list(r["shapes"].items())[:6]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"prompts": len(prompts), "tokens": args.tokens, "emitted": emitted,
                                "cpu_model": cpu_model_name(), "matrix_path": pair.target.matrix_path},
                       "results": results, "real_tree_runs": real, "policy": picked}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
