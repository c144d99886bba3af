"""The cost model of speculative decoding, measured on the machine at hand, and k chosen from it.

With per-token acceptance a and k drafts, a step emits E = (1 - a^(k+1)) / (1 - a) tokens
and costs draft(k) + verify(k+1) + the loop's own work, in target decode steps, while plain
decoding costs 1 + o0 a token, so the wall-clock speedup over the target alone is

    S(a, k) = E · (1 + o0) / (d0 + k·c + v(k+1) + o)

c: one draft step / one target decode step; d0: fixed cost of a proposal (a draft-model
catch-up feed, an n-gram lookup); v(T): a T-row target forward / a 1-row one; o, o0: what a
step of the speculative loop (accept, rollback, the policy, bookkeeping) and of plain decoding
(sampling, bookkeeping) take beyond the forward and the proposal. A plain step inside the
speculative loop (k = 0) costs 1 + o_plain. S < 1 for every k means drafting does not pay: the
row decodes plainly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import pathlib
import sys
import time

import numpy as np
import torch

from tt_specdec.drafters.base import Drafter
from tt_specdec.sampling import Sampling
from tt_specdec.models.decoder import Decoder


def expected_tokens(a: float, k: int) -> float:
    """Tokens emitted per step, accepted drafts plus the recovered/bonus one."""
    return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)


@dataclasses.dataclass(frozen=True)
class CostModel:
    c: float  # one draft step / one target decode step
    d0: float  # fixed cost of one proposal / one target decode step
    v: tuple[float, ...]  # v[T-1] = T-row target forward / 1-row forward, T = 1 .. k_max+1
    o: float = 0.0  # the speculative loop's own work per step that verifies drafts / one target decode step
    o0: float = 0.0  # plain decoding's own work per token (sampling, bookkeeping) / one decode step
    o_plain: float = 0.0  # the speculative loop's own work in a step that verifies none / one decode step

    @property
    def k_max(self) -> int:
        return len(self.v) - 1

    def step_cost(self, k: int) -> float:
        """One step of the speculative loop with k drafts, in target decode steps: d0 + k·c + v(k+1) + o;
        a plain one (k = 0): 1 + o_plain."""
        return 1.0 + self.o_plain if k == 0 else self.d0 + k * self.c + self.v[k] + self.o

    def speedup(self, a: float, k: int) -> float:
        """Predicted wall-clock speedup over the target alone at per-token acceptance a."""
        return self.speedup_at_length(expected_tokens(a, k), k)

    def speedup_at_length(self, tokens_per_step: float, k: int) -> float:
        """Predicted speedup of steps with k drafts emitting tokens_per_step (plain decoding: 1 + o0 a token)."""
        return tokens_per_step * (1.0 + self.o0) / self.step_cost(k)

    def best_k(self, a: float, k_max: int | None = None) -> int:
        """k in 0 .. k_max maximising S; 0 when no k beats plain decoding."""
        ks = range(0, min(self.k_max, k_max if k_max is not None else self.k_max) + 1)
        return max(ks, key=lambda k: (self.speedup(a, k), -k))


def _best_times(fns: list, repeats: int) -> list[float]:
    """Each fn's least-disturbed time (other processes only ever add time), in interleaved rounds so
    that a slow spell of the machine hits every fn alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def measure(target: Decoder, drafter: Drafter, *, batch_size: int = 1, k_max: int = 8, context: int = 160,
            repeats: int = 15, sampling: Sampling = Sampling()) -> CostModel:
    """Time the target at T = 1 .. k_max+1 rows and the drafter at k = 1 and k_max, at `context`
    tokens of context, the drafter and the loop's own work with `sampling` (sampling a row of 49152
    probabilities costs a fair part of a decode step: per verify row, and per draft). v is made
    non-decreasing (a T-row forward does the work of a T-1-row one and more: a dip is noise).
    Leaves both caches reallocated (generate allocates its own anyway)."""
    from tt_specdec.spec.loop import keep_hidden_for

    cache_len = context + 2 * (k_max + 2)
    keep_hidden_for(target, drafter)  # as the loop runs it
    target.allocate_cache(batch_size, cache_len)
    # random tokens: the forwards cost the same on any text, and a lookup drafter finds nothing to copy
    # (a proposal then costs what its drafter's steps cost)
    ctx = torch.randint(0, target.vocab_size, (batch_size, cache_len))
    pos = torch.full((batch_size,), context)
    target.prefill(ctx[:, :context], pos)

    def verify(T):
        return lambda: target.forward(ctx[:, context:context + T], pos)

    def propose(k):
        def run():  # a fresh proposal after one new token: what a step pays
            drafter.propose(ctx, pos + 1, k, sampling, torch.zeros(batch_size, dtype=torch.long))
        return run

    drafter.reset(batch_size, cache_len)
    propose(1)()  # the drafter's own prefill, not part of a step
    verify(1)()
    # a drafter that stops where its confidence runs out would stop early on this random context:
    # time k_max steps of it (also a lookup-first drafter's fallback)
    stoppers = [d for d in (drafter, getattr(drafter, "fallback", None)) if getattr(d, "stop_reach", None) is not None]
    saved = [d.stop_reach for d in stoppers]
    for d in stoppers:
        d.stop_reach = 0.0
    try:
        *t, d1, dk = _best_times([verify(T) for T in range(1, k_max + 2)] + [propose(1), propose(k_max)], repeats)
    finally:
        for d, value in zip(stoppers, saved):
            d.stop_reach = value
    c = max(dk - d1, 0.0) / (k_max - 1) / t[0] if k_max > 1 else d1 / t[0]
    d0 = max(d1 / t[0] - c, 0.0)
    # the loops' own work on the target's own text: sampling costs what it costs on real next-token
    # distributions
    o, o0, o_plain = (x / t[0] for x in loop_overhead(target, drafter, batch_size, context, sampling=sampling,
                                                      prompts=own_text(target, batch_size, context).tolist()))
    return CostModel(c=c, d0=d0, v=tuple(itertools.accumulate((x / t[0] for x in t), max)), o=o, o0=o0,
                     o_plain=o_plain)


