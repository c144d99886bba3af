"""accept_prefix in torch and numpy, vectorized over rows (the CPU path); arguments validated by
tt_specdec.ops.accept_prefix. The sampled rule's row work (fixed_probs, residual_weights, sample_fixed: numpy,
the specification and the fallback) runs in tt_specdec._cpu's loops when that is built (fixed_rows.cpp, bit
for bit): the numpy costs ~40 full-row array passes a row."""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from tt_specdec.ops.accept_prefix.checks import PLACEHOLDER
from tt_specdec.errors import check_finite
from tt_specdec.sampling import (ALIGN_BITS, STREAM_ACCEPT, STREAM_SAMPLE, TOP_P_BITS, U_BITS, X_FRAC, argmax,
                                 exp2_tables, fixed_params, seeds_for_rows, uniform_bits)


def accept_prefix(target_logits: torch.Tensor, draft_tokens: torch.Tensor, draft_probs: torch.Tensor | None,
                  num_draft: torch.Tensor | None, temperature: float, top_k: int, top_p: float,
                  seed: int | torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """num_accepted [B], output_tokens [B, k+1] (int64), as tt_specdec.ops.accept_prefix documents; the
    finiteness of target_logits is checked here, in the one argmax pass over every row."""
    B, k1, V = target_logits.shape
    k = k1 - 1
    # [B, k(+1)] small integers from here on: numpy, whose ops cost microseconds (torch's ~10x more)
    d = draft_tokens.long().numpy()
    lim = np.full(B, k) if num_draft is None else num_draft.long().numpy()
    # one pass over every row: greedy's target tokens, and the finiteness check of both paths (sampling
    # reads only the rows it reaches)
    target_logits = exact_fp32(target_logits)
    target_tokens = argmax(target_logits, check="target_logits").numpy()  # [B, k+1]
    if temperature == 0.0:
        accepted = (target_tokens[:, :k] == d) & (np.arange(k) < lim.reshape(B, 1))
        n = accepted.cumprod(1).sum(1)  # [B]
        final = target_tokens[np.arange(B), n]
    else:
        n, final = accept_sampled(target_logits, d, draft_probs, lim, temperature, top_k, top_p,
                                  seeds_for_rows(seed, B))  # an int: one seed for the call, rows independent
    output = np.where(np.arange(k + 1) < n.reshape(B, 1), np.concatenate([d, d[:, :1]], 1), PLACEHOLDER)
    output[np.arange(B), n] = final
    if num_draft is not None:
        skipped = lim < 0
        n = np.where(skipped, PLACEHOLDER, n)
        output[skipped] = PLACEHOLDER
    return torch.from_numpy(n.astype(np.int64)), torch.from_numpy(output.astype(np.int64))


def accept_sampled(target_logits: torch.Tensor, d: np.ndarray, draft_probs: torch.Tensor | None, lim: np.ndarray,
                   temperature: float, top_k: int, top_p: float, seed: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Speculative sampling's accept test, row by row, in the integers of sampling.fixed_params: (n [B], the
    recovered/bonus token [B]).

    A row's target weights are computed only for the positions it reaches (the drafts up to the first
    rejection, then the residual's or the bonus's row): most drafts are rejected early. The caller has checked
    that every row is finite."""
    B, k = d.shape
    V = target_logits.shape[-1]
    scale, shift, top_p_fixed = fixed_params(temperature, top_p)
    top_k = top_k if 0 < top_k < V else 0
    q = None if draft_probs is None else draft_probs.float().contiguous()  # [B, k, V]
    q_bits = None if q is None else q.view(torch.int32)
    u_accept = uniform_bits(seed.view(B, 1).numpy(), STREAM_ACCEPT, np.arange(k).reshape(1, k))  # [B, k]
    u_sample = uniform_bits(seed.numpy(), STREAM_SAMPLE, 0)  # [B]
    # narrow rows: every row at once (numpy's per-call cost dominates); wide ones: only the rows reached
    small = V <= SMALL_ROW
    if small:
        row_w, row_z = probs_of(target_logits, scale, shift, top_k, top_p_fixed)  # [B, k+1, V], [B, k+1]
    n, final = np.zeros(B, dtype=np.int64), np.full(B, PLACEHOLDER, dtype=np.int64)
    for b in range(B):
        if lim[b] < 0:  # a finished row: nothing to accept or draw
            continue
        t = 0
        while True:
            pw, z = (row_w[b, t], row_z[b, t]) if small else \
                probs_of(target_logits[b, t], scale, shift, top_k, top_p_fixed)  # [V], their sum
            z = int(z)  # Python ints from here: the accept test's products pass 2^64
            if t >= lim[b]:  # every offered draft accepted: the bonus token draws from p itself
                residual = pw
                break
            q_d = ONE_BITS if q_bits is None else int(q_bits[b, t, d[b, t]]) & MASK32
            if accepts(int(u_accept[b, t]), q_d, z, int(pw[d[b, t]])):
                t += 1
                continue
            # rejected: the recovered token draws from max(0, p - q_t) (q one-hot on the draft without draft_probs)
            if q_bits is None:
                residual = pw.copy()
                residual[d[b, t]] = 0
            else:
                residual = residuals_of(pw, np.array(z), q[b, t])
            if residual.sum() == 0:  # p == q on the support: rejection has probability 0, keep p
                residual = pw
            break
        n[b], final[b] = t, int(samples_of(residual, u_sample[b:b + 1])[0])
    return n, final


MASK32 = 0xFFFFFFFF
SMALL_ROW = 2048  # rows up to this wide: accept_sampled computes every row's weights at once
ONE_BITS = 0x3F800000  # 1.0f: q of a drafter without probabilities


def exact_fp32(logits: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 logits as fp32 (exact: the same argmax and the same fixed_params bits), one copy for every row:
    _cpu's argmax and integer rows read fp32 (torch's bf16 argmax costs ~0.3 ms a 49152-wide row). Others as given."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) and logits.device.type == "cpu" else logits


@functools.cache
def engine():
    """tt_specdec._cpu when it is built with the integer rows (fixed_rows.cpp), else None: the numpy runs."""
    try:
        from tt_specdec import _cpu
    except ImportError:
        return None
    return _cpu if hasattr(_cpu, "fixed_probs_rows") else None


@functools.cache
def exp2_table_tensor() -> torch.Tensor:
    """sampling.exp2_tables() as [3, 256] int64: the engine's tables are these, passed in."""
    return torch.tensor(exp2_tables(), dtype=torch.int64)


