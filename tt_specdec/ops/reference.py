"""Plain-loop ground truth of the three ops, for tests only.

Python loops over batch, rows, heads and keys, float64 math on Python floats,
no masking or batching tricks: a second derivation the vectorized ops are
compared with. Signatures and return types are those of the public ops.
Randomness uses the same counter-based uniforms (`sampling.uniform`) with the
same streams and indices as the vectorized op, so seeded results match exactly.
"""
from __future__ import annotations

import math

import torch

from tt_specdec.ops.rollback_kv import Rollback
from tt_specdec.sampling import STREAM_ACCEPT, STREAM_SAMPLE, uniform

PLACEHOLDER = -1


def verify_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, *,
                     page_table: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """q [B, T, Hq, D], caches [B, Hkv, S, D] or paged [blocks, Hkv, blk, D] with page_table
    [B, max_blocks], pos [B] -> [B, T, Hq, D] in q's dtype; row t of sequence b attends keys
    0 .. pos[b]+t, query head h reads KV head h // (Hq/Hkv)."""
    B, T, Hq, D = q.shape
    Hkv = k_cache.shape[1]
    group = Hq // Hkv
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    qs, ks, vs = q.double().tolist(), k_cache.double().tolist(), v_cache.double().tolist()
    positions = [int(p) for p in pos.tolist()]
    table = None if page_table is None else page_table.tolist()
    blk = k_cache.shape[2]

    def slot(cache, b, head, j):
        """The [D] vector of key/value j of sequence b."""
        if table is None:
            return cache[b][head][j]
        return cache[table[b][j // blk]][head][j % blk]

    out = torch.zeros(B, T, Hq, D, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            last_key = positions[b] + t
            for h in range(Hq):
                head = h // group
                scores = []
                for j in range(last_key + 1):
                    key = slot(ks, b, head, j)
                    dot = 0.0
                    for x, y in zip(qs[b][t][h], key):
                        dot += x * y
                    scores.append(dot * scale)
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                row = [0.0] * D
                for j in range(last_key + 1):
                    value = slot(vs, b, head, j)
                    w = weights[j] / total
                    for d in range(D):
                        row[d] += w * value[d]
                out[b, t, h] = torch.tensor(row, dtype=torch.float64)
    return out.to(q.dtype)


def argmax_row(row: list[float]) -> int:
    """Index of the first maximum, as torch.argmax."""
    best = 0
    for i, x in enumerate(row):
        if x > row[best]:
            best = i
    return best


def process_row(logits: list[float], temperature: float, top_k: int = 0, top_p: float = 1.0) -> list[float]:
    """One row of logits [V] -> probabilities [V] after temperature, top-k, then top-p."""
    V = len(logits)
    scores = [x / temperature for x in logits]
    if 0 < top_k < V:
        kth = sorted(scores, reverse=True)[top_k - 1]
        # ties with the k-th largest are kept
        scores = [s if s >= kth else -math.inf for s in scores]
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    probs = [w / total for w in weights]
    if top_p < 1.0:
        order = sorted(range(V), key=lambda i: probs[i], reverse=True)
        keep = [False] * V
        mass = 0.0
        for i in order:
            # keep the most likely tokens until their mass reaches top_p
            if mass >= top_p:
                break
            keep[i] = True
            mass += probs[i]
        probs = [p if kept else 0.0 for p, kept in zip(probs, keep)]
        total = sum(probs)
        probs = [p / total for p in probs]
    return probs


def sample_row(weights: list[float], u: float) -> int:
    """Inverse-CDF sample from unnormalised weights [V] with one uniform u in [0, 1)."""
    threshold = u * sum(weights)
    cdf = 0.0
    for i, w in enumerate(weights):
        cdf += w
        if cdf > threshold:
            return i
    return len(weights) - 1


def accept_prefix(target_logits: torch.Tensor, draft_tokens: torch.Tensor, *,
                  draft_probs: torch.Tensor | None = None, num_draft: torch.Tensor | None = None,
                  temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                  seed: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """target_logits [B, k+1, V], draft_tokens [B, k] -> num_accepted [B], output_tokens [B, k+1]
    (int64, -1 padded). Arguments are not validated: tests call the public op for that."""
    B, k1, V = target_logits.shape
    k = k1 - 1
    logits = target_logits.double().tolist()
    drafts = draft_tokens.tolist()
    limits = [k] * B if num_draft is None else [int(x) for x in num_draft.tolist()]
    if temperature > 0:
        seeds = torch.as_tensor(seed, dtype=torch.int64).expand(B).tolist()  # an int seeds every row alike
        q_rows = None if draft_probs is None else draft_probs.double().tolist()
    num_accepted = [PLACEHOLDER] * B
    output = [[PLACEHOLDER] * k1 for _ in range(B)]
    for b in range(B):
        k_eff = limits[b]
        if k_eff < 0:
            continue  # finished row: nothing emitted
        d = drafts[b]
        n = 0
        if temperature == 0.0:
            for t in range(k_eff):
                if argmax_row(logits[b][t]) == d[t]:
                    n += 1
                else:
                    break
            final = argmax_row(logits[b][n])
        else:
            row_seed = torch.tensor(seeds[b], dtype=torch.int64)
            p = [process_row(logits[b][t], temperature, top_k, top_p) for t in range(k1)]
            # a drafter without probabilities is deterministic: q_t one-hot on d_t
            q = [[1.0 if v == d[t] else 0.0 for v in range(V)] if q_rows is None else q_rows[b][t] for t in range(k)]
            for t in range(k_eff):
                u = float(uniform(row_seed, STREAM_ACCEPT, t))
                # u < p/q, written without dividing by q
                if u * q[t][d[t]] < p[t][d[t]]:
                    n += 1
                else:
                    break
            if n < k_eff:
                residual = [max(0.0, p[n][v] - q[n][v]) for v in range(V)]
                if sum(residual) <= 0.0:
                    residual = p[n]  # p == q on the support: rejection has probability 0
            else:
                residual = p[n]  # bonus token
            final = sample_row(residual, float(uniform(row_seed, STREAM_SAMPLE, 0)))
        num_accepted[b] = n
        for t in range(n):
            output[b][t] = d[t]
        output[b][n] = final
    return (torch.tensor(num_accepted, dtype=torch.int64),
            torch.tensor(output, dtype=torch.int64).reshape(B, k1))


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
