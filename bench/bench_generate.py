"""Wall-clock speedup of speculative decoding over the target alone, side by side in one process:
our target alone, every drafter the pair can build at each k, and transformers' own assisted
generation and prompt lookup on the same weights (when transformers is installed).

    .venv/bin/python bench/bench_generate.py --json out/bench_generate.json --plot out/bench_generate.png
    .venv/bin/python bench/bench_generate.py --prompts 2 --max-new-tokens 16        # a quick look

Same flags as `tt-specdec bench` (defaults: SmolLM2 pair, 24 prompts in 4 categories, chat
template, 128 new tokens, greedy, --k 1,2,4,auto). Progress goes to stderr, the table to stdout.
"""
import sys

from tt_specdec.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
