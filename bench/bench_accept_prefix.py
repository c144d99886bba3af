"""accept_prefix kernels on the host emulator: wall time and DRAM traffic per shape, next to
the ideal (the logits read once) and, for sampling, to what the rule needs (rows 0..n of each
sequence, and q's row n at a rejection). The traffic is what the kernels would move on a card;
the wall time is the emulator's, not a card's.

--host: the sampled rule on the host (backend "torch") instead, three ways side by side in one run, calls
interleaved: the integer rule with tt_specdec._cpu's rows (fixed_rows.cpp), the same in numpy alone, and the
float rule it replaced (torch_impl.py as of --float-rev, loaded from git); their ratios per shape.

    .venv/bin/python bench/bench_accept_prefix.py [--variant greedy,sampling,top_k_top_p] [--json out.json]
    .venv/bin/python bench/bench_accept_prefix.py --host [--variant sampling,top_p,top_k_top_p] [--json out.json]
"""
import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tt_specdec.ops.accept_prefix.program import accept_prefix_emu, accept_prefix_sampling_emu
from tt_specdec.sampling import process_logits

from emu_bench import emu_run_ms, write_rows  # sibling module: bench/ runs as scripts

SHAPES = [(1, 4, 49152), (8, 4, 49152), (8, 15, 49152), (1, 4, 128256), (8, 4, 128256)]  # (B, k, V)
SAMPLING = {"sampling": dict(top_k=0, top_p=1.0), "top_k_top_p": dict(top_k=50, top_p=0.9)}  # variant: filters
HOST_SAMPLING = {**SAMPLING, "top_p": dict(top_k=0, top_p=0.9)}
HOST_SHAPES = [(1, 4, 49152), (1, 4, 128256), (8, 4, 49152)]  # (B, k, V)
HOST_TEMPERATURE = 0.8


def run_once(variant, logits, drafts, q):
    if variant == "greedy":
        return accept_prefix_emu(logits, drafts)
    return accept_prefix_sampling_emu(logits, drafts, draft_probs=q, num_draft=None, temperature=1.0, seed=0,
                                      **SAMPLING[variant])


def make_case(variant, B, k, V, dtype, filters=None, temperature=1.0):
    """logits [B, k+1, V] (dtype), drafts [B, k], q [B, k, V] (fp32; None for greedy)."""
    g = torch.Generator().manual_seed(0)
    logits = (2 * torch.randn(B, k + 1, V, generator=g)).to(dtype)
    drafts, q = logits.argmax(-1)[:, :k], None  # greedy: drafts the target agrees with
    if variant != "greedy":  # a drafter near the target: some drafts accepted, some rejected
        noisy = logits[:, :k].float() + 0.7 * torch.randn(B, k, V, generator=g)  # ~0.7 of the drafts accepted
        q = process_logits(noisy, temperature, **(filters or SAMPLING[variant])).float()  # filtered as the target
        drafts = torch.multinomial(q.view(-1, V), 1, generator=g).view(B, k)
    return logits, drafts, q


def bench(variant, B, k, V, dtype, repeat):
    logits, drafts, q = make_case(variant, B, k, V, dtype)
    (n, _, result), emu_ms = emu_run_ms(lambda: run_once(variant, logits, drafts, q), repeat)
    ideal = logits.numel() * logits.element_size()
    needed = ideal  # greedy reads every row of every live sequence
    if variant != "greedy":  # rows 0..n, then q's row n at a rejection
        needed = int((n + 1).sum()) * V * logits.element_size() + int((n < k).sum()) * V * 4
    read = result.total("dram_bytes_read")
    return {"variant": variant, "B": B, "k": k, "V": V, "dtype": str(dtype).removeprefix("torch."),
            "mean_accepted": round(float(n.double().mean()), 3), "emu_ms": emu_ms,
            "dram_bytes_read": read, "dram_bytes_written": result.total("dram_bytes_written"),
            "noc_bytes_read": result.total("noc_bytes_read"), "noc_bytes_written": result.total("noc_bytes_written"),
            "ideal_bytes_read": ideal, "read_vs_ideal": round(read / ideal, 4),
            "needed_bytes_read": needed, "read_vs_needed": round(read / needed, 4)}


