"""rollback_kv kernels on the host emulator: wall time and DRAM traffic per shape, next to the
ideal (pos, last, num_accepted, output_tokens and the page table read once; new pos, last, page
table and freed ids written once). A finished row (-1) reads no output tokens, so steps with
one read a little less than the ideal. The traffic is what the kernels would move on a card,
the wall time the emulator's (a few hundred bytes: launch overhead only).
The compaction rows' emulator time includes tiling the whole caches on the host.

Compaction rows: the accepted KV rows copied to their final slots, every row live, accepted
slots a chain (identity: nothing moves) or a path down a binary tree of k+1 verify slots
(0, 1, 3, 7, ...: every accepted draft but the first moves). The K and V cache bytes read
and written are next to the bytes of the rows that move (layers x Hkv x D x element size,
per moved row, per cache): a ratio of 1.0, and 0 bytes for the chain.

    .venv/bin/python bench/bench_rollback_kv.py [--json out/bench_rollback_kv.json]
"""
import argparse

import torch

from tt_specdec.ops.rollback_kv import reference
from tt_specdec.ops.rollback_kv.program import rollback_kv_emu

from emu_bench import emu_run_ms, write_rows  # sibling module: bench/ runs as scripts

# (B, k, max_blocks), max_blocks 0 = a contiguous cache
SHAPES = [(1, 4, 0), (8, 4, 0), (32, 15, 0), (1, 4, 64), (8, 4, 64), (32, 15, 256)]
BLOCK = 32  # slots per block of the paged cache
# compaction: (B, k, layers, Hkv, head_dim, block_size or None = contiguous, slots "chain" | "tree")
COMPACT_SHAPES = [(1, 4, 30, 3, 64, None, "chain"), (1, 4, 30, 3, 64, None, "tree"),
                  (8, 7, 30, 3, 64, None, "tree"), (8, 7, 30, 3, 64, 32, "chain"), (8, 7, 30, 3, 64, 32, "tree"),
                  (4, 15, 2, 8, 128, 64, "tree")]


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


def tree_path(k: int) -> list[int]:
    """Slots of the leftmost path of a binary tree laid out breadth first over k + 1 verify slots."""
    path = [0]
    while 2 * path[-1] + 1 <= k:
        path.append(2 * path[-1] + 1)
    return path


def bench_compaction(B, k, layers, hkv, head_dim, block_size, slots, repeat):
    step = reference.random_rollback_step(0, B, k, block_size=block_size, layers=layers, hkv=hkv,
                                          head_dim=head_dim, dtype=torch.bfloat16)
    path = tree_path(k) if slots == "tree" else list(range(k + 1))
    step["num_accepted"] = torch.full((B,), len(path) - 1)
    step["output_tokens"] = torch.where(torch.arange(k + 1) < len(path), 7, -1).repeat(B, 1)
    step["accepted_slots"] = torch.tensor(path + [-1] * (k + 1 - len(path))).repeat(B, 1)
    run = lambda: rollback_kv_emu(**step)[1]  # noqa: E731
    result, emu_ms = emu_run_ms(run, repeat)
    moved_rows = B * sum(1 for j, s in enumerate(path) if s != j)
    moved_bytes = 2 * moved_rows * layers * hkv * head_dim * 2  # K and V, bf16
    kv = {key: sum(s[f"{key}_by_buffer"].get(name, 0) for s in result.stats for name in ("k_cache", "v_cache"))
          for key in ("dram_bytes_read", "dram_bytes_written")}
    return {"compaction": True, "B": B, "k": k, "layers": layers, "hkv": hkv, "head_dim": head_dim,
            "block_size": block_size, "slots": slots, "accepted_slots": path, "emu_ms": emu_ms,
            "moved_rows": moved_rows, "moved_row_bytes": moved_bytes,
            "kv_bytes_read": kv["dram_bytes_read"], "kv_bytes_written": kv["dram_bytes_written"],
            "kv_written_vs_moved": round(kv["dram_bytes_written"] / moved_bytes, 4) if moved_bytes else None,
            "dram_bytes_read": result.total("dram_bytes_read"),
            "dram_bytes_written": result.total("dram_bytes_written")}


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
    for shape in COMPACT_SHAPES:
        row = bench_compaction(*shape, args.repeat)
        rows.append(row)
        B, k, layers, hkv, head_dim, block_size, slots = shape
        layout = f"paged {block_size:2}" if block_size else "contiguous"
        print(f"compaction B={B} k={k:2} L={layers} Hkv={hkv} D={head_dim} {layout} {slots:5} "
              f"{row['accepted_slots']}: {row['emu_ms']:6.1f} ms emu, {row['moved_rows']} rows move = "
              f"{row['moved_row_bytes']} B; K+V cache read {row['kv_bytes_read']} B, "
              f"written {row['kv_bytes_written']} B")
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
