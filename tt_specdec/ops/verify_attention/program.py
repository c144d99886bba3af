"""Program description of the verify_attention kernels (kernels/), contiguous
or paged cache (blocks of whole 32-key chunks): `kv_splits` cores per (sequence, KV head); its
T query rows times the Hq/Hkv heads of the group are packed into one 32-row tile row, so each
32-key chunk of K and V is read once for all of them. With kv_splits > 1 the chunks are dealt
over the split cores (flash-decoding) and split 0 merges their (max, sum, unnormalized output)
partials, gathered into its L1 over the NoC. Shapes (B, T, heads, S, D), kv_splits and formats
are compile-time; positions arrive in the pos tensor (each split's chunks follow from it on
the device). The mask: row t sees the cache (keys < pos) and key pos + i iff bit i of its row
bitmask, the chain's staircase made by the reader, or with `tree` a token tree's, read from the
tree tensor [B, T] (uint32 bits in int32 words: its ancestors and itself).

Host glue (`run`, for either executor): q [B, T, Hq, D] is packed to [B*Hkv, 32, D] (row
t*group + g) and tilized, the caches are tilized per (b, h), and the packed output is unpacked.
On a card the projection that makes q would emit this layout.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import torch

from tt_specdec.ops.dispatch import is_ttnn_tensor
from tt_specdec.runtime import device, emu
from tt_specdec.runtime import program as P

KERNELS = Path(__file__).resolve().parent / "kernels"
ARGS = P.read_arg_indices(KERNELS / "verify_attention_common.hpp")
MAX_CORES = 64  # the 8 x 8 grid
MIN_SPLIT_CHUNKS = 32  # auto kv_splits: at least this many 32-key chunks of capacity per split


def auto_kv_splits(B: int, Hkv: int, S: int) -> int:
    """Spare cores of the grid take KV splits once the cache is long enough that the extra q
    reads and the merge (one partial per split) are small next to a split's chunks."""
    return max(1, min(MAX_CORES // (B * Hkv), -(-S // 32) // MIN_SPLIT_CHUNKS))


def verify_attention_program(B: int, T: int, Hq: int, Hkv: int, S: int, D: int, dtype: torch.dtype,
                             scale: float, *, num_blocks: int = 0, block_size: int = 0,
                             max_blocks: int = 0, kv_splits: int = 1, tree: bool = False) -> P.Program:
    """Contiguous caches [B, Hkv, S, D]; or paged ones [num_blocks, Hkv, block_size, D] with
    page_table [B, max_blocks] when num_blocks > 0 (block_size a multiple of 32). Core
    (b * Hkv + h) * kv_splits + j runs split j of (b, h). tree: a tensor "tree" [B, T] of row
    bitmasks (tree_row_bits) masks the rows instead of the staircase."""
    group = Hq // Hkv
    paged = num_blocks > 0
    d_tiles, s_tiles = D // 32, -(-S // 32)
    q = P.Tensor("q", (B * Hkv, 32, D), dtype, "tile")
    cache_shape = (num_blocks * Hkv, block_size, D) if paged else (B * Hkv, s_tiles * 32, D)
    k = P.Tensor("k", cache_shape, dtype, "tile")
    v = P.Tensor("v", cache_shape, dtype, "tile")
    pos = P.Tensor("pos", (1, B), torch.int32)
    page_table = P.Tensor("page_table", (B, max_blocks) if paged else (1, 1), torch.int32)
    tree_bits = P.Tensor("tree", (B, T) if tree else (1, 1), torch.int32)
    out = P.Tensor("out", (B * Hkv, 32, D), dtype, "tile", is_output=True)
    splits = kv_splits
    n = B * Hkv * splits
    if splits < 1 or n > MAX_CORES:
        raise ValueError(f"kv_splits: got {splits}, expected >= 1 with B*Hkv*kv_splits <= {MAX_CORES} "
                         f"(B*Hkv = {B * Hkv})")
    grid = [(i % 8, i // 8) for i in range(n)]
    cores = [P.CoreRange((x, y), (x, y)) for x, y in grid]
    C = {name: ARGS[f"CB_{name}"] for name in
         ("Q", "K", "V", "MASK", "SCALE", "ONES", "POS", "TABLE", "RANGE", "PART", "GATHER", "TREE", "OUT", "ALPHA",
          "TMP", "PV", "LC", "S2", "S", "P", "M0", "M1", "L0", "L1", "O0", "O1")}
    tile_in, tile_f32 = q.page_size, 4096
    fmt_in, f32 = P.data_format(dtype), P.DataFormat.Float32
    one = [("MASK", 2), ("SCALE", 1), ("ONES", 1), ("ALPHA", 1), ("TMP", 1), ("LC", 1), ("S2", 1), ("S", 1),
           ("P", 1), ("M0", 1), ("M1", 1), ("L0", 1), ("L1", 1)]
    cbs = [P.CircularBuffer(C["Q"], cores, d_tiles, tile_in, fmt_in, "q"),
           P.CircularBuffer(C["K"], cores, 2 * d_tiles, tile_in, fmt_in, "k"),
           P.CircularBuffer(C["V"], cores, 2 * d_tiles, tile_in, fmt_in, "v"),
           P.CircularBuffer(C["POS"], cores, 1, P.align(max(B * 4, 32), 32), P.DataFormat.UInt32, "pos"),
           P.CircularBuffer(C["TABLE"], cores, 1, P.align(max(max_blocks * 4, 32), 32), P.DataFormat.Int32,
                            "page_table"),
           P.CircularBuffer(C["RANGE"], cores, 1, 16, P.DataFormat.UInt32, "range"),
           P.CircularBuffer(C["OUT"], cores, 2, tile_in, fmt_in, "out"),
           P.CircularBuffer(C["PV"], cores, d_tiles, tile_f32, f32, "pv"),
           P.CircularBuffer(C["O0"], cores, d_tiles, tile_f32, f32, "o0"),
           P.CircularBuffer(C["O1"], cores, d_tiles, tile_f32, f32, "o1")]
    cbs += [P.CircularBuffer(C[name], cores, pages, tile_f32, f32, name.lower()) for name, pages in one]
    if splits > 1:  # a worker's partial [m, l, O], and split 0's slots for the others'
        cbs += [P.CircularBuffer(C["PART"], cores, d_tiles + 2, tile_f32, f32, "part"),
                P.CircularBuffer(C["GATHER"], cores, (splits - 1) * (d_tiles + 2), tile_f32, f32, "gather")]
    if tree:  # the DRAM read lands at the CB's base, which the allocator aligns to DRAM_ALIGNMENT
        cbs.append(P.CircularBuffer(C["TREE"], cores, 1, P.dram_align(T * 4), P.DataFormat.UInt32, "tree"))
    sem_partials = 0
    ta = P.tensor_accessor_args
    reader_ct = P.arg_vector(ARGS, "CT_READER_", cb_q=C["Q"], cb_k=C["K"], cb_v=C["V"], cb_mask=C["MASK"],
                             cb_scale=C["SCALE"], cb_ones=C["ONES"], cb_pos=C["POS"], d_tiles=d_tiles,
                             s_tiles=s_tiles, t=T, group=group, hkv=Hkv, q_ta=ta(q), k_ta=ta(k), v_ta=ta(v),
                             pos_ta=ta(pos), block_tiles=block_size // 32 if paged else 0,
                             max_blocks=max_blocks, cb_table=C["TABLE"], page_table_ta=ta(page_table),
                             splits=splits, cb_range=C["RANGE"], sem_partials=sem_partials, tree=int(tree),
                             cb_tree=C["TREE"], tree_ta=ta(tree_bits))
    compute_ct = P.arg_vector(ARGS, "CT_COMPUTE_", d_tiles=d_tiles)
    writer_ct = P.arg_vector(ARGS, "CT_WRITER_", cb_out=C["OUT"], d_tiles=d_tiles, out_ta=ta(out),
                             sem_partials=sem_partials)
    scale_bits = struct.unpack("<I", struct.pack("<f", scale))[0]
    reader_rt = {c: P.arg_vector(ARGS, "RT_READER_", q_addr=P.BufferAddress("q"), k_addr=P.BufferAddress("k"),
                                 v_addr=P.BufferAddress("v"), pos_addr=P.BufferAddress("pos"), bh=i // splits,
                                 scale_bits=scale_bits,
                                 page_table_addr=P.BufferAddress("page_table") if paged else 0, split=i % splits,
                                 tree_addr=P.BufferAddress("tree") if tree else 0)
                 for i, c in enumerate(grid)}
    writer_rt = {c: P.arg_vector(ARGS, "RT_WRITER_", out_addr=P.BufferAddress("out"), bh=i // splits,
                                 split=i % splits, combine_noc_x=P.NocX(grid[i - i % splits]),
                                 combine_noc_y=P.NocY(grid[i - i % splits]))
                 for i, c in enumerate(grid)}
    kernels = [P.Kernel(str(KERNELS / "reader_verify_attention.cpp"), "reader", cores, reader_ct, reader_rt),
               P.Kernel(str(KERNELS / "compute_verify_attention.cpp"), "compute", cores, compute_ct,
                        {c: [] for c in grid}, fp32_dest_acc_en=True),
               P.Kernel(str(KERNELS / "writer_verify_attention.cpp"), "writer", cores, writer_ct, writer_rt)]
    tensors = [q, k, v, pos] + ([page_table] if paged else []) + ([tree_bits] if tree else []) + [out]
    return P.Program("verify_attention", kernels, cbs, tensors,
                     [P.Semaphore(sem_partials, cores, 0)])  # counts on each combine core


def tree_row_bits(tree_mask: torch.Tensor) -> torch.Tensor:
    """tree_mask [B, T, T] bool (T <= 32) -> [B, T] int32 words holding uint32 bits: bit j of row t
    set where row t sees row j (a chain: 2^(t+1) - 1)."""
    T = tree_mask.shape[-1]
    bits = (tree_mask.long() << torch.arange(T)).sum(-1)  # [B, T] in 0 .. 2^32 - 1
    return (bits - ((bits >> 31) << 32)).to(torch.int32)  # the same 32 bits as a signed word


def host_inputs(q: torch.Tensor, k_cache, v_cache, pos: torch.Tensor, *, page_table=None,
                scale: float | None = None, kv_splits: int | None = None,
                tree_bits: torch.Tensor | None = None) -> tuple[P.Program, dict]:
    """The program for these shapes and its inputs in the kernels' layout (q packed per (b, h) into
    one 32-row tile row, caches padded to whole chunks), for either executor. q [B, T, Hq, D],
    caches [B, Hkv, S, D] or paged [blocks, Hkv, block, D] with page_table [B, max_blocks], pos [B],
    tree_bits [B, T] (tree_row_bits of these rows, bits relative to pos) or None: the staircase.
    Caches and page table that are not torch tensors (ttnn tensors on the card) pass as they are."""
    B, T, Hq, D = q.shape
    Hkv = k_cache.shape[1]
    paged = page_table is not None
    S = page_table.shape[1] * k_cache.shape[2] if paged else k_cache.shape[2]
    if paged and k_cache.shape[2] % 32:
        raise NotImplementedError(f"verify_attention kernels: block size {k_cache.shape[2]} must be a "
                                  "multiple of 32 (whole key chunks per block)")
    group = Hq // Hkv
    if T * group > 32 or D % 32 or B * Hkv > MAX_CORES or q.dtype not in (torch.bfloat16, torch.float32):
        raise NotImplementedError(f"verify_attention kernels: need T*Hq/Hkv <= 32 (got {T * group}), D a "
                                  f"multiple of 32 (got {D}), B*Hkv <= {MAX_CORES} (got {B * Hkv}), bf16/fp32")
    if int(pos.max()) + T > S:
        raise ValueError(f"pos: got max {int(pos.max())} with T={T}, expected pos + T <= S={S}")
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    splits = auto_kv_splits(B, Hkv, S) if kv_splits is None else kv_splits
    s_pad = -(-S // 32) * 32
    # q [B, T, Hq, D] -> [B, Hkv, T, group, D] -> rows (t, g) of one tile row per (b, h)
    qp = torch.zeros(B, Hkv, 32, D, dtype=q.dtype)
    qp[:, :, :T * group] = q.view(B, T, Hkv, group, D).permute(0, 2, 1, 3, 4).reshape(B, Hkv, T * group, D)
    inputs = {"q": qp.reshape(B * Hkv, 32, D), "pos": pos.to(torch.int32).view(1, B)}
    tree = tree_bits is not None
    if tree:
        inputs["tree"] = tree_bits.to(torch.int32).view(B, T)

    def kernel_cache(c, rows: int):
        """[B or blocks, Hkv, S, D] -> [B * Hkv or blocks * Hkv, rows, D] in q's dtype, zero padded."""
        if not isinstance(c, torch.Tensor):
            return c
        return torch.nn.functional.pad(c.to(q.dtype), (0, 0, 0, rows - c.shape[2])).reshape(-1, rows, D)

    if paged:
        nb, blk = k_cache.shape[0], k_cache.shape[2]
        prog = verify_attention_program(B, T, Hq, Hkv, S, D, q.dtype, scale, num_blocks=nb, block_size=blk,
                                        max_blocks=page_table.shape[1], kv_splits=splits, tree=tree)
        inputs.update(k=kernel_cache(k_cache, blk), v=kernel_cache(v_cache, blk),
                      page_table=page_table.to(torch.int32) if isinstance(page_table, torch.Tensor) else page_table)
    else:
        prog = verify_attention_program(B, T, Hq, Hkv, S, D, q.dtype, scale, kv_splits=splits, tree=tree)
        inputs.update(k=kernel_cache(k_cache, s_pad), v=kernel_cache(v_cache, s_pad))
    return prog, inputs


def unpack_output(out: torch.Tensor, B: int, T: int, Hq: int, Hkv: int, D: int) -> torch.Tensor:
    """The kernels' packed out [B * Hkv, 32, D] -> [B, T, Hq, D]."""
    group = Hq // Hkv
    o = out.view(B, Hkv, 32, D)[:, :, :T * group]
    return o.reshape(B, Hkv, T, group, D).permute(0, 2, 1, 3, 4).reshape(B, T, Hq, D)


MAX_TREE_ROWS = 32  # a row's bitmask is one uint32 word


def run(ex, q, k_cache, v_cache, pos, *, page_table=None, scale: float | None = None,
        kv_splits: int | None = None, tree_mask: torch.Tensor | None = None):
    """verify_attention's kernels on executor `ex` (tt_specdec.runtime.emu or .device), arguments
    validated: ([B, T, Hq, D], RunResult with every row block's stats). A tile row holds 32 // group
    query rows; more rows (a prefill) run as row blocks, block j at pos + j * rows. torch inputs give
    a torch result; ttnn inputs (on a card) leave the caches where they are, pack q [B, T, Hq, D] and
    pos [B] (a few KB) on the host and give a ttnn result on the card. kv_splits: cores per (b, h)
    sharing its chunks; None = auto_kv_splits. tree_mask [B, T, T] bool (a torch tensor, T <= 32):
    packed to row bitmasks [B, T] on the host like q; each row block keeps pos and takes its rows'
    bitmasks (their keys before the block are tree keys, seen by the bits, not the cache)."""
    on_card = is_ttnn_tensor(q)
    q_host, pos_host = (ex.to_torch(q), ex.to_torch(pos).reshape(-1)) if on_card else (q, pos)
    B, T, Hq, D = q_host.shape
    if tree_mask is not None and T > MAX_TREE_ROWS:
        raise NotImplementedError(f"tree_mask: got T={T} tree rows, the kernels take at most {MAX_TREE_ROWS} "
                                  "(one uint32 bitmask per row); backend='torch' takes any T")
    bits = None if tree_mask is None else tree_row_bits(tree_mask)
    Hkv = int(k_cache.shape[1])
    rows = max(32 // (Hq // Hkv), 1)  # group > 32 is refused by host_inputs
    outs, stats = [], []
    for t in range(0, T, rows):
        q_rows = q_host[:, t:t + rows]
        with ex.aligned():
            prog, tensors = host_inputs(q_rows, k_cache, v_cache, pos_host + t if bits is None else pos_host,
                                        page_table=page_table, scale=scale, kv_splits=kv_splits,
                                        tree_bits=None if bits is None else bits[:, t:t + rows])
        r = ex.run(prog, tensors)
        outs.append(unpack_output(ex.to_torch(r.outputs["out"]).to(q_host.dtype), B, q_rows.shape[1], Hq, Hkv, D))
        stats += r.stats
    out = torch.cat(outs, 1)
    return (device.from_torch_like(out, q) if on_card else out), P.RunResult(r.outputs, stats)


def verify_attention_emu(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, *,
                         page_table: torch.Tensor | None = None, scale: float | None = None,
                         kv_splits: int | None = None, tree_mask: torch.Tensor | None = None):
    """The kernels on the emulator: ([B, T, Hq, D] in q's dtype, RunResult)."""
    return run(emu, q, k_cache, v_cache, pos, page_table=page_table, scale=scale, kv_splits=kv_splits,
               tree_mask=tree_mask)
