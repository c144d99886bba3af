"""Wall-clock speedup of speculative decoding over the target alone, measured side by side.

    .venv/bin/python bench/bench_generate.py --k 1,2,4,8 --json out/bench_generate.json --plot out/bench_generate.png

Same flags as `tt-specdec bench`.
"""
import sys

from tt_specdec.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
