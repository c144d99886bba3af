"""Sampling settings, the counter-based RNG and the samplers: a leaf every layer may import
(the drafters, the loop, accept_prefix).

Randomness is counter-based: a uniform is a hash of (per-row seed, stream,
index), 24 bits, exactly representable in fp32. The same numbers can be made on
a device core without a random-state tensor, a row's output does not depend on
what else is in the batch, and a seeded run reproduces exactly.
"""
from __future__ import annotations

import dataclasses
import decimal
import functools
import math

import numpy as np
import torch

from tt_specdec.errors import check_finite

MASK32 = 0xFFFFFFFF
SMALL_HASH = 64  # values hashed as Python ints (below) rather than as numpy arrays
# streams: which random decision a uniform is for
STREAM_DRAFT = 1  # draft token t sampled from q_t
STREAM_ACCEPT = 2  # accept test of draft t: u < p_t(d_t) / q_t(d_t) (a tree's node t: index t - 1)
STREAM_SAMPLE = 3  # the recovered / bonus token (and plain decoding's token)
STREAM_GUMBEL = 4  # coupled mode: the Gumbel noise of (row seed, absolute position, token id)
MASKED = -1e30  # coupled scores of tokens outside the processed distribution's support (finite: argmax checks)


def mix32(x):
    """lowbias32 integer hash (C. Wellons) of Python ints or of uint64 arrays holding uint32 values (products
    wrap mod 2^64 there, grow here; only their low 32 bits are kept either way)."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def _hash(seed, *counters) -> np.ndarray:
    """hash_seed as int64 numpy. A loop's few values (at most SMALL_HASH) are hashed as Python ints: the
    ~50 numpy ops of the array path cost ~0.3 ms right after a target step's weight stream, every step."""
    args = [np.asarray(a, dtype=np.int64) for a in (seed, *counters)]
    values = np.broadcast(*args)
    shape = values.shape
    if values.size <= SMALL_HASH:
        return np.array([_fold(mix32(int(v[0])), map(int, v[1:])) for v in values], dtype=np.int64).reshape(shape)
    # arrays, not 0-d: numpy scalars warn on overflow
    return _fold(mix32(np.atleast_1d(args[0]).astype(np.uint64)),
                 [np.atleast_1d(c).astype(np.uint64) for c in args[1:]]).reshape(shape).astype(np.int64)


def _fold(h, counters):
    """Fold each counter into the hash h: ints or uint64 arrays alike (& keeps the low 32 bits of either)."""
    for c in counters:
        h = mix32(h ^ ((c * 0x9E3779B9) & MASK32))
    return h


def hash_seed(seed: torch.Tensor, *counters) -> torch.Tensor:
    """Fold counters (ints or int tensors, broadcast) into uint32 seeds [B] (as int64)."""
    return torch.from_numpy(_hash(seed, *counters))


def uniform(seed: torch.Tensor, stream: int, index) -> torch.Tensor:
    """Uniforms in [0, 1) (float64, 24-bit) for per-row seeds [B] and indices broadcast against them."""
    return torch.from_numpy(np.asarray(uniform_bits(seed, stream, index) * (1.0 / (1 << U_BITS))))  # 0-d stays an array


def uniform_bits(seed, stream: int, index) -> np.ndarray:
    """The integers U [...] (int64, 0 .. 2^24 - 1) of uniform's U / 2^24: what the integer accept rule uses."""
    return _hash(seed, stream, index) >> (32 - U_BITS)


