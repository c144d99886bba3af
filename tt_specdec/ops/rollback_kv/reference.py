"""Plain-loop ground truth of rollback_kv, for tests only.

Python loops over batch, rows, heads and keys, float64 math on Python floats,
no masking or batching tricks: a second derivation the vectorized op and its
kernels are compared with. The signature and return type are those of the public op.

`random_rollback_step` draws consistent steps (with tree compaction) for the tests and
the benchmark.
"""
from __future__ import annotations

import torch

from tt_specdec.ops.rollback_kv.checks import Rollback

PLACEHOLDER = -1


def rollback_kv(pos: torch.Tensor, last: torch.Tensor, num_accepted: torch.Tensor, output_tokens: torch.Tensor, *,
                page_table: torch.Tensor | None = None, block_size: int | None = None,
                accepted_slots: torch.Tensor | None = None, k_cache: torch.Tensor | None = None,
                v_cache: torch.Tensor | None = None) -> Rollback:
    """pos, last, num_accepted [B], output_tokens [B, k+1], page_table [B, max_blocks] ->
    Rollback(pos + n + 1, output_tokens[n], page_table, freed); rows with n == -1 untouched.
    With accepted_slots [B, k+1] and caches ([B or blocks, Hkv, S or blk, D], or stacked over
    layers in front), in place: slot pos + j of every layer and head of K and V takes the row
    slot pos + accepted_slots[j] held before the call, for j <= n."""
    if accepted_slots is not None:
        for b, n in enumerate(num_accepted.tolist()):
            def locate(slot: int) -> tuple[int, int]:
                """(sequence or block, row) of slot `slot` of sequence b."""
                if page_table is None:
                    return b, slot
                return int(page_table[b, slot // block_size]), slot % block_size

            p = int(pos[b])
            sources = [locate(p + int(accepted_slots[b, j])) for j in range(n + 1)]  # n == -1: none
            targets = [locate(p + j) for j in range(n + 1)]
            for cache in (k_cache, v_cache):
                for layer in ([cache] if cache.dim() == 4 else list(cache)):  # views into the caller's cache
                    for h in range(layer.shape[1]):
                        before = [layer[m, h, r].clone() for m, r in sources]  # all read before any is written
                        for (m, r), row in zip(targets, before):
                            layer[m, h, r] = row
    new_pos, new_last = pos.tolist(), last.tolist()
    table = None if page_table is None else page_table.tolist()
    freed = None if page_table is None else [[-1] * len(row) for row in table]
    for b, n in enumerate(num_accepted.tolist()):
        if n < 0:
            continue
        new_pos[b] = new_pos[b] + n + 1
        new_last[b] = output_tokens[b, n].item()
        if table is not None:
            for i, block in enumerate(table[b]):
                # a block starting at or after the new pos holds only rejected drafts
                if block >= 0 and i * block_size >= new_pos[b]:
                    freed[b][i] = block
                    table[b][i] = -1
    if table is None:
        return Rollback(torch.tensor(new_pos, dtype=pos.dtype), torch.tensor(new_last, dtype=last.dtype), None, None)
    shape = tuple(page_table.shape)
    return Rollback(torch.tensor(new_pos, dtype=pos.dtype), torch.tensor(new_last, dtype=last.dtype),
                    torch.tensor(table, dtype=page_table.dtype).reshape(shape),
                    torch.tensor(freed, dtype=page_table.dtype).reshape(shape))


SLOT_PATTERNS = ("chain", "tree", "shuffle", "any")


def random_rollback_step(seed: int, B: int, k: int, *, block_size: int | None = None, layers: int | None = 1,
                         hkv: int = 2, head_dim: int = 32, dtype: torch.dtype = torch.float32) -> dict:
    """A consistent random step with compaction, as keyword arguments of rollback_kv: num_accepted
    in -1..k, output rows of n + 1 tokens then -1, per row accepted_slots that are the chain
    (identity), a tree path (0, then increasing offsets >= j), a permutation (sources and
    destinations overlap) or any offsets (repeats), junk past n; positions at or just before a
    tile or block boundary; caches [L, B or blocks, Hkv, S or block_size, D] (4-D when layers
    is None); with block_size, a page table of distinct blocks covering slots 0 .. pos + k."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(-1, k + 1, (B,), generator=g)
    tokens = torch.randint(0, 50000, (B, k + 1), generator=g)
    output = torch.where(torch.arange(k + 1).view(1, -1) <= n.view(B, 1), tokens, PLACEHOLDER)
    boundary = 32 if block_size is None else block_size * int(torch.randint(1, 3, (), generator=g))
    pos = (boundary * torch.randint(1, 3, (B,), generator=g) - torch.randint(0, k + 2, (B,), generator=g)).clamp(min=0)
    slots = torch.randint(-1, k + 1, (B, k + 1), generator=g)  # junk past n: never read
    for b in range(B):
        pattern = SLOT_PATTERNS[int(torch.randint(0, len(SLOT_PATTERNS), (), generator=g))]
        m = int(n[b]) + 1
        if m == 0:
            continue  # finished row: its slots are junk
        if pattern == "chain":
            slots[b, :m] = torch.arange(m)
        elif pattern == "tree":  # a root-to-leaf path of a tree of k + 1 verify slots
            slots[b, :m] = torch.cat([torch.zeros(1, dtype=torch.long),
                                      torch.randperm(k, generator=g)[:m - 1].sort().values + 1])
        elif pattern == "shuffle":
            slots[b, :m] = torch.randperm(k + 1, generator=g)[:m]
        else:
            slots[b, :m] = torch.randint(0, k + 1, (m,), generator=g)
    reach = int(pos.max()) + k + 1  # slots 0 .. pos + k hold KV after the verify step
    lead = () if layers is None else (layers,)
    step = dict(pos=pos, last=torch.randint(0, 50000, (B,), generator=g), num_accepted=n, output_tokens=output,
                accepted_slots=slots)
    if block_size is None:
        S = reach + int(torch.randint(0, 40, (), generator=g))
        shape = (*lead, B, hkv, S, head_dim)
    else:
        max_blocks = -(-reach // block_size) + 1
        num_blocks = B * max_blocks
        ids = torch.randperm(num_blocks, generator=g).view(B, max_blocks)
        used = -(-(pos + k + 1) // block_size)  # [B] blocks holding slots 0 .. pos + k
        step.update(page_table=torch.where(torch.arange(max_blocks).view(1, -1) < used.view(B, 1), ids, -1),
                    block_size=block_size)
        shape = (*lead, num_blocks, hkv, block_size, head_dim)
    step.update(k_cache=torch.randn(shape, generator=g).to(dtype), v_cache=torch.randn(shape, generator=g).to(dtype))
    return step
