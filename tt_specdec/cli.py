"""`tt-specdec generate | bench | info`."""
from __future__ import annotations

import argparse
import platform
import sys


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass to keep (1 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pair", default="tiny", help="shipped model pair (default: tiny)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1 for the tiny pair, else torch's)")


# models this small are bound by per-op overhead: a second thread only adds synchronisation
DEFAULT_THREADS = {"tiny": 1}


def set_threads(args) -> None:
    import torch

    threads = args.threads or DEFAULT_THREADS.get(args.pair)
    if threads:
        torch.set_num_threads(threads)


def parse_ks(text: str) -> list[int | str]:
    return [parse_k(x) for x in text.split(",") if x]


def parse_k(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected an int or 'auto'")


def cmd_generate(args) -> int:
    from tt_specdec import Sampling, SpeculativeDecoder, load_pair

    set_threads(args)
    dec = SpeculativeDecoder(load_pair(args.pair), args.drafter, args.k,
                             Sampling(args.temperature, args.top_k, args.top_p), ops=args.ops)
    sys.stdout.write(args.prompt)
    _, gen = dec.generate(args.prompt, args.max_new_tokens, args.seed,
                          on_text=lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    s = gen.stats
    print(f"\n\n[{s.new_tokens} tokens, {s.tokens_per_s:.1f} tok/s, TTFT {s.ttft_s * 1e3:.0f} ms, "
          f"acceptance {s.acceptance_rate:.3f}, mean accepted length {s.mean_accepted_length:.2f}]",
          file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    from tt_specdec import Sampling, load_pair, __version__
    from tt_specdec.spec import bench

    if args.device:  # the fused ops' kernels on a card (ttnn.generic_op) against the torch path
        from tt_specdec import device
        return device.bench_cli(args)

    set_threads(args)
    pair = load_pair(args.pair)
    prompts = bench.TINY_PROMPTS[:args.num_prompts] if args.num_prompts else bench.TINY_PROMPTS
    rows = bench.bench(pair, ks=args.k, drafters=args.drafter, prompts=prompts,
                       max_new_tokens=args.max_new_tokens, sampling=Sampling(args.temperature, args.top_k, args.top_p),
                       seed=args.seed, repeats=args.repeats)
    print(bench.format_table(rows))
    print("speedup = wall clock of the target alone / wall clock of speculative decoding, same prompts, "
          "measured side by side in this process")
    import torch
    meta = {"pair": args.pair, "version": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "max_new_tokens": args.max_new_tokens}
    if args.json:
        bench.write_json(rows, args.json, meta)
        print(f"wrote {args.json}")
    if args.plot:
        bench.plot(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_info(args) -> int:
    import torch

    from tt_specdec import __version__
    print(f"tt_specdec {__version__}")
    print(f"python     {platform.python_version()} ({sys.executable})")
    print(f"torch      {torch.__version__}, {torch.get_num_threads()} threads")
    print("executors:")
    print("  torch     available (vectorized ops, the CPU path)")
    try:
        import tt_specdec._emu  # noqa: F401
        print("  emu       available (host emulator of the TT-Metal kernel API)")
    except ImportError:
        print("  emu       not built (arrives with the kernels: csrc/)")
    from tt_specdec import device
    device.print_info()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tt-specdec", description="Lossless speculative decoding")
    sub = ap.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="complete a prompt, streaming")
    g.add_argument("prompt")
    g.add_argument("--k", type=parse_k, default=4,
                   help="draft tokens per step (0 = target alone, auto = chosen per row by the measured cost model)")
    g.add_argument("--drafter", choices=["model", "ngram"], default="model")
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--ops", choices=["torch", "emu"], default="torch",
                   help="emu: the three fused ops run as their TT-Metal kernels on the host emulator (slow; "
                        "greedy or plain temperature sampling)")
    add_sampling_args(g)
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("bench", help="target alone vs speculative, side by side")
    b.add_argument("--k", type=parse_ks, default=[1, 2, 4, 6, 8, "auto"],
                   help="comma-separated k values; auto = the cost model's per-row choice")
    b.add_argument("--drafter", choices=["model", "ngram"], action="append", help="repeatable (default: both)")
    b.add_argument("--max-new-tokens", type=int, default=64)
    b.add_argument("--num-prompts", type=int, default=0, help="use the first N prompts (0 = all)")
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--json", help="write results to this file")
    b.add_argument("--plot", help="write acceptance per position and speedup per k to this PNG")
    b.add_argument("--device", action="store_true",
                   help="time the fused ops' kernels on a Tenstorrent card (ttnn.generic_op) against the torch path, "
                        "checking they agree; skipped with the reason when no card or no ttnn")
    add_sampling_args(b)
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", help="versions and available executors")
    i.set_defaults(func=cmd_info)

    args = ap.parse_args(argv)
    if getattr(args, "drafter", "") is None:
        args.drafter = ["model", "ngram"]
    try:
        return args.func(args)
    except (ValueError, NotImplementedError) as e:  # bad input or a kernel feature missing: one line
        print(f"tt-specdec: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