def own_text(target: Decoder, batch_size: int, length: int, start: int = 16) -> torch.Tensor:
    """[B, length] token ids: `start` random ones, then the target's own greedy continuation. Its
    next-token distributions are about as peaked as a real run's; after random tokens they are flat,
    and top-p's work grows with the nucleus (a flat one holds thousands of tokens)."""
    from tt_specdec.spec.loop import generate_plain

    first = torch.randint(0, target.vocab_size, (batch_size, start), generator=torch.Generator().manual_seed(0))
    gen = generate_plain(target, first.tolist(), max_new_tokens=length - start)
    return torch.cat([first, torch.tensor(gen.tokens)], 1)


def loop_overhead(target: Decoder, drafter: Drafter, batch_size: int, context: int, steps: int = 12,
                  repeats: int = 3, sampling: Sampling = Sampling(),
                  prompts: list[list[int]] | None = None) -> tuple[float, float, float]:
    """(o, o0, o_plain) in seconds per step: a step of speculative_generate that verifies drafts (with
    the adaptive policy), a step of generate_plain, and a step of speculative_generate that verifies
    none, minus the target's forwards and the drafter's proposals in them (timed by wrapping the
    two). Least-disturbed of `repeats`, after the prefill of `prompts` (default: `context` random
    tokens per row; measure gives own_text)."""
    from tt_specdec.spec.loop import generate_plain, speculative_generate

    if prompts is None:
        prompts = torch.randint(0, target.vocab_size, (batch_size, context)).tolist()
    always = AdaptiveK(CostModel(c=0.0, d0=0.0, v=(1.0, 1.0, 1.0)), 2)  # drafting always pays: every step verifies
    never = AdaptiveK(CostModel(c=0.0, d0=0.0, v=(1.0, 9.0, 9.0)), 2, probe_every=steps + 1)  # nor ever does
    spent = [0.0]
    mark: list[tuple[float, float]] = []  # (clock, spent) when the prefill's token is emitted

    def timed(fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
        return run

    def on_tokens(_row, _ids):
        if not mark:
            mark.append((time.perf_counter(), spent[0]))

    runs = [lambda: speculative_generate(target, drafter, prompts, k=2, max_new_tokens=steps, policy=always,
                                         on_tokens=on_tokens, sampling=sampling),
            lambda: generate_plain(target, prompts, max_new_tokens=steps, on_tokens=on_tokens, sampling=sampling),
            lambda: speculative_generate(target, drafter, prompts, k=2, max_new_tokens=steps, policy=never,
                                         on_tokens=on_tokens, sampling=sampling)]
    best = [float("inf")] * len(runs)
    target.forward, drafter.propose = timed(target.forward), timed(drafter.propose)  # instance attributes
    try:
        for _ in range(repeats):
            for i, run in enumerate(runs):
                spent[0] = 0.0
                mark.clear()
                gen = run()
                end = time.perf_counter()
                (t0, s0), = mark[:1]
                best[i] = min(best[i], max((end - t0) - (spent[0] - s0), 0.0) / max(gen.stats.steps, 1))
    finally:
        del target.forward, drafter.propose  # the methods again
    return best[0], best[1], best[2]


def cache_path() -> pathlib.Path:
    root = os.environ.get("TT_SPECDEC_CACHE") or pathlib.Path.home() / ".cache" / "tt_specdec"
    return pathlib.Path(root) / "cost_models.json"


def describe(model) -> str | None:
    """What a cost measurement depends on: the model's class, config and weight dtype."""
    if model is None:
        return None
    params = getattr(model, "parameters", None)
    dtype = getattr(model, "weight_dtype", None) or (next(iter(params()), torch.empty(0)).dtype if params else None)
    threads = getattr(model, "threads", "")  # CpuLlama: its own kernel pool
    backend = getattr(model, "ops_backend", "")  # CpuLlama: "cpu" (its engine) or the per-layer Python path
    return f"{type(model).__name__}:{getattr(model, 'cfg', '')}:{dtype}:{threads}:{backend}"


def describe_drafter(drafter) -> list:
    """What a drafter's cost depends on: its class, its model, its head's vocabulary, its fallback's."""
    head = getattr(drafter, "head", None)
    fallback = getattr(drafter, "fallback", None)
    return [type(drafter).__name__, describe(getattr(drafter, "model", None)),
            None if head is None else len(head.vocab_ids), None if fallback is None else describe_drafter(fallback)]


def sampling_kind(sampling: Sampling) -> str:
    """What the sampling work per row depends on: greedy (an argmax), or sampling with or without the
    top-k and top-p filters (the temperature's value and the filters' sizes change little)."""
    if sampling.greedy:
        return "greedy"
    return f"sample:top_k={sampling.top_k > 0}:top_p={sampling.top_p < 1.0}"


def measured(target: Decoder, drafter: Drafter, *, batch_size: int = 1, k_max: int = 8,
             sampling: Sampling = Sampling()) -> CostModel:
    """measure(), cached on disk per (models, drafter, batch, threads, torch version, sampling_kind)."""
    ident = [describe(target), describe_drafter(drafter), batch_size, k_max, torch.get_num_threads(),
             torch.__version__, sampling_kind(sampling), 9]  # 9: fused C++ sampler, the target's own text
    key = hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:16]
    path = cache_path()
    table = json.loads(path.read_text()) if path.exists() else {}
    if key not in table:  # a few seconds, once per machine and setup: say so (progress on stderr)
        print(f"[tt_specdec] measuring the cost model of {type(drafter).__name__} ({sampling_kind(sampling)}) on this machine "
              f"(once; cached in {path})", file=sys.stderr, flush=True)
        model = measure(target, drafter, batch_size=batch_size, k_max=k_max, sampling=sampling)
        table[key] = dataclasses.asdict(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return CostModel(**{**table[key], "v": tuple(table[key]["v"])})  # as dataclasses.asdict wrote it


class AdaptiveK:
    """Per-row k from a running estimate of per-token acceptance, then cut per draft by the
    drafter's own confidence.

    A step with n accepted of k_eff offered is n successes and, when n < k_eff, one
    failure. Counts decay geometrically so the estimate follows the text; a prior of
    `prior` with weight `prior_weight` steps starts it. A row at k = 0 (plain) is given
    k = 1 every `probe_every` steps so that its estimate can recover.

    `trim`: a drafter that reports `draft_confidence` [B, k] (its probability of each draft)
    lets a row verify only the prefix worth its rows (EAGLE-2's observation: a draft's
    confidence predicts its acceptance). Confidence is mapped to acceptance by a table over
    `bins` confidence bins, learnt as the run goes (drafts are over- or under-confident by
    drafter and text); d_t is accepted with about the product of d_1..d_t's estimates.
    """

    def __init__(self, cost: CostModel, k_max: int, *, prior: float = 0.6, prior_weight: float = 4.0,
                 decay: float = 0.9, probe_every: int = 8, bins: int = 10):
        self.cost, self.k_max = cost, min(k_max, cost.k_max)
        self.prior, self.prior_weight, self.decay, self.probe_every = prior, prior_weight, decay, probe_every
        self.bins = bins
        # for trim: what the step costs after drafting, per verified prefix j: a plain step (1 + o_plain) for
        # j = 0, a (j+1)-row verify and the loop's work (v(j+1) + o) otherwise
        self.after_drafting = np.concatenate([[1.0 + cost.o_plain], np.asarray(cost.v[1:], dtype=np.float64) + cost.o])
        self.reset(0)

    # the state is a few numbers per row and two small tables: numpy, whose per-call cost is a few
    # microseconds (torch's small ops cost a step ~1 ms); tensors in and out
    def reset(self, batch_size: int) -> None:
        self.success = np.zeros(batch_size)
        self.trials = np.zeros(batch_size)
        self.plain_steps = np.zeros(batch_size, dtype=np.int64)
        # confidence -> acceptance per draft source (SOURCES kinds), shared by the rows: prior = the bin's
        # centre, worth prior_weight drafts
        centre = (np.arange(self.bins) + 0.5) / self.bins
        self.bin_hits = np.tile(centre * self.prior_weight, (self.SOURCES, 1))  # [SOURCES, bins]
        self.bin_trials = np.full((self.SOURCES, self.bins), self.prior_weight)

    SOURCES = 2  # the drafter's own probabilities, and copies (drafters/lookup_first.py)

    def table_index(self, confidence: np.ndarray, source: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """confidence [B, k], source [B] or None (0) -> (source [B, 1], bin [B, k]) into the tables."""
        conf = confidence.astype(np.float64)
        index = np.minimum((np.where(np.isnan(conf), 0.0, conf) * self.bins).astype(np.int64), self.bins - 1)
        index = np.maximum(index, 0)  # ufuncs: np.clip costs ~10 us a call
        rows = np.zeros(confidence.shape[0], dtype=np.int64) if source is None else source.astype(np.int64)
        return rows.reshape(-1, 1), index

    def estimate(self, confidence: np.ndarray, source: np.ndarray | None) -> np.ndarray:
        """calibrated() on numpy arrays."""
        table = self.bin_hits / self.bin_trials
        return np.where(confidence > 0, table[self.table_index(confidence, source)], 0.0)

    def calibrated(self, confidence: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """confidence [B, k] in 0..1 (0: not a draft), source [B] or None (0) -> estimated acceptance (float64)."""
        return torch.from_numpy(self.estimate(confidence.numpy(), None if source is None else source.numpy()))

    def trim(self, num_draft: torch.Tensor, confidence: torch.Tensor | None,
             source: torch.Tensor | None = None) -> torch.Tensor:
        """num_draft [B] drafts made per row (-1 skipped), confidence [B, k] or None, source [B] -> the drafts
        each row verifies: the prefix maximising (1 + sum of estimated acceptances of its drafts) / (its
        verify cost + the drafting already spent). A row with NaN confidence (unknown) keeps all."""
        if confidence is None:
            return num_draft
        conf, made = confidence.numpy(), num_draft.numpy()
        B, k = conf.shape
        unsure = np.where(np.isnan(conf), 1.0, conf)  # NaN: no confidence given, taken as sure
        reach = np.cumprod(self.estimate(unsure, None if source is None else source.numpy()), 1)  # P(d_1..d_t accepted)
        tokens = 1.0 + np.concatenate([np.zeros((B, 1)), reach.cumsum(1)], 1)  # [B, k+1]
        rate = tokens / (self.cost.d0 + k * self.cost.c + self.after_drafting[:k + 1])  # per prefix j, drafts spent
        j = np.arange(k + 1)
        rate[j > made.reshape(B, 1)] = -np.inf  # only the drafts a row made
        best = k - rate[:, ::-1].argmax(1)  # the best rate; on a tie the longer prefix
        unknown = (np.isnan(conf) & (j[1:] <= made.reshape(B, 1))).any(1)  # NaN among its drafts: keep all
        return torch.from_numpy(np.where((made <= 0) | unknown, made, best).astype(np.int64))

    def observe(self, num_draft: torch.Tensor, num_accepted: torch.Tensor, confidence: torch.Tensor | None,
                source: torch.Tensor | None = None) -> None:
        """Learn confidence -> acceptance from one step: d_t was judged when d_1..d_{t-1} were accepted."""
        if confidence is None:
            return
        conf = confidence.numpy()
        self.bin_hits *= self.decay ** (1 / self.bins)  # slow: every bin sees only some drafts
        self.bin_trials *= self.decay ** (1 / self.bins)
        n = np.maximum(num_accepted.numpy(), 0).reshape(-1, 1)
        t = np.arange(conf.shape[1])
        # d_t judged: offered and reached (d_1..d_{t-1} accepted); NaN (no confidence) and 0 (no draft) > 0 is False
        judged = (t < np.maximum(num_draft.numpy(), 0).reshape(-1, 1)) & (t <= n) & (conf > 0)  # [B, k]
        rows, index = self.table_index(conf, None if source is None else source.numpy())
        at = (np.repeat(rows, index.shape[1], 1)[judged], index[judged])  # (source, bin) of each judged draft
        np.add.at(self.bin_trials, at, 1.0)
        np.add.at(self.bin_hits, at, ((t < n) & judged)[judged].astype(np.float64))

    def acceptance(self) -> torch.Tensor:
        """[B] estimated per-token acceptance."""
        return torch.from_numpy(self.estimated_acceptance())

    def estimated_acceptance(self) -> np.ndarray:
        """acceptance() as numpy: the running successes and trials with the prior."""
        return (self.success + self.prior * self.prior_weight) / (self.trials + self.prior_weight)

    def choose(self) -> torch.Tensor:
        """[B] k per row for the next step, 0 .. k_max."""
        a = self.estimated_acceptance()
        ks = np.array([self.cost.best_k(a_b, self.k_max) for a_b in a.tolist()], dtype=np.int64)
        probe = (ks == 0) & (self.plain_steps + 1 >= self.probe_every)
        return torch.from_numpy(np.where(probe, 1, ks))

    def update(self, num_draft: torch.Tensor, num_accepted: torch.Tensor, confidence: torch.Tensor | None = None,
               source: torch.Tensor | None = None) -> None:
        """num_draft [B] offered (-1 skipped), num_accepted [B] from accept_prefix, confidence [B, k] and
        source [B] the drafter's or None (see trim)."""
        self.observe(num_draft, num_accepted, confidence, source)
        made = num_draft.numpy()
        offered = np.maximum(made, 0).astype(np.float64)
        n = np.maximum(num_accepted.numpy(), 0).astype(np.float64)
        failed = (n < offered).astype(np.float64)
        live = offered > 0
        self.success = np.where(live, self.success * self.decay + n, self.success)
        self.trials = np.where(live, self.trials * self.decay + n + failed, self.trials)
        self.plain_steps = np.where(made == 0, self.plain_steps + 1, 0)