def step_seeds(seed: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Per-row seeds [B] for the step that starts at positions pos [B]: a row's randomness
    depends only on its own seed and position, not on batch composition or k."""
    return hash_seed(seed, pos)


def row_seeds(seed: int, batch: int) -> torch.Tensor:
    """Distinct uint32 seeds [B] for the rows of one seeded run."""
    return torch.from_numpy(row_seed_values(seed, batch))


def row_seed_values(seed: int, batch: int) -> np.ndarray:
    """row_seeds as int64 numpy, without torch (the card's description builders run where torch is absent)."""
    return _hash(np.full(batch, seed, dtype=np.int64), np.arange(batch))


def seeds_for_rows(seed, batch: int) -> torch.Tensor:
    """An op's `seed` as per-row seeds [B] (int64): an int (or a one-value tensor) is one seed for the call,
    rows independent (row_seeds); per-row seeds [B] are taken as given."""
    values = torch.as_tensor(seed, dtype=torch.int64)
    if values.dim() == 0:
        return row_seeds(int(values), batch)
    return values.reshape(-1).expand(batch) if values.numel() == 1 else values.reshape(batch)


def check_sampling_args(temperature: float, top_k: int, top_p: float) -> None:
    if not temperature >= 0.0 or temperature != temperature or temperature == float("inf"):
        raise ValueError(f"temperature: got {temperature}, expected a finite value >= 0 (0 = greedy)")
    if int(top_k) != top_k or top_k < 0:
        raise ValueError(f"top_k: got {top_k}, expected an integer >= 0 (0 = no top-k)")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p: got {top_p}, expected a value in (0, 1]")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How tokens are chosen, shared by the drafter, the target and accept_prefix.

    coupled (sampling only): every token is the Gumbel-max sample argmax(log p + g) of its processed
    distribution p, with noise g drawn from (row seed, absolute position, token id) alone; the drafter
    draws its drafts with the same noise and a draft is accepted when it is the target's own sample. Seeded
    speculative output is then token for token the target alone's (generate_plain with coupled), whatever
    the drafter, k or cost model (the default). False: speculative sampling's rejection rule (draft_probs,
    residuals), exact in distribution too, its tokens depending on the drafts, k and the policy."""
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    coupled: bool = True  # measured: the same acceptance as the rejection rule (bench/bench_coupled_sampling.py)

    def __post_init__(self):
        check_sampling_args(self.temperature, self.top_k, self.top_p)
        if not isinstance(self.coupled, bool):
            raise ValueError(f"coupled: got {self.coupled!r}, expected True or False")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def process_logits(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0, *,
                   check: str = "logits") -> torch.Tensor:
    """logits [..., V] (finite) -> probabilities [..., V] (float64) after temperature, top-k, then top-p.

    top-k keeps every token whose logit is at least the k-th largest; top-p keeps the
    smallest set of most likely tokens whose mass reaches top_p (the most likely
    token always). temperature must be > 0 here; greedy never calls this.
    A non-finite logit raises ValueError naming `check`, the caller's name for the argument.
    fp32 rows on the CPU take tt_specdec._cpu's fused loop, which checks finiteness in its max pass
    (the torch ops of process_logits_torch, the definition, cost ~1.6 ms a 49152-wide row); its
    values agree with torch's to rounding.
    """
    if not _cpu_rows(logits, torch.float32):
        check_finite(check, logits)
        return process_logits_torch(logits, temperature, top_k, top_p)
    from tt_specdec import _cpu

    rows = logits.reshape(-1, logits.shape[-1]).contiguous()
    probs = torch.empty(rows.shape, dtype=torch.float64)
    if not _cpu.probs_rows(rows, float(temperature), int(top_k), float(top_p), probs):
        check_finite(check, logits)  # raises, naming the first bad index
    return probs.view(logits.shape)


def _cpu_rows(x: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether x is a non-empty CPU tensor of rows of `dtype`, for tt_specdec._cpu's row loops."""
    return x.dtype == dtype and x.device.type == "cpu" and x.dim() > 0 and x.numel() > 0


def process_logits_torch(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """process_logits in torch ops: its definition, and its path for other dtypes and devices."""
    scores = logits.double() / temperature
    V = scores.shape[-1]
    if 0 < top_k < V:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if top_p < 1.0:
        probs = probs.masked_fill(~nucleus(probs, top_p), 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """[..., V] bool: the tokens top-p keeps, by a stable descending sort of the whole row (ties: lower
    index first): a sorted position is kept while the mass of the tokens before it is < top_p."""
    sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # mass of strictly more likely tokens
    return torch.zeros_like(sorted_p, dtype=torch.bool).scatter(-1, order, mass_before < top_p)


def sample_inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Token ids [...] drawn from probs [..., V] (need not be normalised) with uniforms u [...]: the first
    index whose cumulative sum exceeds u times the total. float64 rows on the CPU take tt_specdec._cpu's
    loop, which sums in torch.cumsum's order: the same ids."""
    if not _cpu_rows(probs, torch.float64):
        return sample_inverse_cdf_torch(probs, u)
    from tt_specdec import _cpu

    rows = probs.reshape(-1, probs.shape[-1]).contiguous()
    uniforms = torch.as_tensor(u, dtype=torch.float64).expand(probs.shape[:-1]).reshape(-1).contiguous()
    out = torch.empty(rows.shape[0], dtype=torch.long)
    _cpu.sample_rows(rows, uniforms, out)
    return out.view(probs.shape[:-1])


def sample_inverse_cdf_torch(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """sample_inverse_cdf in torch ops: its definition, and its path for other dtypes and devices."""
    cdf = torch.cumsum(probs.double(), dim=-1)
    threshold = (u.double() * cdf[..., -1]).unsqueeze(-1)
    idx = torch.searchsorted(cdf, threshold, right=True).squeeze(-1)
    return idx.clamp(max=probs.shape[-1] - 1)


def argmax(logits: torch.Tensor, *, check: str | None = None, with_prob: bool = False):
    """torch.argmax(logits, -1) (the first maximum) for finite logits [..., V]: fp32 rows on the CPU go
    through a vectorized loop of tt_specdec._cpu (torch's took ~60 us per 49152-wide row, every step).

    check: the argument's name: a non-finite value raises ValueError naming it (checked in the same pass).
    with_prob: also return each maximum's softmax probability [...] (fp32), a greedy drafter's confidence."""
    if not _cpu_rows(logits, torch.float32):
        if check is not None:
            check_finite(check, logits)
        index = logits.argmax(-1)
        return (index, torch.softmax(logits.float(), -1).gather(-1, index.unsqueeze(-1)).squeeze(-1)) if with_prob \
            else index
    from tt_specdec import _cpu  # built with the package (CMakeLists.txt)

    rows = logits.reshape(-1, logits.shape[-1]).contiguous()
    out = torch.empty(rows.shape[0], dtype=torch.long)
    prob = torch.empty(rows.shape[0]) if with_prob else None
    finite = _cpu.argmax_rows(rows, out, prob)
    if check is not None and not finite:
        check_finite(check, logits)  # raises, naming the first bad index
    index = out.view(logits.shape[:-1])
    return (index, prob.view(logits.shape[:-1])) if with_prob else index


def greedy_or_sample(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                     seed: torch.Tensor | None) -> torch.Tensor:
    """One token per row from logits [B, V]: argmax when temperature == 0, else a seeded sample
    with uniforms from stream STREAM_SAMPLE (seed: per-row step seeds [B])."""
    if temperature == 0.0:
        return argmax(logits, check="logits")
    return sample_inverse_cdf(process_logits(logits, temperature, top_k, top_p), uniform(seed, STREAM_SAMPLE, 0))


def gumbel(seed: int, index: int, ids: np.ndarray) -> np.ndarray:
    """Gumbel noise g [N] (float64) of token ids [N] at absolute position `index` of the row with seed `seed`:
    -log(-log(u)), u = (24-bit hash of (seed, STREAM_GUMBEL, index, id) + 1/2) / 2^24, in (0, 1).

    The hash is _hash's, its last fold vectorized over the ids in uint32 arithmetic (wrapping as the
    masks do): ~0.3 ms for all 49152 ids, and most rows need only top-p's few."""
    h = np.uint32(_fold(mix32(int(seed)), (STREAM_GUMBEL, int(index))))
    x = h ^ (np.asarray(ids).astype(np.uint32) * np.uint32(0x9E3779B9))
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    x = x ^ (x >> np.uint32(16))
    u = ((x >> np.uint32(8)).astype(np.float64) + 0.5) * (1.0 / (1 << 24))
    return -np.log(-np.log(u))


# the largest noise gumbel() can give (u = 1 - 2^-25), plus a margin wider than fp32 rounding of the scores
G_MAX = -math.log(-math.log(((1 << 24) - 0.5) / (1 << 24))) + 0.01


def support_scores(p: np.ndarray, seed: int, index: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One row's coupled scores where its sample can fall: (columns, ascending [M]; log p + g there, fp32 [M]).
    p [N] processed probabilities (float64), ids [N] the token id of each column or None (the column).

    The noise is bounded (g < G_MAX), so a column with log p < log p_top + g_top - G_MAX, p_top the most
    likely, scores below the top column and cannot be the argmax: only the others get noise (without top-p,
    a few hundred of 49152 instead of all; ~0.1 ms a row instead of ~1.3). The argmax is unchanged."""
    top = int(np.argmax(p))
    g_top = float(gumbel(seed, index, np.array([top if ids is None else ids[top]]))[0])
    floor = p[top] * math.exp(g_top - G_MAX)  # > 0: p_top >= 1/N and g_top > -3
    cand = np.flatnonzero(p >= floor)
    noise = gumbel(seed, index, cand if ids is None else ids[cand])
    return cand, (np.log(p[cand]) + noise).astype(np.float32)


def coupled_scores(probs: torch.Tensor, seeds: torch.Tensor, index: torch.Tensor,
                   ids: torch.Tensor | None = None) -> torch.Tensor:
    """Perturbed scores [..., N] (fp32) whose first argmax is the coupled sample of each row.

    probs [..., N] processed probabilities (process_logits), seeds [...] row seeds, index [...] the absolute
    position each row's token is for; ids [N]: the token id of each column (None: the column), so a drafter
    over part of the vocabulary (EAGLE's) draws the noise of the full id. Inside the support (p > 0):
    log p + g, argmax(log p + g) being an exact sample of p (the Gumbel-max trick), where support_scores
    says it can win; MASKED elsewhere (outside the support, and columns too unlikely to win)."""
    rows = probs.reshape(-1, probs.shape[-1]).numpy()
    seed_rows = torch.as_tensor(seeds).expand(probs.shape[:-1]).reshape(-1).tolist()
    index_rows = torch.as_tensor(index).expand(probs.shape[:-1]).reshape(-1).tolist()
    id_of = None if ids is None else ids.numpy()
    out = np.full(rows.shape, MASKED, dtype=np.float32)
    for r, (p, seed, pos) in enumerate(zip(rows, seed_rows, index_rows)):
        support, scores = support_scores(p, seed, pos, id_of)
        out[r, support] = scores
    return torch.from_numpy(out).view(probs.shape)


def coupled_sample(probs: torch.Tensor, seeds: torch.Tensor, index: torch.Tensor,
                   ids: torch.Tensor | None = None) -> torch.Tensor:
    """Column [...] of each row's coupled sample: the first argmax of coupled_scores (arguments as there),
    taken on the support alone (ascending columns, everything else MASKED: the same column). The target, the
    drafters and accept_prefix (on coupled_scores) all take this same argmax."""
    rows = probs.reshape(-1, probs.shape[-1]).numpy()
    seed_rows = torch.as_tensor(seeds).expand(probs.shape[:-1]).reshape(-1).tolist()
    index_rows = torch.as_tensor(index).expand(probs.shape[:-1]).reshape(-1).tolist()
    id_of = None if ids is None else ids.numpy()
    out = np.empty(len(rows), dtype=np.int64)
    for r, (p, seed, pos) in enumerate(zip(rows, seed_rows, index_rows)):
        support, scores = support_scores(p, seed, pos, id_of)
        out[r] = support[np.argmax(scores)]  # the first maximum
    return torch.from_numpy(out).view(probs.shape[:-1])


def sample_next(logits: torch.Tensor, sampling: Sampling, seeds: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The token [B] of each row from logits [B, V] at absolute positions index [B], for the run's row seeds
    [B]: argmax (greedy), the coupled sample, or an inverse-CDF sample keyed by step_seeds(seeds, index)."""
    if sampling.greedy:
        return argmax(logits, check="logits")
    if sampling.coupled:
        return coupled_sample(process_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p),
                              seeds, index)
    return greedy_or_sample(logits, sampling.temperature, sampling.top_k, sampling.top_p, step_seeds(seeds, index))


# ---- speculative sampling's accept rule in integers (accept_prefix: torch, reference, kernels) ----------------
X_FRAC = 24  # fractional bits of x = (s_max - s) * log2(e) / temperature
W_ONE_SHIFT = 31  # the most likely token's weight is 2^31
ALIGN_BITS = 38  # the larger-exponent logit of a difference is shifted left by this much (below 2^62)
U_BITS = 24  # a uniform is U / 2^24, U = hash >> 8
TOP_P_BITS = 32  # top_p as ceil(top_p * 2^32)


def fixed_params(temperature: float, top_p: float) -> tuple[int, int, int]:
    """(scale, shift, top_p_fixed): what the host computes once per call (floats allowed here) for the sampled
    accept rule, which is integer arithmetic from then on. It is written four times, bit for bit: vectorised
    (tt_specdec/ops/accept_prefix/torch_impl.py, numpy: the specification), its host loops (csrc/cpu/fixed_rows.cpp,
    which torch_impl runs when tt_specdec._cpu is built), plain loops over Python ints (reference.py) and the
    data-movement kernel (kernels/writer_accept_prefix_sampling.cpp, rv32im: no float or double anywhere).

    Per row of logits (fp32 bits; bf16 is exact in fp32; other dtypes are rounded to fp32 first):
    1. Logit v as A_v * 2^e_v (E, F its exponent and fraction fields: A = +-(F | 2^23 if E else F),
       e = max(E, 1) - 150), exact. Order: the unsigned key of accept_prefix_common.hpp (-0 == +0).
    2. The difference to the largest logit, d = s_max - s_v >= 0: with e0 = max(e_max, e_v) - 38, each A * 2^(e - e0)
       (a left shift <= 38, or an arithmetic right shift: floor), d_int = their difference (< 2^63); exact
       unless the exponents are more than 38 apart, then off by < 1 in 2^61 of d. Kept to 32 bits: nb =
       bitlength(d_int), D = d_int >> max(0, nb - 32), De = e0 + max(0, nb - 32) (truncation, relative < 2^-31).
    3. x = d * log2(e) / temperature in Q24: c = log2(e) / temperature = scale * 2^-shift, 2^30 <= scale < 2^31
       (rounded: relative < 2^-31); P = D * scale (< 2^63), r = shift - 24 - De; X = 0 if D == 0, "infinite"
       if r <= 0 (then X >= 2^30), else ((P >> (r - 1)) + 1) >> 1 (r capped at 64: rounded half up).
    4. w = 2^31 * 2^-x from X = xi * 2^24 + f1 * 2^16 + f2 * 2^8 + f3: three 256-entry tables T_j[i] =
       round(2^31 * 2^(-i / 2^(8 j))) (exp2_tables; the kernel header holds the same numbers), m = (T1[f1] *
       T2[f2] + 2^30) >> 31, m = (m * T3[f3] + 2^30) >> 31, w = (m + (2^xi >> 1)) >> xi; w = 0 when xi >= 32.
       The largest logit gets exactly 2^31.
    5. top-k: tokens whose key >= the k-th largest key (ties kept); z_k = sum of their w (uint64).
    6. top-p (top_p_fixed = ceil(top_p * 2^32), off when >= 2^32, i.e. top_p == 1): T = ceil(top_p_fixed * z_k /
       2^32) (multiword); among the top-k tokens ordered by key descending then index ascending, a token is
       kept when the w of the tokens before it sums to < T (the first always: T >= 1). z = sum of the kept w.
    7. p(v) = w_v / z on the kept set, 0 elsewhere.
    8. Accept d with u = U / 2^24 (U = the counter hash >> 8) and q = q_t(d) as fp32 = M * 2^-sh (M its 24-bit
       significand, sh = 150 - max(E, 1); no draft probs: q = 1.0): accepted iff U * M * z * 2^max(0, -g) <
       w_d * 2^max(0, g), g = 24 + sh: u * q < p(d) exactly, 128-bit words in the kernel.
    9. Residual at a rejection: R_v = max(0, pw_v - qz_v), pw = w on the kept set (0 elsewhere), qz_v =
       floor(q_v * z) (z = zh * 2^24 + zl: floor((M * zh + ((M * zl) >> 24)) >> min(sh - 24, 63)); q >= 1 (sh
       <= 23): R_v = 0). Without draft probs q is one-hot on d (R_d = 0, R_v = pw_v elsewhere). If sum R == 0
       (p == q on the support), R = pw. The bonus row: R = pw.
   10. Sample with U' (the STREAM_SAMPLE uniform): threshold = floor(U' * sum R / 2^24) = U' * (S >> 24) +
       ((U' * (S & (2^24 - 1))) >> 24); the token is the first v whose running sum of R exceeds it.

    Bit budgets: w <= 2^31 and V < 2^32 keep every sum below 2^63 (z >> 24 < 2^39: M * zh < 2^63); U * M * z <
    2^111 and w * 2^g are compared in 128 bits. No 64-bit division anywhere (ceilings are per row, on core 0).

    Error against float64 (process_logits): |x - x_exact| <= 2^-25 (rounding) + 2 * 32 * 2^-31 (D, scale) <=
    2^-24 where w > 0, so w_v = 2^31 * 2^-x_v * (1 + e_v) + f_v with |e_v| <= 2^-24 ln 2 + 5 * 2^-31 < 4.5e-8
    (tables and products) and |f_v| <= 1/2 (the final shift; tokens with x >= 32 get 0, losing < 1/2 each). For
    softmax e_v (no top-p): |p_v - e_v| <= 2 * 4.5e-8 * e_v + (1 + V * e_v) * 2^-31 (1 + 1e-7); summed over v,
    < 1e-7 + V * 2^-30. top-p decides on these p: a token whose float mass-before is within that of top_p may
    fall on the other side. The residual's floor moves each R_v by < 1: the chain's output distribution is p
    within (1 + V * R_v / sum R) / z per token, < V * 2^-30 in total (z >= 2^31); the accept test is exact.
    """
    ft, et = math.frexp(temperature)  # c = (log2(e) / ft) * 2^-et: no overflow at any temperature > 0
    fm, em = math.frexp(math.log2(math.e) / ft)
    scale = round(fm * (1 << 31))
    if scale == 1 << 31:
        scale, em = 1 << 30, em + 1
    top_p_fixed = math.ceil(top_p * (1 << TOP_P_BITS))  # top_p * 2^32 is exact in a double
    return scale, 31 + et - em, top_p_fixed if top_p_fixed < 1 << TOP_P_BITS else 0


@functools.cache
def exp2_tables() -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """T1, T2, T3 [256] of fixed_params step 4: round(2^31 * 2^(-i / 2^8)), 2^(-i / 2^16), 2^(-i / 2^24),
    correctly rounded (60-digit decimals)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        two = decimal.Decimal(2)
        return tuple(tuple(int((two ** (31 - decimal.Decimal(i) / (1 << bits))).to_integral_value(
            decimal.ROUND_HALF_EVEN)) for i in range(256)) for bits in (8, 16, 24))
