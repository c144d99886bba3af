"""rollback_kv kernels on the host emulator: wall time and DRAM traffic per shape, next to the
ideal (pos, last, num_accepted, output_tokens and the page table read once; new pos, last, page
table and freed ids written once). A finished row (-1) reads no output tokens, so steps with
one read a little less than the ideal. The traffic is what the kernels would move on a card,
the wall time the emulator's (a few hundred bytes: launch overhead only).

    .venv/bin/python bench/bench_rollback_kv.py [--json out/bench_rollback_kv.json]
"""
import argparse

import torch

from tt_specdec.ops.rollback_kv_program import rollback_kv_emu

from emu_bench import emu_run_ms, write_rows  # sibling module: bench/ runs as scripts

# (B, k, max_blocks), max_blocks 0 = a contiguous cache
SHAPES = [(1, 4, 0), (8, 4, 0), (32, 15, 0), (1, 4, 64), (8, 4, 64), (32, 15, 256)]
BLOCK = 32  # slots per block of the paged cache


def step(B, k, max_blocks, seed=0):
    """A step where every row is live but one (finished, -1), with random accepted counts."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(0, k + 1, (B,), generator=g)
    n[-1] = -1 if B > 1 else n[-1]
    out = torch.randint(0, 50000, (B, k + 1), generator=g)
    out = torch.where(torch.arange(k + 1).view(1, -1) <= n.view(B, 1), out, -1)
    capacity = max(max_blocks, 1) * BLOCK
    pos = torch.randint(0, capacity - k - 1, (B,), generator=g)
    if not max_blocks:
        return pos, torch.randint(0, 50000, (B,), generator=g), n, out, None
    used = (pos + k) // BLOCK + 1  # blocks holding slots 0 .. pos + k
    ids = torch.randperm(B * max_blocks, generator=g).view(B, max_blocks)
    table = torch.where(torch.arange(max_blocks).view(1, -1) < used.view(B, 1), ids, -1)
    return pos, torch.randint(0, 50000, (B,), generator=g), n, out, table


def bench(B, k, max_blocks, repeat):
    pos, last, n, out, table = step(B, k, max_blocks)
    block_size = BLOCK if table is not None else None
    run = lambda: rollback_kv_emu(pos, last, n, out, page_table=table, block_size=block_size)[1]  # noqa: E731
    result, emu_ms = emu_run_ms(run, repeat)
    table_bytes = 0 if table is None else table.numel() * 4
    ideal_read = 3 * B * 4 + out.numel() * 4 + table_bytes
    ideal_written = 2 * B * 4 + 2 * table_bytes
    return {"B": B, "k": k, "max_blocks": max_blocks, "block_size": BLOCK if max_blocks else None,
            "emu_ms": emu_ms,
            "dram_bytes_read": result.total("dram_bytes_read"),
            "dram_bytes_written": result.total("dram_bytes_written"),
            "noc_bytes_read": result.total("noc_bytes_read"), "noc_bytes_written": result.total("noc_bytes_written"),
            "ideal_bytes_read": ideal_read, "read_vs_ideal": round(result.total("dram_bytes_read") / ideal_read, 4),
            "ideal_bytes_written": ideal_written,
            "written_vs_ideal": round(result.total("dram_bytes_written") / ideal_written, 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args()
    rows = []
    for B, k, max_blocks in SHAPES:
        row = bench(B, k, max_blocks, args.repeat)
        rows.append(row)
        layout = f"paged {max_blocks:3} blocks" if max_blocks else "contiguous      "
        print(f"B={B:2} k={k:2} {layout}: {row['emu_ms']:6.1f} ms emu, DRAM read {row['dram_bytes_read']:>6} B "
              f"= {row['read_vs_ideal']:.3f}x ideal, written {row['dram_bytes_written']:>6} B "
              f"= {row['written_vs_ideal']:.3f}x ideal")
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