def float_rule(rev: str):
    """torch_impl.py as of git revision rev (the float sampled rule), imported from a temporary file."""
    repo = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", f"{rev}:tt_specdec/ops/accept_prefix/torch_impl.py"], cwd=repo,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "float_torch_impl.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("float_torch_impl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_bench(variant, B, k, V, dtype, repeat, float_impl):
    """Median ms of the sampled accept_prefix on the host: engine, numpy, float; calls interleaved."""
    from tt_specdec.ops.accept_prefix import torch_impl

    filters = HOST_SAMPLING[variant]
    logits, drafts, q = make_case(variant, B, k, V, dtype, filters, HOST_TEMPERATURE)
    args = (logits, drafts, q, None, HOST_TEMPERATURE, filters["top_k"], filters["top_p"], 0)
    engine = torch_impl.engine()
    assert engine is not None, "tt_specdec._cpu without fixed_probs_rows: build it (setup.py build_ext --inplace)"

    def numpy_only():
        torch_impl.engine = lambda: None  # the cache's wrapper is put back below
        try:
            return torch_impl.accept_prefix(*args)
        finally:
            torch_impl.engine = cached

    cached = torch_impl.engine
    paths = {"cpp": lambda: torch_impl.accept_prefix(*args), "numpy": numpy_only,
             "float": lambda: float_impl.accept_prefix(*args)}
    results = {name: run() for name, run in paths.items()}  # warm-up, and the outputs compared
    assert all(torch.equal(a, b) for a, b in zip(results["cpp"], results["numpy"])), "engine != numpy"
    times = {name: [] for name in paths}
    for _ in range(repeat):
        for name, run in paths.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    ms = {name: round(1e3 * statistics.median(t), 3) for name, t in times.items()}
    return {"variant": variant, "B": B, "k": k, "V": V, "dtype": str(dtype).removeprefix("torch."),
            "temperature": HOST_TEMPERATURE, **filters, "mean_accepted": round(float(results["cpp"][0].double().mean()), 3),
            "cpp_ms": ms["cpp"], "numpy_ms": ms["numpy"], "float_ms": ms["float"],
            "numpy_over_cpp": round(ms["numpy"] / ms["cpp"], 2), "cpp_over_float": round(ms["cpp"] / ms["float"], 2)}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default=None, help="greedy,sampling,top_k_top_p (emulator); sampling,top_p,"
                                                    "top_k_top_p (--host)")
    ap.add_argument("--dtype", default="bfloat16,float32")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--host", action="store_true", help="the sampled rule on the host: C++ vs numpy vs float")
    ap.add_argument("--float-rev", default="ec2852d^1", help="git revision of the float rule's torch_impl.py")
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args()
    rows = []
    if args.host:
        float_impl = float_rule(args.float_rev)
        print(f"host: {cpu_name()}, {torch.get_num_threads()} torch threads; {' '.join(sys.argv)}")
        for variant in (args.variant or "sampling,top_p,top_k_top_p").split(","):
            for dtype in args.dtype.split(","):
                for B, k, V in HOST_SHAPES:
                    row = host_bench(variant, B, k, V, getattr(torch, dtype), args.repeat, float_impl)
                    rows.append({**row, "cpu": cpu_name()})
                    print(f"{variant:11} {row['dtype']:8} B={B} k={k} V={V:6} T={HOST_TEMPERATURE}: C++ "
                          f"{row['cpp_ms']:7.3f} ms, numpy {row['numpy_ms']:7.3f} ms, float {row['float_ms']:7.3f} "
                          f"ms; numpy / C++ {row['numpy_over_cpp']:5.2f}x, C++ / float {row['cpp_over_float']:5.2f}x, "
                          f"mean n {row['mean_accepted']:.2f}")
        write_rows(rows, args.json)
        return
    for variant in (args.variant or "greedy,sampling,top_k_top_p").split(","):
        for dtype in args.dtype.split(","):
            for B, k, V in SHAPES:
                row = bench(variant, B, k, V, getattr(torch, dtype), args.repeat)
                rows.append(row)
                print(f"{variant:11} {row['dtype']:8} B={B} k={k:2} V={V:6}: {row['emu_ms']:8.1f} ms emu, "
                      f"mean n {row['mean_accepted']:5.2f}, DRAM read {row['dram_bytes_read']:>10} B = "
                      f"{row['read_vs_ideal']:.4f}x ideal, {row['read_vs_needed']:.4f}x needed, "
                      f"written {row['dram_bytes_written']} B")
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
