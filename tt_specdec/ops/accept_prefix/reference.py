"""Plain-loop ground truth of accept_prefix, for tests only.

Python loops over batch, rows and keys, no masking or batching tricks: a second derivation the
vectorized op and its kernels are compared with. Greedy compares float64 values; sampling is the
integer procedure of sampling.fixed_params on Python ints, its accept test and residual written with
exact rationals (fractions.Fraction). The signature and return type are those of the public op.

Randomness uses the same counter-based uniforms (`sampling.uniform`) with the
same streams and indices as the vectorized op, so seeded results match exactly.
tree_output_distribution is a third derivation of sampled accept_tree: its exact
output distribution, enumerated instead of sampled. random_tree draws greedy tree cases for the tests.
"""
from __future__ import annotations

import math
import struct
from fractions import Fraction

import torch

from tt_specdec.ops.verify_attention.reference import random_parents
from tt_specdec.sampling import (ALIGN_BITS, STREAM_ACCEPT, STREAM_SAMPLE, TOP_P_BITS, U_BITS, X_FRAC, exp2_tables,
                                 fixed_params, seeds_for_rows, uniform_bits)

PLACEHOLDER = -1


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


def fp32_bits(x: float) -> int:
    """The fp32 bit pattern of x (an fp32 value)."""
    return struct.unpack("<I", struct.pack("<f", x))[0]


def sort_key(bits: int) -> int:
    """Unsigned key ordered as the fp32 logits: -0 == +0, negatives reversed below positives."""
    if bits & 0x7FFFFFFF == 0:
        return 0x80000000
    return 0xFFFFFFFF - bits if bits >> 31 else bits + 0x80000000


def mantissa_exponent(bits: int) -> tuple[int, int]:
    """fp32 bits -> (A, e): the value is exactly A * 2^e (A signed, |A| < 2^24)."""
    field = (bits >> 23) & 0xFF
    magnitude = (bits & 0x7FFFFF) + (1 << 23 if field else 0)
    return (-magnitude if bits >> 31 else magnitude), max(field, 1) - 150