def probs_of(logits: torch.Tensor, scale: int, shift: int, top_k: int, top_p_fixed: int) -> tuple[np.ndarray, np.ndarray]:
    """fixed_probs of logits [..., V] (finite; any float dtype, rounded to fp32): (w [..., V], z [...]) int64."""
    cpu = engine()
    if cpu is None or logits.device.type != "cpu" or logits.numel() == 0:
        return fixed_probs(fp32_bits(logits), scale, shift, top_k, top_p_fixed)
    rows = logits.float().reshape(-1, logits.shape[-1]).contiguous()
    w, z = torch.empty(rows.shape, dtype=torch.int64), torch.empty(rows.shape[0], dtype=torch.int64)
    if not cpu.fixed_probs_rows(rows, scale, shift, top_k, top_p_fixed, exp2_table_tensor(), w, z):
        check_finite("target_logits", logits)  # raises, naming the first bad index
    return w.view(logits.shape).numpy(), z.view(logits.shape[:-1]).numpy()


def residuals_of(pw: np.ndarray, z: np.ndarray, q: torch.Tensor) -> np.ndarray:
    """residual_weights of weights pw [..., V] (int64), their sums z [...] and q [..., V] (float32 CPU rows)."""
    cpu = engine()
    if cpu is None or pw.size == 0:
        return residual_weights(pw, z[..., None], q.contiguous().view(torch.int32).numpy().astype(np.int64) & MASK32)
    V = pw.shape[-1]
    out = torch.empty(pw.shape, dtype=torch.int64)
    cpu.residual_rows(torch.from_numpy(np.ascontiguousarray(pw)).view(-1, V), torch.from_numpy(
        np.ascontiguousarray(z, dtype=np.int64)).view(-1), q.contiguous().view(-1, V), out.view(-1, V))
    return out.numpy()


