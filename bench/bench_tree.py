"""Token trees against chains at equal verify rows: tokens per target step on the 24 bench prompts, greedy.

Drafters: the distilled draft model (TreeDrafter) and the shipped EAGLE-3 head (EagleTreeDrafter; its chain:
one child per node, EagleDrafter's greedy chain; and lookup+eagle3, the default drafter, lookup first, as a
chain), each as chains and as best-first trees, with and without the prompt-lookup branch.

For each prompt the target's own greedy continuation G is decoded once (the CPU engine, the process's
matrix path). Lossless greedy speculative decoding must emit exactly G, so a step's outcome is fixed by
the proposal alone: the tree (or chain) proposed after prompt + G[:i] accepts the longest root path that
follows G[i:], as ops.accept_prefix.accept_tree does when the target's argmax at each node is G's next
token, and emits that many + 1. This measures acceptance exactly, with outputs identical to the target
alone by construction. --run also runs the best tree drafter for real in the speculative loop
(speculative_generate: a tree-masked verify per step, accept_tree, rollback's compaction; all prompts
as one batch; the draft model's tree and the EAGLE-3 head's) and counts outputs identical to the target alone. --policy runs it with the cost model's
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
from tt_specdec.api import DRAFTERS
from tt_specdec.drafters import EagleTreeDrafter, LookupFirstDrafter
from tt_specdec.drafters.ngram import NgramDrafter
from tt_specdec.drafters.tree import Tree, TreeDrafter
from tt_specdec.ops.accept_prefix import MAX_DRAFT
from tt_specdec.sampling import Sampling
from tt_specdec.speculative import generate_plain, speculative_generate
from tt_specdec.speculative.measure import measured
from tt_specdec.speculative.policy import TreePolicy


def as_tree(proposal, root: int) -> Tree:
    """A one-row Proposal as a Tree, root first: a tree drafter's, or a chain (its drafts up to the first the
    drafter does not offer: confidence 0, as LookupFirstDrafter's padding past a short copy)."""
    tree = Tree.root(root)
    tokens = proposal.tokens[0].tolist()
    if proposal.parents is None:
        conf = [1.0] * len(tokens) if proposal.confidence is None else proposal.confidence[0].tolist()
        offered = next((t for t, c in enumerate(conf) if c == 0), len(tokens))
        parents = list(range(offered))
        tokens = tokens[:offered]
    else:
        parents = proposal.parents[0, 1:].tolist()
    for tok, parent in zip(tokens, parents):
        tree.add(parent, tok)
    return tree


def lookup_chain(context: list[int], rows: int) -> Tree:
    """Prompt lookup as a chain (NgramDrafter), for the comparison."""
    tree = Tree.root(context[-1])
    node = 0
    for tok in NgramDrafter().lookup(torch.tensor(context), rows - 1).tolist():
        node = tree.add(node, int(tok))
    return tree


def steps_for(drafter, target, prompt: list[int], greedy: list[int], rows: int) -> int:
    """Target steps to emit `greedy` after `prompt` with `drafter`'s proposals of `rows` rows (a Drafter, or
    lookup_chain). A drafter reading the target's features gets them from one target forward over prompt +
    greedy (the CPU engine: the bits decoding writes), as the loop leaves them after each step."""
    cache_len = len(prompt) + len(greedy) + rows + 1
    if not callable(getattr(drafter, "propose", None)):
        propose = lambda context: drafter(context, rows)  # noqa: E731
    else:
        if drafter.needs_target_hidden:
            target.allocate_cache(1, cache_len, keep_hidden=drafter.needs_target_hidden)
            target.forward(torch.tensor([prompt + greedy[:-1]]), torch.tensor([0]))
        drafter.reset(1, cache_len)
        propose = lambda context: as_tree(drafter.propose(  # noqa: E731
            torch.tensor([context]), torch.tensor([len(context)]), rows - 1, Sampling(),
            torch.zeros(1, dtype=torch.long)), context[-1])
    i = steps = 0
    while i < len(greedy):
        tree = propose(prompt + greedy[:i])
        assert len(tree) <= rows
        i += tree.accepted(greedy[i:]) + 1
        steps += 1
    return steps


def lookup_eagle3_chain(pair) -> LookupFirstDrafter:
    """lookup+eagle3 (the default drafter) drafting all k asked, however unsure (its head stops at no reach)."""
    drafter = DRAFTERS["lookup+eagle3"](pair)
    drafter.stop_reach = drafter.fallback.stop_reach = 0.0
    return drafter


