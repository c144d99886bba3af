"""The cost model of speculative decoding, measured on the machine at hand, and k chosen from it.

With per-token acceptance a and k drafts, a step emits E = (1 - a^(k+1)) / (1 - a) tokens
and costs draft(k) + verify(k+1) target decode steps, so the wall-clock speedup over the
target alone is

    S(a, k) = E / (d0 + k·c + v(k+1))

c: one draft step / one target decode step; d0: fixed cost of a proposal (a draft-model
catch-up feed, an n-gram lookup); v(T): a T-row target forward / a 1-row one. S < 1 for
every k means drafting does not pay: the row decodes plainly (k = 0).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import pathlib
import time

import torch

from tt_specdec.drafters.base import Drafter, Sampling
from tt_specdec.models.decoder import Decoder


def expected_tokens(a: float, k: int) -> float:
    """Tokens emitted per step, accepted drafts plus the recovered/bonus one."""
    return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)


@dataclasses.dataclass(frozen=True)
class CostModel:
    c: float  # one draft step / one target decode step
    d0: float  # fixed cost of one proposal / one target decode step
    v: tuple[float, ...]  # v[T-1] = T-row target forward / 1-row forward, T = 1 .. k_max+1

    @property
    def k_max(self) -> int:
        return len(self.v) - 1

    def step_cost(self, k: int) -> float:
        """One step with k drafts, in target decode steps: d0 + k·c + v(k+1); a plain step (k = 0) is 1."""
        return 1.0 if k == 0 else self.d0 + k * self.c + self.v[k]

    def speedup(self, a: float, k: int) -> float:
        """Predicted wall-clock speedup over the target alone; k = 0 is the target alone."""
        return expected_tokens(a, k) / self.step_cost(k)

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


def measure(target: Decoder, drafter: Drafter, *, batch_size: int = 1, k_max: int = 8, context: int = 64,
            repeats: int = 15) -> CostModel:
    """Time the target at T = 1 .. k_max+1 rows and the drafter at k = 1 and k_max, at `context`
    tokens of context. v is made non-decreasing (a T-row forward does the work of a T-1-row one and
    more: a dip is noise). Leaves both caches reallocated (generate allocates its own anyway)."""
    from tt_specdec.spec.loop import keep_hidden_for

    cache_len = context + 2 * (k_max + 2)
    keep_hidden_for(target, drafter)  # as the loop runs it
    target.allocate_cache(batch_size, cache_len)
    ctx = torch.randint(0, target.vocab_size, (batch_size, cache_len))
    pos = torch.full((batch_size,), context)
    target.prefill(ctx[:, :context], pos)

    def verify(T):
        return lambda: target.forward(ctx[:, context:context + T], pos)

    def propose(k):
        def run():  # a fresh proposal after one new token: what a step pays
            drafter.propose(ctx, pos + 1, k, Sampling(), torch.zeros(batch_size, dtype=torch.long))
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
    return CostModel(c=c, d0=d0, v=tuple(itertools.accumulate((x / t[0] for x in t), max)))


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


def measured(target: Decoder, drafter: Drafter, *, batch_size: int = 1, k_max: int = 8) -> CostModel:
    """measure(), cached on disk per (models, drafter, batch, threads, torch version)."""
    ident = [describe(target), describe_drafter(drafter), batch_size, k_max, torch.get_num_threads(),
             torch.__version__, 4]  # 4: the decoder's path in the key; _cpu attention by KV head
    key = hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:16]
    path = cache_path()
    table = json.loads(path.read_text()) if path.exists() else {}
    if key not in table:
        model = measure(target, drafter, batch_size=batch_size, k_max=k_max)
        table[key] = dataclasses.asdict(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    entry = table[key]
    return CostModel(c=entry["c"], d0=entry["d0"], v=tuple(entry["v"]))


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
        self.reset(0)

    def reset(self, batch_size: int) -> None:
        self.success = torch.zeros(batch_size, dtype=torch.float64)
        self.trials = torch.zeros(batch_size, dtype=torch.float64)
        self.plain_steps = torch.zeros(batch_size, dtype=torch.long)
        # confidence -> acceptance per draft source (SOURCES kinds), shared by the rows: prior = the bin's
        # centre, worth prior_weight drafts
        centre = (torch.arange(self.bins, dtype=torch.float64) + 0.5) / self.bins
        self.bin_hits = (centre * self.prior_weight).repeat(self.SOURCES, 1)  # [SOURCES, bins]
        self.bin_trials = torch.full((self.SOURCES, self.bins), self.prior_weight, dtype=torch.float64)

    SOURCES = 2  # the drafter's own probabilities, and copies (drafters/lookup_first.py)

    def table_index(self, confidence: torch.Tensor, source: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """confidence [B, k], source [B] or None (0) -> (source [B, 1], bin [B, k]) into the tables."""
        index = (confidence.nan_to_num(0.0).double() * self.bins).long().clamp(0, self.bins - 1)
        rows = torch.zeros(confidence.shape[0], dtype=torch.long) if source is None else source.long()
        return rows.view(-1, 1), index

    def calibrated(self, confidence: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """confidence [B, k] in 0..1 (0: not a draft), source [B] or None (0) -> estimated acceptance (float64)."""
        table = self.bin_hits / self.bin_trials
        return torch.where(confidence > 0, table[self.table_index(confidence, source)], 0.0)

    def trim(self, num_draft: torch.Tensor, confidence: torch.Tensor | None,
             source: torch.Tensor | None = None) -> torch.Tensor:
        """num_draft [B] drafts made per row (-1 skipped), confidence [B, k] or None, source [B] -> the drafts
        each row verifies: the prefix maximising (1 + sum of estimated acceptances of its drafts) / (its
        verify cost + the drafting already spent). A row with NaN confidence (unknown) keeps all."""
        if confidence is None:
            return num_draft
        B, k = confidence.shape
        reach = torch.cumprod(self.calibrated(confidence.nan_to_num(1.0), source), 1)  # [B, k] P(d_1..d_t accepted)
        tokens = 1.0 + torch.cat([torch.zeros(B, 1, dtype=torch.float64), reach.cumsum(1)], 1)  # [B, k+1]
        spent = self.cost.d0 + k * self.cost.c
        rate = tokens / (spent + torch.tensor(self.cost.v[:k + 1], dtype=torch.float64))  # [B, k+1] per prefix j
        j = torch.arange(k + 1)
        rate = rate.masked_fill(j > num_draft.view(B, 1), float("-inf"))  # only the drafts a row made
        best = k - rate.flip(1).argmax(1)  # the best rate; on a tie the longer prefix
        unknown = (confidence.isnan() & (j[1:] <= num_draft.view(B, 1))).any(1)  # NaN among its drafts: keep all
        return torch.where((num_draft <= 0) | unknown, num_draft, best)

    def observe(self, num_draft: torch.Tensor, num_accepted: torch.Tensor, confidence: torch.Tensor | None,
                source: torch.Tensor | None = None) -> None:
        """Learn confidence -> acceptance from one step: d_t was judged when d_1..d_{t-1} were accepted."""
        if confidence is None:
            return
        self.bin_hits *= self.decay ** (1 / self.bins)  # slow: every bin sees only some drafts
        self.bin_trials *= self.decay ** (1 / self.bins)
        n = num_accepted.clamp(min=0).view(-1, 1)
        t = torch.arange(confidence.shape[1])
        # d_t judged: offered and reached (d_1..d_{t-1} accepted); NaN (no confidence) and 0 (no draft) > 0 is False
        judged = (t < num_draft.clamp(min=0).view(-1, 1)) & (t <= n) & (confidence > 0)  # [B, k]
        rows, index = self.table_index(confidence, source)
        at = (rows.expand_as(index)[judged], index[judged])
        self.bin_trials.index_put_(at, torch.ones(int(judged.sum()), dtype=torch.float64), accumulate=True)
        self.bin_hits.index_put_(at, (t < n).expand_as(judged)[judged].double(), accumulate=True)

    def acceptance(self) -> torch.Tensor:
        """[B] estimated per-token acceptance."""
        return (self.success + self.prior * self.prior_weight) / (self.trials + self.prior_weight)

    def choose(self) -> torch.Tensor:
        """[B] k per row for the next step, 0 .. k_max."""
        ks = torch.tensor([self.cost.best_k(float(a), self.k_max) for a in self.acceptance()], dtype=torch.long)
        probe = (ks == 0) & (self.plain_steps + 1 >= self.probe_every)
        return torch.where(probe, 1, ks)

    def update(self, num_draft: torch.Tensor, num_accepted: torch.Tensor, confidence: torch.Tensor | None = None,
               source: torch.Tensor | None = None) -> None:
        """num_draft [B] offered (-1 skipped), num_accepted [B] from accept_prefix, confidence [B, k] and
        source [B] the drafter's or None (see trim)."""
        self.observe(num_draft, num_accepted, confidence, source)
        offered = num_draft.clamp(min=0).double()
        n = num_accepted.clamp(min=0).double()
        failed = (n < offered).double()
        live = offered > 0
        self.success = torch.where(live, self.success * self.decay + n, self.success)
        self.trials = torch.where(live, self.trials * self.decay + n + failed, self.trials)
        self.plain_steps = torch.where(num_draft == 0, self.plain_steps + 1, torch.zeros_like(self.plain_steps))
