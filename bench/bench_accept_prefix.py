"""accept_prefix kernels on the host emulator: wall time and DRAM traffic per shape, next to
the ideal (the logits read once) and, for sampling, to what the rule needs (rows 0..n of each
sequence, and q's row n at a rejection). The traffic is what the kernels would move on a card;
the wall time is the emulator's, not a card's.

    .venv/bin/python bench/bench_accept_prefix.py [--variant greedy,sampling,top_k_top_p] [--json out.json]
"""
import argparse

import torch

from tt_specdec.ops.accept_prefix.program import accept_prefix_emu, accept_prefix_sampling_emu
from tt_specdec.sampling import process_logits

from emu_bench import emu_run_ms, write_rows  # sibling module: bench/ runs as scripts

SHAPES = [(1, 4, 49152), (8, 4, 49152), (8, 15, 49152), (1, 4, 128256), (8, 4, 128256)]  # (B, k, V)
SAMPLING = {"sampling": dict(top_k=0, top_p=1.0), "top_k_top_p": dict(top_k=50, top_p=0.9)}  # variant: filters


def run_once(variant, logits, drafts, q):
    if variant == "greedy":
        return accept_prefix_emu(logits, drafts)
    return accept_prefix_sampling_emu(logits, drafts, draft_probs=q, num_draft=None, temperature=1.0, seed=0,
                                      **SAMPLING[variant])


def bench(variant, B, k, V, dtype, repeat):
    g = torch.Generator().manual_seed(0)
    logits = (2 * torch.randn(B, k + 1, V, generator=g)).to(dtype)
    drafts, q = logits.argmax(-1)[:, :k], None  # greedy: drafts the target agrees with
    if variant != "greedy":  # a drafter near the target: some drafts accepted, some rejected
        noisy = logits[:, :k].float() + 0.7 * torch.randn(B, k, V, generator=g)  # ~0.7 of the drafts accepted
        q = process_logits(noisy, 1.0, **SAMPLING[variant]).float()  # the drafter filters as the target does
        drafts = torch.multinomial(q.view(-1, V), 1, generator=g).view(B, k)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="greedy,sampling,top_k_top_p")
    ap.add_argument("--dtype", default="bfloat16,float32")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args()
    rows = []
    for variant in args.variant.split(","):
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