def samples_of(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """sample_fixed of each row of weights [R, V] (or one row [V]) with u [R] (int64 24-bit): ids [R] int64."""
    rows = weights.reshape(-1, weights.shape[-1])
    cpu = engine()
    if cpu is None or rows.size == 0:
        return np.array([sample_fixed(w, int(ub)) for w, ub in zip(rows, u)], dtype=np.int64)
    out = torch.empty(rows.shape[0], dtype=torch.int64)
    cpu.sample_fixed_rows(torch.from_numpy(np.ascontiguousarray(rows)), torch.from_numpy(
        np.ascontiguousarray(u, dtype=np.int64)), out)
    return out.numpy()


def fp32_bits(x: torch.Tensor) -> np.ndarray:
    """x [...] -> its fp32 bit patterns [...] (int64, 0 .. 2^32 - 1); other dtypes rounded to fp32 first."""
    return x.float().contiguous().view(torch.int32).numpy().astype(np.int64) & MASK32


def significand(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fp32 bits [...] -> (M, sh) [...]: |value| = M * 2^-sh, M the 24-bit significand."""
    exponent = (bits >> 23) & 0xFF
    return (bits & 0x7FFFFF) | ((exponent > 0).astype(np.int64) << 23), 150 - np.maximum(exponent, 1)


def sort_keys(bits: np.ndarray) -> np.ndarray:
    """accept_prefix_common.hpp's fp32_key: unsigned keys [...] ordered as the logits, -0 == +0."""
    bits = np.where((bits & 0x7FFFFFFF) == 0, 0, bits)
    return np.where(bits >> 31 == 1, ~bits & MASK32, bits | 0x80000000)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Bit lengths [...] of non-negative int64 [...]: frexp's exponent of x as float64, which rounding can raise by
    one (to the next power of two), corrected by one integer compare."""
    exponent = np.frexp(x.astype(np.float64))[1].astype(np.int64)
    return exponent - ((x >> np.maximum(exponent - 1, 0)) == 0) * (x > 0)


def fixed_weights(bits: np.ndarray, max_bits: np.ndarray, scale: int, shift: int) -> np.ndarray:
    """Weights w [..., V] (int64, 0 .. 2^31) of logits [..., V] (fp32 bits) below their row's largest (its bits
    [..., 1]): sampling.fixed_params steps 1-4, 2^31 * 2^-((s_max - s) * log2(e) / temperature)."""
    M, sh = significand(bits)
    M_max, sh_max = significand(max_bits)
    e0 = np.maximum(-sh, -sh_max) - ALIGN_BITS
    aligned = lambda a, e: (a << np.maximum(e - e0, 0)) >> np.minimum(np.maximum(e0 - e, 0), 63)  # noqa: E731
    signed = lambda m, b: np.where(b >> 31 == 1, -m, m)  # noqa: E731
    d = aligned(signed(M_max, max_bits), -sh_max) - aligned(signed(M, bits), -sh)  # [..., V] in [0, 2^63)
    cut = np.maximum(bit_length(d) - 32, 0)
    D, De = d >> cut, e0 + cut
    r = shift - X_FRAC - De
    vanishing = (D > 0) & (r <= 0)  # x >= 2^30 / 2^24: weight 0
    r = np.clip(r, 1, 64)
    X = np.where(D == 0, 0, (((D * scale) >> (r - 1)) + 1) >> 1)
    xi, f = np.where(vanishing, 32, X >> X_FRAC), X & ((1 << X_FRAC) - 1)
    t1, t2, t3 = (np.array(t, dtype=np.int64) for t in exp2_tables())
    m = (t1[f >> 16] * t2[(f >> 8) & 0xFF] + (1 << 30)) >> 31
    m = (m * t3[f & 0xFF] + (1 << 30)) >> 31
    small = np.minimum(xi, 31)
    return np.where(xi >= 32, 0, (m + ((1 << small) >> 1)) >> small)


def weight_cut_key(max_bits: int, scale: int, shift: int) -> int:
    """A key below which every token's weight is 0: that of an fp32 s_cut <= s_max - 33.5 / c (c = scale * 2^-shift,
    the procedure's own). Below it x > 33.5, and the integer x is within 2^-25 + x * 2^-30 of that: >= 32, weight 0.
    Floats on one value (a host-side bound, as fixed_params): s_cut in float64, to the nearest fp32, then two fp32
    steps lower (one for that rounding, one for float64's)."""
    c = math.ldexp(scale, -shift) if shift > -900 else math.inf  # ldexp overflow: x is infinite past s_max
    s_max = float(np.array([max_bits], dtype=np.uint32).view(np.float32)[0])
    with np.errstate(over="ignore"):  # below fp32's range: -inf, every token a candidate
        cut = np.array([s_max - 33.5 / c if c > 0 else -math.inf], dtype=np.float32)
    down = np.float32(-np.inf)
    cut = np.nextafter(np.nextafter(cut, down), down)
    return int(sort_keys(cut.view(np.uint32).astype(np.int64))[0])


def fixed_probs(bits: np.ndarray, scale: int, shift: int, top_k: int,
                top_p_fixed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of p as integers, logits [..., V] (fp32 bits): (w on the kept set, 0 elsewhere [..., V] int64; z [...],
    their sums), p = w / z (sampling.fixed_params steps 1-7). top_k 0: off; top_p_fixed 0: off."""
    V = bits.shape[-1]
    keys = sort_keys(bits)
    max_bits = np.take_along_axis(bits, keys.argmax(-1)[..., None], -1)
    if bits.ndim == 1:  # one wide row: only the tokens that can have a weight
        w = np.zeros(V, dtype=np.int64)
        candidates = np.flatnonzero(keys >= weight_cut_key(int(max_bits[0]), scale, shift))
        w[candidates] = fixed_weights(bits[candidates], max_bits, scale, shift)
    else:
        w = fixed_weights(bits, max_bits, scale, shift)
    if top_k:
        w = np.where(keys >= np.partition(keys, V - top_k, axis=-1)[..., V - top_k:V - top_k + 1], w, 0)
    if top_p_fixed:
        # T = ceil(top_p_fixed * z_k / 2^32) with z_k = z1 * 2^32 + z0: each product below 2^64
        z_k = w.sum(-1)
        low = (np.uint64(top_p_fixed) * (z_k & MASK32).astype(np.uint64) + np.uint64(MASK32)) >> np.uint64(32)
        target = top_p_fixed * (z_k >> 32) + low.astype(np.int64)
        # key descending, then index ascending; one wide row sorts only its tokens of weight > 0 (the others add
        # nothing to the sums, and their p is 0 kept or not)
        live = np.flatnonzero(w) if w.ndim == 1 else None
        order = np.argsort(-keys, axis=-1, kind="stable") if live is None else \
            live[np.argsort(-keys[live], kind="stable")]
        ordered = np.take_along_axis(w, order, -1)
        kept = np.zeros(keys.shape, dtype=bool)
        np.put_along_axis(kept, order, np.cumsum(ordered, -1) - ordered < target[..., None], -1)
        w = np.where(kept, w, 0)
    return w, w.sum(-1)


def accepts(u: int, q_bits: int, z: int, w_d: int) -> bool:
    """u * q < w_d / z (u = U / 2^24, q from its fp32 bits), exactly: sampling.fixed_params step 8."""
    M, sh = (int(v) for v in significand(np.int64(q_bits)))
    g = U_BITS + sh
    return (u * M * z) << max(0, -g) < w_d << max(0, g)


def residual_weights(pw: np.ndarray, z: int, q_bits: np.ndarray) -> np.ndarray:
    """max(0, pw - floor(q * z)) [V] (int64) for q's row [V] (fp32 bits): sampling.fixed_params step 9."""
    M, sh = significand(q_bits)
    qz = (M * (z >> 24) + ((M * (z & 0xFFFFFF)) >> 24)) >> np.clip(sh - 24, 0, 63)
    return np.where(sh <= 23, 0, np.maximum(pw - qz, 0))


def sample_fixed(weights: np.ndarray, u: int) -> int:
    """The first index whose running sum of weights [V] (int64) exceeds floor(u * sum / 2^24): step 10."""
    total = int(weights.sum())
    threshold = u * (total >> 24) + ((u * (total & 0xFFFFFF)) >> 24)
    return min(int(np.searchsorted(np.cumsum(weights), threshold, side="right")), weights.shape[0] - 1)


def accept_tree(target_logits: torch.Tensor, tree_tokens: torch.Tensor, parents: torch.Tensor,
                draft_probs: torch.Tensor | None = None, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                seed: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """num_accepted [B], output_tokens [B, T], accepted_slots [B, T] (int64), as
    tt_specdec.ops.accept_prefix.accept_tree documents (greedy, or sampled by recursive rejection)."""
    B, T, _ = target_logits.shape
    rows = np.arange(B)
    tokens, par = tree_tokens.long().numpy(), parents.long().numpy()
    depth = np.zeros((B, T), np.int64)
    for t in range(1, T):  # parents come first
        depth[:, t] = depth[rows, par[:, t]] + 1
    # one pass over every row: greedy's target tokens, and the finiteness check of both paths (sampling
    # reads only the rows it reaches)
    target_logits = exact_fp32(target_logits)
    target_tokens = argmax(target_logits, check="target_logits").numpy()  # [B, T]
    if temperature == 0.0:
        ok = np.zeros((B, T), bool)  # node t is on the accepted path
        ok[:, 0] = True
        for t in range(1, T):
            ok[:, t] = ok[rows, par[:, t]] & (tokens[:, t] == target_tokens[rows, par[:, t]])
        # the accepted nodes form one path (siblings have distinct tokens): its end is the deepest of them
        end = np.where(ok, depth, -1).argmax(1)  # [B]
        final = target_tokens[rows, end]  # recovered (end has children) or bonus (a leaf)
    else:
        end, final = accept_tree_sampled(target_logits, tokens, par, draft_probs, temperature, top_k, top_p,
                                         seeds_for_rows(seed, B))
    n = depth[rows, end]
    slots = np.tile(np.arange(T), (B, 1))  # rows j > n: identity (rollback copies nothing)
    node = end.copy()
    for j in range(T - 1, -1, -1):  # walk up from the end: path node j of row b is at depth j
        at = n >= j
        slots[rows[at], j] = node[at]
        node = np.where(at, np.maximum(par[rows, node], 0), node)
    output = np.where(np.arange(T) < n.reshape(B, 1), np.take_along_axis(tokens, np.roll(slots, -1, 1), 1), PLACEHOLDER)
    output[rows, n] = final
    return torch.from_numpy(n), torch.from_numpy(output.astype(np.int64)), torch.from_numpy(slots)


def accept_tree_sampled(target_logits: torch.Tensor, tokens: np.ndarray, par: np.ndarray,
                        draft_probs: torch.Tensor | None, temperature: float, top_k: int, top_p: float,
                        seed: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Recursive rejection over siblings, vectorized over rows, in the integers of sampling.fixed_params: (the
    accepted path's end node [B], the recovered / bonus token [B]).

    Nodes are visited in index order. Node t is tested in the rows whose walk stands at its parent (so its
    earlier siblings were all rejected there): accepted when u * q_t(x_t) < r(x_t) / sum(r), r the integer
    weights the walk carries (accepts), then the walk moves to t with r = p_t's weights; rejected, r becomes
    max(0, r - floor(q_t * sum(r))) (residual_weights; one-hot q: r without x_t). A later sibling of an accepted
    node finds the walk elsewhere and is skipped, a child comes after its parent: one pass. The last token is
    drawn from r (sample_fixed), as accept_prefix draws it: a chain gives its bits. p_t is computed only for the
    rows that reach node t."""
    B, T, V = target_logits.shape
    scale, shift, top_p_fixed = fixed_params(temperature, top_p)
    top_k = top_k if 0 < top_k < V else 0
    u = uniform_bits(seed.view(B, 1).numpy(), STREAM_ACCEPT, np.arange(max(T - 1, 1)).reshape(1, -1))  # [B, T-1]
    q = None if draft_probs is None else draft_probs.float().contiguous()  # [B, T, V]
    q_bits = None if q is None else q.view(torch.int32)
    at_node = np.zeros(B, np.int64)  # where each row's walk stands
    weights = lambda rows, t: probs_of(target_logits[torch.from_numpy(rows), t], scale, shift, top_k,  # noqa: E731
                                       top_p_fixed)[0]
    r = weights(np.arange(B), 0)  # [B, V] int64: p = r / sum(r) is what a child is tested against
    for t in range(1, T):
        rows = np.flatnonzero(at_node == par[:, t])
        if not rows.size:
            continue
        x = tokens[rows, t]
        q_x = np.full(rows.size, ONE_BITS) if q_bits is None else q_bits[torch.from_numpy(rows), t].numpy()[
            np.arange(rows.size), x].astype(np.int64) & MASK32
        z = r[rows].sum(1)  # [R]
        accepted = np.array([accepts(int(u[b, t - 1]), int(qb), int(zb), int(r[b, xb]))
                             for b, qb, zb, xb in zip(rows, q_x, z, x)], dtype=bool)
        up = rows[accepted]
        if up.size:
            at_node[up] = t
            r[up] = weights(up, t)
        down = rows[~accepted]
        if down.size:
            if q_bits is None:
                residual = r[down]  # a copy (fancy indexing)
                residual[np.arange(down.size), x[~accepted]] = 0
            else:
                residual = residuals_of(r[down], z[~accepted], q[torch.from_numpy(down), t])
            moved = residual.sum(1) > 0  # r <= floor(q z) everywhere: the rejection had probability 0; r stays
            r[down[moved]] = residual[moved]
    u_sample = uniform_bits(seed.numpy(), STREAM_SAMPLE, 0)
    return at_node, samples_of(r, u_sample)