def tree_drafters(pair, which: list[str]) -> dict[str, tuple[str, object]]:
    """name -> (kind, drafter) for the draft model's and the EAGLE-3 head's chains and trees."""
    drafters = {"chain: prompt lookup": ("chain", lookup_chain)}
    if "model" in which:
        drafters.update({
            "chain: draft greedy": ("chain", TreeDrafter(pair.draft, top_children=1)),
            "tree: draft greedy + lookup branch": ("tree", TreeDrafter(pair.draft, top_children=1, lookup=True)),
            "tree: draft best-first": ("tree", TreeDrafter(pair.draft, top_children=4)),
            "tree: draft best-first + lookup branch": ("tree", TreeDrafter(pair.draft, top_children=4, lookup=True)),
        })
    if "eagle3" in which:
        head = DRAFTERS["eagle3"](pair).head
        drafters.update({
            "chain: eagle3 greedy": ("chain", EagleTreeDrafter(pair.target, head, top_children=1)),
            "chain: lookup+eagle3 (lookup first)": ("chain", lookup_eagle3_chain(pair)),
            "tree: eagle3 greedy + lookup branch": ("tree", EagleTreeDrafter(pair.target, head, top_children=1,
                                                                             lookup=True)),
            "tree: eagle3 best-first": ("tree", EagleTreeDrafter(pair.target, head, top_children=4)),
            "tree: eagle3 best-first + lookup branch": ("tree", EagleTreeDrafter(pair.target, head, top_children=4,
                                                                                 lookup=True)),
        })
    return drafters


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rows", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--drafters", nargs="+", choices=["model", "eagle3"], default=["model", "eagle3"],
                    help="whose chains and trees: the distilled draft model's, the EAGLE-3 head's (default both)")
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
    drafters = tree_drafters(pair, args.drafters)
    results = []
    for rows in args.rows:
        for name, (kind, d) in drafters.items():
            t0 = time.perf_counter()
            steps = sum(steps_for(d, pair.target, p, g, rows) for p, g in zip(prompts, greedy))
            results.append({"rows": rows, "drafter": name, "kind": kind, "steps": steps,
                            "tokens_per_step": emitted / steps})
            print(f"[bench_tree] rows {rows:2d} {name:40s} {emitted / steps:5.2f} tokens/step "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    real = []
    if args.run:  # the speculative loop itself, all prompts in one batch of rows
        real_drafters = {"model": ("draft best-first + lookup", "lookup+tree"),
                         "eagle3": ("eagle3 best-first + lookup", "lookup+eagle3-tree")}
        for rows in args.rows:
            for name, registered in (real_drafters[w] for w in args.drafters):
                t0 = time.perf_counter()
                gen = speculative_generate(pair.target, DRAFTERS[registered](pair), prompts, k=rows - 1,
                                           max_new_tokens=args.tokens, eos_token_id=tok.eos_token_id)
                same = sum(o == g for o, g in zip(gen.tokens, greedy))
                real.append({"rows": rows, "drafter": name, "identical_outputs": same, "prompts": len(prompts),
                             "steps": gen.stats.steps, "tokens_per_step": gen.stats.mean_accepted_length,
                             "seconds": time.perf_counter() - t0})
                print(f"[bench_tree] real tree run, {name}, rows {rows}: {same}/{len(prompts)} identical, "
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
        for family in args.drafters:  # each drafter's own chains against its own trees
            own = [r for r in mine if family in r["drafter"] or ("draft " in r["drafter"] and family == "model")
                   or r["drafter"] == "chain: prompt lookup"]
            chain = max((r for r in own if r["kind"] == "chain"), key=lambda r: r["tokens_per_step"])
            tree = max((r for r in own if r["kind"] == "tree"), key=lambda r: r["tokens_per_step"])
            print(f"rows {rows:2d} {family}: best chain {chain['tokens_per_step']:.2f} ({chain['drafter']}), best tree "
                  f"{tree['tokens_per_step']:.2f} ({tree['drafter']}), tree / chain "
                  f"{tree['tokens_per_step'] / chain['tokens_per_step']:.2f}")
        for r in mine:
            print(f"    {r['drafter']:40s} {r['tokens_per_step']:.2f}")
        for r in (r for r in real if r["rows"] == rows):
            print(f"    run for real ({r['drafter']}): {r['identical_outputs']}/{r['prompts']} outputs "
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
