"""Two revisions of tt_specdec side by side on this machine: the target alone and one drafter's speculative
decoding, tokens per second and their ratios (new / old), runs interleaved so that drift hits both alike.

The old revision is checked out (git worktree, detached) and built in place once under
$TT_SPECDEC_CACHE/revisions/<sha>/ (its C++ extensions with this interpreter); each revision keeps its own
cache folder there, so neither reads or heals the other's cost models. Each run is a fresh process per
revision (`--rounds` of them, the order alternating): it loads the SmolLM2 pair, warms up, decodes the
first `--prompts` bench prompts `--tokens` tokens with the target alone and then with `--drafter` at k
"auto", and checks that the speculative output equals its own target alone (greedy). Median over rounds.

    .venv/bin/python bench/bench_revisions.py --old d3f0a6d --old-march znver3 --new-env TT_SPECDEC_CPU_PATH=avx2 \
        --json out/rev.json

(d3f0a6d: main before the CPU engine chose its matrix path at run time, built with -march=native, so on an
AVX-512 CPU its "AVX2" kernels used 32 vector registers; --old-march znver3 builds it as an AVX2-only EPYC
does. TT_SPECDEC_CPU_PATH=avx2 runs this revision's AVX2 path, the one AVX2 machines get.)
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

# One run inside a revision's checkout: only API that every revision since the SmolLM2 pair has.
CHILD = r"""
import json, sys, time
import tt_specdec
from tt_specdec.api import SpeculativeDecoder
from tt_specdec.bench.harness import prompt_set
from tt_specdec.speculative import generate_plain
drafter, n_prompts, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pair = tt_specdec.load_pair("smollm2")
tok = pair.tokenizer
prompts = [tok.encode(tok.apply_chat_template([{"role": "user", "content": t}])) for _, t in prompt_set("smollm2", n_prompts)]
spec = SpeculativeDecoder(pair, drafter, "auto")
generate_plain(pair.target, [prompts[0]], max_new_tokens=8, eos_token_id=tok.eos_token_id)
spec.generate_ids([prompts[0]], 8)  # the cost model is measured (or read) here, not in the timed runs
out = {"plain_s": 0.0, "spec_s": 0.0, "tokens": 0, "identical": 0}
for p in prompts:
    t0 = time.perf_counter()
    plain = generate_plain(pair.target, [p], max_new_tokens=tokens, eos_token_id=tok.eos_token_id).tokens[0]
    t1 = time.perf_counter()
    fast = spec.generate_ids([p], tokens).tokens[0]
    t2 = time.perf_counter()
    out["plain_s"] += t1 - t0
    out["spec_s"] += t2 - t1
    out["tokens"] += len(plain)
    out["identical"] += int(list(fast) == list(plain))
print("RESULT " + json.dumps(out))
"""


def git(*args: str, cwd: pathlib.Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def cache_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TT_SPECDEC_CACHE", pathlib.Path.home() / ".cache" / "tt_specdec"))


def checkout(rev: str, march: str | None = None) -> pathlib.Path:
    """A built checkout of `rev` (reused when its build finished before); march: its CMakeLists' -march=native
    replaced by -march=<march>, to build it as a machine of that kind would (e.g. znver3: an AVX2-only EPYC)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    root = cache_root() / "revisions" / (sha if march is None else f"{sha}-{march}")
    tree, done = root / "src", root / "built"
    if not done.is_file():
        if tree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
            git("worktree", "prune")
        root.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "--detach", str(tree), sha)
        if march is not None:
            cmake = tree / "CMakeLists.txt"
            text = cmake.read_text()
            if "-march=native" not in text:
                raise SystemExit(f"--old-march: got {march!r}, but {rev}'s CMakeLists.txt has no -march=native to replace")
            cmake.write_text(text.replace("-march=native", f"-march={march}"))
        print(f"building {rev} ({sha[:10]}) in {tree}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, check=True,
                       stdout=subprocess.DEVNULL)
        done.write_text(sha + "\n")
    return tree


def run_once(tree: pathlib.Path, cache: pathlib.Path, env_extra: dict[str, str], args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "TT_SPECDEC_CACHE": str(cache), "OMP_NUM_THREADS": "1",
           **env_extra}
    proc = subprocess.run([sys.executable, "-c", CHILD, args.drafter, str(args.prompts), str(args.tokens)],
                          cwd=tree, env=env, capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"run in {tree} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def parse_env(items: list[str], name: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{name}: got {item!r}, expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, help="the older revision (a commit, tag or branch)")
    p.add_argument("--new", default=None, help="the newer revision (default: this working tree as it is)")
    p.add_argument("--old-march", default=None,
                   help="build the old revision with -march=<this> in place of -march=native (e.g. znver3)")
    p.add_argument("--old-env", action="append", default=[], help="KEY=VALUE for the old revision's runs")
    p.add_argument("--new-env", action="append", default=[], help="KEY=VALUE for the new revision's runs")
    p.add_argument("--drafter", default="lookup+eagle", help="a drafter both revisions have")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from tt_specdec.bench.harness import cpu_model_name

    sides = {"old": (checkout(args.old, args.old_march), parse_env(args.old_env, "--old-env")),
             "new": (REPO if args.new is None else checkout(args.new), parse_env(args.new_env, "--new-env"))}
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
            tree, env = sides[side]
            cache = cache_root() / "revisions" / ("worktree" if tree == REPO else tree.parent.name) / "cache"
            res = run_once(tree, cache, env, args)
            runs[side].append(res)
            print(f"round {r + 1} {side}: target alone {res['tokens'] / res['plain_s']:.1f} tok/s, {args.drafter} "
                  f"{res['tokens'] / res['spec_s']:.1f} tok/s, identical {res['identical']}/{args.prompts}",
                  file=sys.stderr, flush=True)

    def med(side: str, key: str) -> float:
        return statistics.median(x["tokens"] / x[key] for x in runs[side])

    summary = {side: {"target_alone_tok_s": round(med(side, "plain_s"), 2), "spec_tok_s": round(med(side, "spec_s"), 2),
                      "speedup": round(statistics.median(x["plain_s"] / x["spec_s"] for x in runs[side]), 3),
                      "identical": [x["identical"] for x in runs[side]]} for side in runs}
    result = {"cpu": cpu_model_name(), "old": args.old, "old_march": args.old_march, "new": args.new or "working tree", "drafter": args.drafter,
              "old_env": sides["old"][1], "new_env": sides["new"][1], "prompts": args.prompts, "tokens": args.tokens,
              "rounds": runs, "summary": summary,
              "new_over_old_target_alone": round(summary["new"]["target_alone_tok_s"] / summary["old"]["target_alone_tok_s"], 3),
              "new_over_old_spec": round(summary["new"]["spec_tok_s"] / summary["old"]["spec_tok_s"], 3)}
    print(f"{result['cpu']}; {args.prompts} prompts x {args.tokens} tokens, median of {args.rounds} interleaved rounds")
    for side in ("old", "new"):
        s = summary[side]
        print(f"{side} ({result[side]}, env {sides[side][1]}): target alone {s['target_alone_tok_s']} tok/s, "
              f"{args.drafter} {s['spec_tok_s']} tok/s = {s['speedup']}x, identical {s['identical']}")
    print(f"new / old: target alone {result['new_over_old_target_alone']}x, {args.drafter} {result['new_over_old_spec']}x")
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
