"""Plain-loop ground truth of verify_attention, for tests only.

Python loops over batch, rows, heads and keys, float64 math on Python floats,
no masking or batching tricks: a second derivation the vectorized op and its
kernels are compared with. The signature and return type are those of the public op.

`random_parents` draws token trees (parent arrays) for the tests.
"""
from __future__ import annotations

import math

import torch


def verify_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, *,
                     page_table: torch.Tensor | None = None, scale: float | None = None,
                     tree_mask: torch.Tensor | None = None) -> torch.Tensor:
    """q [B, T, Hq, D], caches [B, Hkv, S, D] or paged [blocks, Hkv, blk, D] with page_table
    [B, max_blocks], pos [B] -> [B, T, Hq, D] in q's dtype; row t of sequence b attends keys
    0 .. pos[b]+t, query head h reads KV head h // (Hq/Hkv). With tree_mask [B, T, T]: row t
    attends keys 0 .. pos[b]-1 and key pos[b]+j for each j with tree_mask[b][t][j]."""
    B, T, Hq, D = q.shape
    Hkv = k_cache.shape[1]
    group = Hq // Hkv
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    qs, ks, vs = q.double().tolist(), k_cache.double().tolist(), v_cache.double().tolist()
    positions = [int(p) for p in pos.tolist()]
    table = None if page_table is None else page_table.tolist()
    blk = k_cache.shape[2]
    tree = None if tree_mask is None else tree_mask.tolist()

    def sees(b, t, j):
        """Whether row t of sequence b attends key j."""
        if tree is None:
            return j <= positions[b] + t
        return j < positions[b] or (j < positions[b] + T and tree[b][t][j - positions[b]])

    def slot(cache, b, head, j):
        """The [D] vector of key/value j of sequence b."""
        if table is None:
            return cache[b][head][j]
        return cache[table[b][j // blk]][head][j % blk]

    out = torch.zeros(B, T, Hq, D, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            last_key = positions[b] + (t if tree is None else T - 1)
            for h in range(Hq):
                head = h // group
                keys = [j for j in range(last_key + 1) if sees(b, t, j)]
                scores = []
                for j in keys:
                    key = slot(ks, b, head, j)
                    dot = 0.0
                    for x, y in zip(qs[b][t][h], key):
                        dot += x * y
                    scores.append(dot * scale)
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                row = [0.0] * D
                for i, j in enumerate(keys):
                    value = slot(vs, b, head, j)
                    w = weights[i] / total
                    for d in range(D):
                        row[d] += w * value[d]
                out[b, t, h] = torch.tensor(row, dtype=torch.float64)
    return out.to(q.dtype)


def random_parents(B: int, T: int, g: torch.Generator, *, forest: bool = False) -> torch.Tensor:
    """[B, T]: node 0 the root (-1), node t's parent drawn from 0 .. t-1; forest: from -1 .. t-1
    (-1: another root, a row that sees only itself past the cache)."""
    parents = torch.full((B, T), -1)
    for t in range(1, T):
        parents[:, t] = torch.randint(-1 if forest else 0, t, (B,), generator=g)
    return parents
