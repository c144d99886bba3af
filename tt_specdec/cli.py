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


def add_model_args(p: argparse.ArgumentParser) -> None:
    from tt_specdec import DEFAULT_PAIR, PAIRS

    p.add_argument("--pair", choices=PAIRS, default=DEFAULT_PAIR,
                   help=f"shipped model pair (default: {DEFAULT_PAIR}; tiny = the byte-level test pair)")
    p.add_argument("--engine", choices=("cpu", "torch"), default="cpu",
                   help="cpu (default): our batch-invariant CPU decoder, bf16 weights, exact verify; torch: the torch Llama")
    p.add_argument("--dtype", choices=sorted(DTYPES),
                   help="with --engine torch: compute dtype (default: fp32 for tiny, bf16 for smollm2)")
    p.add_argument("--threads", type=int, help="CPU threads of the decoder and torch (default: 1)")
    p.add_argument("--raw", action="store_true",
                   help="the prompt is raw text to continue, not a user message in the model's chat template")


DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
DEFAULT_DTYPE = {"tiny": "fp32", "smollm2": "bf16"}  # bf16 halves the weight bytes each SmolLM2 step reads
# one thread: on this shared 2-core machine a second thread waits for a busy core each op
# (SmolLM2 bf16 decode measured 9.5 tok/s on 1 thread, 1.0 on 2 with the other core loaded)
DEFAULT_THREADS = {"tiny": 1, "smollm2": 1}


def load(args):
    """Check the options, set the threads, then load the pair on the chosen engine."""
    import torch

    from tt_specdec import load_pair

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: got {args.threads}, expected an int >= 1")
    if args.engine == "cpu" and args.dtype not in (None, "fp32"):
        raise ValueError(f"--dtype: got {args.dtype} with --engine cpu (bf16 weights, fp32 compute); "
                         "expected no --dtype, or --engine torch")
    threads = args.threads or DEFAULT_THREADS[args.pair]
    if args.engine == "cpu":
        from tt_specdec.models.cpu_llama import set_threads

        set_threads(threads)  # the CPU decoder's own pool does the model's work
        # torch only does small ops around it; its threads would spin against the pool's
        torch.set_num_threads(1)
        return load_pair(args.pair, engine="cpu")
    torch.set_num_threads(threads)
    return load_pair(args.pair, getattr(torch, DTYPES[args.dtype or DEFAULT_DTYPE[args.pair]]), engine="torch")


def parse_ks(text: str) -> list[int | str]:
    return [parse_k(x) for x in text.split(",") if x]


def parse_k(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected an int or 'auto'")


def parse_list(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def cmd_generate(args) -> int:
    from tt_specdec import DEFAULT_DRAFTER, Sampling, SpeculativeDecoder

    sampling = Sampling(args.temperature, args.top_k, args.top_p)  # bad settings fail before any model loads
    dec = SpeculativeDecoder(load(args), args.drafter or DEFAULT_DRAFTER[args.pair], args.k, sampling, ops=args.ops)
    chat = not args.raw and bool(getattr(dec.pair.tokenizer, "chat_template", None))
    if not chat:  # a completion: the text it continues comes first
        sys.stdout.write(args.prompt)
    _, gen = dec.generate(args.prompt, args.max_new_tokens, args.seed, chat=chat,
                          on_text=lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    s = gen.stats
    print(f"\n\n[{s.new_tokens} tokens, {s.tokens_per_s:.1f} tok/s, TTFT {s.ttft_s * 1e3:.0f} ms, "
          f"acceptance {s.acceptance_rate:.3f}, mean accepted length {s.mean_accepted_length:.2f}]",
          file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    import torch

    from tt_specdec import Sampling, __version__
    from tt_specdec.spec import bench

    if args.device:  # the fused ops' kernels on a card (ttnn.generic_op) against the torch path
        from tt_specdec import device
        return device.bench_cli(args)

    if args.prompts < 0:
        raise ValueError(f"--prompts: got {args.prompts}, expected N >= 1 (or 0: all)")
    prompts = bench.prompt_set(args.pair, args.prompts or None, args.categories)
    sampling = Sampling(args.temperature, args.top_k, args.top_p)
    pair = load(args)
    drafters = args.drafter or bench.available_drafters(pair)  # names, or the defaults already built
    report = bench.bench(args.pair, pair, drafters=drafters, ks=args.k, prompts=prompts, sampling=sampling,
                         max_new_tokens=args.max_new_tokens, seed=args.seed, chat=not args.raw,
                         compare=not args.no_transformers)
    report["meta"] |= {"pair": args.pair, "dtype": str(bench.weight_dtype(pair.target)).removeprefix("torch."),
                       "version": __version__, "python": platform.python_version(), "torch": torch.__version__,
                       "threads": getattr(pair.target, "threads", torch.get_num_threads()),  # CpuLlama: its pool
                       "argv": sys.argv[1:]}
    print(bench.format_table(report))
    if args.json:
        bench.write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        bench.plot(report, args.plot)
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
    from tt_specdec import DRAFTERS

    ap = argparse.ArgumentParser(prog="tt-specdec", description="Lossless speculative decoding")
    sub = ap.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="answer a prompt (or continue it, --raw), streaming")
    g.add_argument("prompt")
    g.add_argument("--k", type=parse_k, default="auto",
                   help="draft tokens per step (default auto: chosen per row by the measured cost model; "
                        "0 = target alone)")
    g.add_argument("--drafter", choices=sorted(DRAFTERS),
                   help="default: the pair's fastest measured (smollm2: lookup+eagle; tiny: model)")
    g.add_argument("--max-new-tokens", type=int, default=128, help="stops earlier at the model's end of turn")
    g.add_argument("--ops", choices=["torch", "emu"], default="torch",
                   help="emu: the three fused ops run as their TT-Metal kernels on the host emulator (slow; "
                        "greedy or plain temperature sampling)")
    add_model_args(g)
    add_sampling_args(g)
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("bench", help="target alone vs speculative vs transformers, side by side")
    b.add_argument("--k", type=parse_ks, default=[1, 2, 4, "auto"],
                   help="comma-separated k values (default 1,2,4,auto); auto = the cost model's per-row choice")
    b.add_argument("--drafter", choices=sorted(DRAFTERS), action="append",
                   help="repeatable (default: every registered drafter the pair has weights for)")
    b.add_argument("--max-new-tokens", type=int, default=128)
    b.add_argument("--prompts", type=int, default=0,
                   help="use the first N prompts, round-robin over the categories (0 = all)")
    b.add_argument("--categories", type=parse_list, help="comma-separated: chat,code,prose,summarisation")
    b.add_argument("--no-transformers", action="store_true", help="skip transformers' side of the comparison")
    b.add_argument("--json", help="write every figure to this file")
    b.add_argument("--plot", help="write speedup per k, acceptance per position and per category to this PNG")
    b.add_argument("--device", action="store_true",
                   help="time the fused ops' kernels on a Tenstorrent card (ttnn.generic_op) against the torch path, "
                        "checking they agree; skipped with the reason when no card or no ttnn")
    b.add_argument("--repeats", type=int, default=1, help="--device only: timing repeats (x10, at least 3)")
    add_model_args(b)
    add_sampling_args(b)
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", help="versions and available executors")
    i.set_defaults(func=cmd_info)

    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, NotImplementedError) as e:  # bad input or a kernel feature missing: one line
        print(f"tt-specdec: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
