"""`tt-specdec generate | bench | info`."""
from __future__ import annotations

import argparse
import os
import platform
import sys


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass to keep (1 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coupled", action=argparse.BooleanOptionalAction, default=None,
                   help="sampling: draft and target share Gumbel noise keyed by (seed, row, position), so the "
                        "output is the target alone's for the same seed, whatever the drafter and k; "
                        "--no-coupled: speculative sampling's rejection rule (default: Sampling's)")


def sampling_of(args):
    """The Sampling the sampling arguments ask for (--coupled unset: Sampling's default)."""
    from tt_specdec.sampling import Sampling

    coupled = {} if args.coupled is None else {"coupled": args.coupled}
    return Sampling(args.temperature, args.top_k, args.top_p, **coupled)


def add_model_args(p: argparse.ArgumentParser) -> None:
    from tt_specdec.api import DEFAULT_PAIR, PAIRS

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

    from tt_specdec.api import load_pair

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: got {args.threads}, expected an int >= 1")
    cores = available_cores()
    if args.threads is not None and args.threads > cores:  # more threads than cores only wait for each other
        print(f"tt-specdec: warning: --threads {args.threads} is more than the {cores} cores this process may use; "
              f"using {cores}", file=sys.stderr)
        args.threads = cores
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


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def check_common(args) -> None:
    """Checks that need no model: they fail before anything loads or runs."""
    from tt_specdec.errors import check_seed

    check_seed("--seed", args.seed)
    if getattr(args, "prompt", None) is not None:
        from tt_specdec.api import check_text

        check_text("prompt", args.prompt)


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
    from tt_specdec.api import DEFAULT_DRAFTER, SpeculativeDecoder

    sampling = sampling_of(args)  # bad settings fail before any model loads
    check_common(args)
    if args.no_trace and not args.device:
        raise ValueError("--no-trace: given without --device, expected only with --device (the card's step)")
    if args.device:  # the whole step on a card: greedy, the draft model, a fixed k
        from tt_specdec.runtime import device
        reason = device.unavailable_reason()
        if reason:
            print(f"tt-specdec generate --device: {reason}", file=sys.stderr)
            return 2
        k = 4 if args.k == "auto" else args.k
        dec = SpeculativeDecoder(load(args), args.drafter or "model", k, sampling, engine="ttnn",
                                 trace=False if args.no_trace else None)
    else:
        dec = SpeculativeDecoder(load(args), args.drafter or DEFAULT_DRAFTER[args.pair], args.k, sampling,
                                 ops=args.ops)
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

    from tt_specdec import __version__
    from tt_specdec.bench import harness as bench

    if args.no_trace and not args.device:
        raise ValueError("--no-trace: given without --device, expected only with --device (the card's step)")
    if args.device:  # the fused ops' kernels on a card (ttnn.generic_op) against the torch path
        from tt_specdec.bench.card import bench_card
        return bench_card(args)

    if args.prompts < 0:
        raise ValueError(f"--prompts: got {args.prompts}, expected N >= 1 (or 0: all)")
    check_common(args)
    bench.check_ks(args.k)
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            bench.check_output_path(flag, path)
    prompts = bench.prompt_set(args.pair, args.prompts or None, args.categories)
    sampling = sampling_of(args)
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
    print_cpu_engine_info()
    try:
        import tt_specdec._emu  # noqa: F401
        print("  emu       available (host emulator of the TT-Metal kernel API)")
    except ImportError:
        print("  emu       not built (arrives with the kernels: csrc/)")
    print_card_info()
    return 0


def print_cpu_engine_info() -> None:
    """The `tt-specdec info` line of the CPU engine: the matrix path its linears run (chosen from cpuid, or
    TT_SPECDEC_CPU_PATH) and the paths this CPU has."""
    try:
        from tt_specdec.models.cpu_llama import matrix_path, matrix_paths
        path, paths = matrix_path(), matrix_paths()
    except ImportError:
        print("  cpu       not built (csrc/cpu/: the batch-invariant CPU engine)")
        return
    except ValueError as e:  # TT_SPECDEC_CPU_PATH names a path this CPU lacks
        print(f"  cpu       {e}")
        return
    print(f"  cpu       available (C++ engine), matrix path {path}; this CPU runs {', '.join(paths)} "
          "(TT_SPECDEC_CPU_PATH forces one)")


def print_card_info() -> None:
    """The `tt-specdec info` lines of the card path: ttnn's version, the card, and which checks apply."""
    from tt_specdec.runtime import device

    version = device.ttnn_version()
    card = device.card_present()
    print(f"  ttnn      {version or 'not installed'}"
          + ("" if version == "0.81.1" or version is None else " (tt_specdec is written against 0.81.1)"))
    print(f"  card      {'found (/dev/tenstorrent)' if card else 'none found (/dev/tenstorrent is missing or empty)'}")
    print("checks:")
    print("  emulator     the kernels run on the host emulator in the test suite (pytest tests/emu)")
    print("  conformance  real ttnn 0.81.1 accepts every program description on a mock device and reaches the "
          "kernel build;\n               dataflow kernels pass clang-19 against its headers; compute API calls match "
          "its declarations\n               (pytest tests/conformance, or tools/conformance/run.sh: needs apt-get, "
          "Python 3.12 or 3.10)")
    if card and version:
        print("  card         applies: pytest --device (op property tests through ttnn.generic_op), "
              "tt-specdec bench --device")
    else:
        print(f"  card         does not apply here: {device.unavailable_reason()}; pytest --device and "
              "tt-specdec bench --device skip")


def main(argv: list[str] | None = None) -> int:
    from tt_specdec.api import DRAFTERS

    ap = argparse.ArgumentParser(prog="tt-specdec", description="Lossless speculative decoding")
    sub = ap.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="answer a prompt (or continue it, --raw), streaming")
    g.add_argument("prompt")
    g.add_argument("--k", type=parse_k, default="auto",
                   help="draft tokens per step (default auto: chosen per row by the measured cost model; "
                        "0 = target alone)")
    g.add_argument("--drafter", choices=sorted(DRAFTERS),
                   help="default: the pair's fastest measured (smollm2: lookup+eagle3; tiny: model)")
    g.add_argument("--max-new-tokens", type=int, default=128, help="stops earlier at the model's end of turn")
    g.add_argument("--ops", choices=["torch", "emu"], default="torch",
                   help="emu: the three fused ops run as their TT-Metal kernels on the host emulator (slow; "
                        "greedy or sampling; with a tree drafter greedy or coupled sampling)")
    g.add_argument("--device", action="store_true",
                   help="the whole speculative step on a Tenstorrent card (ttnn decoders, our kernels; greedy, "
                        "drafter model, k 4 unless given); refused with the reason when no card or no ttnn")
    g.add_argument("--no-trace", action="store_true",
                   help="with --device: run every step untraced (default: replay a captured ttnn trace from the "
                        "second step on, where the device can)")
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
    b.add_argument("--no-trace", action="store_true",
                   help="with --device: the whole-step timing runs every step untraced (default: a captured "
                        "ttnn trace replays from the second step on, where the device can)")
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
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's exit status for SIGINT
        print("\ntt-specdec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