def fixed_weight(bits: int, max_bits: int, scale: int, shift: int) -> int:
    """2^31 * 2^-((s_max - s) * log2(e) / temperature) as sampling.fixed_params steps 1-4 define it."""
    a, e = mantissa_exponent(bits)
    a_max, e_max = mantissa_exponent(max_bits)
    e0 = max(e, e_max) - ALIGN_BITS
    at_e0 = lambda m, ex: m << (ex - e0) if ex >= e0 else m >> (e0 - ex)  # noqa: E731  (>>: floor)
    d = at_e0(a_max, e_max) - at_e0(a, e)
    cut = max(d.bit_length() - 32, 0)
    D, De = d >> cut, e0 + cut
    if D == 0:
        X = 0
    else:
        r = shift - X_FRAC - De
        if r <= 0:
            return 0  # x >= 2^30 / 2^24
        X = (D * scale + (1 << (r - 1))) >> r  # rounded half up
    xi, f = divmod(X, 1 << X_FRAC)
    if xi >= 32:
        return 0
    t1, t2, t3 = exp2_tables()
    m = (t1[f >> 16] * t2[(f >> 8) & 0xFF] + (1 << 30)) >> 31
    m = (m * t3[f & 0xFF] + (1 << 30)) >> 31
    return (m + (1 << xi) // 2) >> xi


def fixed_row(logits: list[float], temperature: float, top_k: int = 0, top_p: float = 1.0) -> list[int]:
    """One row of fp32 logits [V] -> integer weights [V] of p after temperature, top-k, then top-p
    (p = w / sum(w); sampling.fixed_params steps 1-7)."""
    V = len(logits)
    scale, shift, top_p_fixed = fixed_params(temperature, top_p)
    bits = [fp32_bits(x) for x in logits]
    keys = [sort_key(b) for b in bits]
    top = max(range(V), key=lambda i: keys[i])
    weights = [fixed_weight(b, bits[top], scale, shift) for b in bits]
    if 0 < top_k < V:
        kth = sorted(keys, reverse=True)[top_k - 1]
        # ties with the k-th largest are kept
        weights = [w if key >= kth else 0 for w, key in zip(weights, keys)]
    if top_p_fixed:
        target = -(-top_p_fixed * sum(weights) // (1 << TOP_P_BITS))  # ceil(top_p * z_k) in 2^-32 steps
        mass = 0
        for i in sorted(range(V), key=lambda i: (-keys[i], i)):
            # keep the most likely tokens while the mass before them is below top_p
            kept = mass < target
            mass += weights[i]
            weights[i] = weights[i] if kept else 0
    return weights


def fixed_probs_row(logits: list[float], temperature: float, top_k: int = 0, top_p: float = 1.0) -> list[float]:
    """fixed_row as probabilities [V]: the distribution the sampled accept_prefix emits (float64 ratios)."""
    weights = fixed_row(logits, temperature, top_k, top_p)
    return [w / sum(weights) for w in weights]


def residual_fixed(r: list[int], q: list[float]) -> list[int]:
    """After a draft from q [V] (fp32 values) is rejected against integer weights r [V]: max(0, r - floor(q * sum(r)))
    (sampling.fixed_params step 9). Where that is all 0 the rejection had probability 0: r stays."""
    z = sum(r)
    residual = [max(0, r[v] - math.floor(Fraction(q[v]) * z)) for v in range(len(r))]
    return residual if sum(residual) > 0 else r


def sample_fixed(weights: list[int], u: int) -> int:
    """Inverse-CDF sample from integer weights [V] with uniform u / 2^24: the first index whose running sum
    exceeds u * sum / 2^24."""
    threshold = u * sum(weights) // (1 << U_BITS)
    cdf = 0
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
        seeds = seeds_for_rows(seed, B).tolist()  # an int: one seed for the call, rows independent
        q_rows = None if draft_probs is None else draft_probs.float().tolist()  # q is read as fp32
        logits32 = target_logits.float().tolist()  # so are the logits (bf16 exactly)
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
            w = [fixed_row(logits32[b][t], temperature, top_k, top_p) for t in range(k1)]
            # a drafter without probabilities is deterministic: q_t one-hot on d_t
            q = [[1.0 if v == d[t] else 0.0 for v in range(V)] if q_rows is None else q_rows[b][t] for t in range(k)]
            for t in range(k_eff):
                u = Fraction(int(uniform_bits(row_seed, STREAM_ACCEPT, t)), 1 << U_BITS)
                # u < p/q, written without dividing by q: exact rationals
                if u * Fraction(q[t][d[t]]) < Fraction(w[t][d[t]], sum(w[t])):
                    n += 1
                else:
                    break
            residual = residual_fixed(w[n], q[n]) if n < k_eff else w[n]  # recovered, or the bonus token
            final = sample_fixed(residual, int(uniform_bits(row_seed, STREAM_SAMPLE, 0)))
        num_accepted[b] = n
        for t in range(n):
            output[b][t] = d[t]
        output[b][n] = final
    return (torch.tensor(num_accepted, dtype=torch.int64),
            torch.tensor(output, dtype=torch.int64).reshape(B, k1))


def accept_tree(target_logits: torch.Tensor, tree_tokens: torch.Tensor, parents: torch.Tensor, *,
                draft_probs: torch.Tensor | None = None, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                seed: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tree acceptance by walking down from the root. Greedy: the child whose token is the target's argmax
    at the node is accepted; the walk ends at a node without one, whose argmax is emitted. Sampling: the
    node's children are tested in index order by recursive rejection (residual_fixed: the integers of
    sampling.fixed_params); the first accepted one is walked into; when all are rejected (or there are none)
    the last token is drawn from the residual."""
    B, T, V = target_logits.shape
    logits, tokens, par = target_logits.double().tolist(), tree_tokens.tolist(), parents.tolist()
    if temperature > 0:
        seeds = seeds_for_rows(seed, B).tolist()  # an int: one seed for the call, rows independent
        q_rows = None if draft_probs is None else draft_probs.float().tolist()  # q is read as fp32
        logits32 = target_logits.float().tolist()  # so are the logits (bf16 exactly)
    num, out, slots = [], [], []
    for b in range(B):
        node, path, emitted = 0, [0], []
        if temperature > 0:
            row_seed = torch.tensor(seeds[b], dtype=torch.int64)
            r = fixed_row(logits32[b][0], temperature, top_k, top_p)  # integer weights, p = r / sum(r)
        while True:
            children = [c for c in range(T) if par[b][c] == node]
            if temperature == 0.0:
                want = argmax_row(logits[b][node])
                child = next((c for c in children if tokens[b][c] == want), None)
            else:
                child = None
                for c in children:
                    x = tokens[b][c]
                    # a drafter without probabilities is deterministic: q one-hot on its token
                    q = [1.0 if v == x else 0.0 for v in range(V)] if q_rows is None else q_rows[b][c]
                    u = Fraction(int(uniform_bits(row_seed, STREAM_ACCEPT, c - 1)), 1 << U_BITS)  # draft c - 1
                    if u * Fraction(q[x]) < Fraction(r[x], sum(r)):  # u < r/q, without dividing by q: exact
                        child = c
                        break
                    r = residual_fixed(r, q)
            if child is None:
                emitted.append(want if temperature == 0.0 else
                               sample_fixed(r, int(uniform_bits(row_seed, STREAM_SAMPLE, 0))))
                break
            emitted.append(tokens[b][child])
            path.append(child)
            node = child
            if temperature > 0:
                r = fixed_row(logits32[b][node], temperature, top_k, top_p)
        n = len(path) - 1
        num.append(n)
        out.append(emitted + [PLACEHOLDER] * (T - n - 1))
        slots.append(path + list(range(n + 1, T)))
    as_long = lambda x: torch.tensor(x, dtype=torch.int64)  # noqa: E731
    return as_long(num), as_long(out), as_long(slots)


def random_tree(B, T, V, dtype, seed, tie_heavy=False, follow=0.7):
    """A greedy accept_tree case for the tests: logits [B, T, V], tree_tokens [B, T], parents [B, T]
    (verify_attention's random_parents). A node takes its parent's target token with probability `follow`
    (so paths are accepted), else another; siblings distinct, as greedy requires."""
    g = torch.Generator().manual_seed(seed)
    parents = random_parents(B, T, g)
    if tie_heavy:  # few distinct values: many rows have several maxima
        logits = torch.randint(0, 4, (B, T, V), generator=g).to(dtype)
    else:
        logits = (torch.randn(B, T, V, generator=g) * 3).to(dtype)
    target = logits.argmax(-1)  # [B, T] the first maximum
    tokens = torch.randint(0, V, (B, T), generator=g)
    for b in range(B):
        for t in range(1, T):
            taken = {int(tokens[b, s]) for s in range(1, t) if int(parents[b, s]) == int(parents[b, t])}
            if len(taken) == V:  # every token taken under that parent: hang the node under t - 1 (no children yet)
                parents[b, t], taken = t - 1, set()
            pick = int(target[b, parents[b, t]]) if float(torch.rand((), generator=g)) < follow else int(tokens[b, t])
            while pick in taken:
                pick = int(torch.randint(0, V, (), generator=g))
            tokens[b, t] = pick
    return logits, tokens, parents


def residual_step(r: list, w: list, q: list) -> tuple[list, list]:
    """tree_output_distribution's rule in exact arithmetic (the ops draw with residual_fixed's integers): after a
    sibling drawn from q is rejected against the residual r [V] (normalised), the next residual norm(max(0, r - q))
    and its unnormalised weights, which the last token is drawn from. Where r <= q everywhere the rejection had
    probability 0: r and w stay. Any number type (Fraction too)."""
    weights = [max(r[v] - q[v], 0) for v in range(len(r))]
    mass = sum(weights)
    if not mass > 0:
        return r, w
    return [x / mass for x in weights], weights


def tree_output_distribution(p: list, q: list, tree_tokens: list, parents: list) -> dict:
    """The exact distribution of what sampled accept_tree emits for one drafted tree, by enumerating its
    branches with their probabilities instead of drawing uniforms: {emitted tokens (accepted, then the
    recovered / bonus token): probability}.

    p [T][V]: the target's processed distribution at each node; q [T][V]: the distribution each node's token
    was drawn from (one-hot for a deterministic drafter; row 0 unused). Exact with fractions.Fraction
    entries: a test sums it over every drafted tree and compares with the target's own distribution."""
    T, V = len(tree_tokens), len(p[0])
    dist: dict = {}

    def visit(prefix: tuple, r: list, w: list, children: list, chance) -> None:
        if not children:  # the last token: drawn from the residual
            mass = sum(w)
            for v in range(V):
                if w[v] > 0:
                    dist[prefix + (v,)] = dist.get(prefix + (v,), 0) + chance * w[v] / mass
            return
        c, rest = children[0], children[1:]
        x = tree_tokens[c]
        accept = min(1, r[x] / q[c][x])  # P(u < r/q) for u uniform in [0, 1)
        if accept > 0:
            visit(prefix + (x,), p[c], p[c], [d for d in range(T) if parents[d] == c], chance * accept)
        if accept < 1:
            visit(prefix, *residual_step(r, w, q[c]), rest, chance * (1 - accept))

    visit((), p[0], p[0], [d for d in range(T) if parents[d] == 0], 1)
    return dist
