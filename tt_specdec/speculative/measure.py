"""The cost model measured on the machine at hand (tt_specdec.speculative.cost), cached on disk.

measure() times the target's T-row forwards, the drafter's proposals and the loops' own work
(the speculative loop and plain decoding, run with their forwards and proposals timed apart);
measured() caches the result per models, drafter, batch, threads and sampling kind (runtime/cachefile.py: checked
on read, written atomically under a lock; a measurement taken on busy cores is taken again on later runs).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import pathlib
import sys
import time

import torch

from tt_specdec.drafters.base import Drafter
from tt_specdec.models.decoder import Decoder, TreeDecoder
from tt_specdec.runtime import cachefile
from tt_specdec.sampling import Sampling
from tt_specdec.speculative.cost import CostModel
from tt_specdec.speculative.policy import AdaptiveK


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
    cache_len = context + 2 * (k_max + 2)
    target.allocate_cache(batch_size, cache_len, keep_hidden=drafter.needs_target_hidden)  # as the loop runs it
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
    stoppers = [d for d in (drafter, getattr(drafter, "fallback", None)) if d is not None and d.stop_reach is not None]
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
    from tt_specdec.speculative.loop import generate_plain

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
    from tt_specdec.speculative.loop import generate_plain, speculative_generate

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
    forwards = ["forward"] + (["forward_tree"] if isinstance(target, TreeDecoder) else [])  # a tree's verify too
    for name in forwards:
        setattr(target, name, timed(getattr(target, name)))  # instance attributes
    drafter.propose = timed(drafter.propose)
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
        for name in forwards:
            delattr(target, name)  # the methods again
        del drafter.propose
    return best[0], best[1], best[2]


def cache_path() -> pathlib.Path:
    return cachefile.root() / "cost_models.json"


def describe(model) -> str | None:
    """What a cost measurement depends on: the model's class, config and weight dtype."""
    if model is None:
        return None
    params = getattr(model, "parameters", None)
    dtype = getattr(model, "weight_dtype", None) or (next(iter(params()), torch.empty(0)).dtype if params else None)
    threads = getattr(model, "threads", "")  # CpuLlama: its own kernel pool
    attention = getattr(model, "attention", "")  # CpuLlama: "cpu" (its engine) or the per-layer Python path
    path = getattr(model, "matrix_path", None)  # CpuLlama: avx2 / avx512_bf16 / amx cost a verify row differently
    build = getattr(model, "engine_build", None)  # CpuLlama: its kernels' build (a rebuild is measured anew)
    ident = f"{type(model).__name__}:{getattr(model, 'cfg', '')}:{dtype}:{threads}:{attention}"
    return ident + (f":{path}" if path else "") + (f":{build}" if build else "")


def describe_drafter(drafter) -> list:
    """What a drafter's cost depends on: its class, its model, its head's vocabulary, its fallback's; a tree
    drafter's width and lookup branch."""
    head = getattr(drafter, "head", None)
    fallback = getattr(drafter, "fallback", None)
    ident = [type(drafter).__name__, describe(getattr(drafter, "model", None)),
             None if head is None else len(head.vocab_ids), None if fallback is None else describe_drafter(fallback)]
    if getattr(drafter, "makes_trees", False):  # the others' keys stay as they were (their cached entries too)
        ident.append(f"tree:w={drafter.top_children}:lookup={drafter.lookup is not None}")
    return ident


def sampling_kind(sampling: Sampling) -> str:
    """What the sampling work per row depends on: greedy (an argmax), or sampling with or without the
    top-k and top-p filters (the temperature's value and the filters' sizes change little)."""
    if sampling.greedy:
        return "greedy"
    return f"sample:top_k={sampling.top_k > 0}:top_p={sampling.top_p < 1.0}" + (":coupled" if sampling.coupled else "")


COST_KIND = "tt_specdec.cost_models"
COST_VERSION = 10  # 10: entries {"model", "contention", "tries"} in a checked file; 9: fused C++ sampler
# A measurement whose threads waited for a core longer than this fraction of its wall time was taken on a
# contended machine: it is used, and cached provisionally: the next runs measure again (at most
# MAX_TRIES in all), keeping the least contended, so one busy moment is not cached for good.
CONTENDED = 0.10
MAX_TRIES = 3


def run_queue_wait() -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a core (Linux schedstat,
    summed over threads); None where the kernel does not report it."""
    total, seen = 0, False
    for p in pathlib.Path("/proc/self/task").glob("*/schedstat"):
        try:
            total += int(p.read_text().split()[1])
            seen = True
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return total / 1e9 if seen else None


def contended_measure(target: Decoder, drafter: Drafter, **kw) -> tuple[CostModel, float]:
    """measure() and the contention it ran under: run-queue wait / wall time (0.0 where unknown)."""
    w0, t0 = run_queue_wait(), time.perf_counter()
    model = measure(target, drafter, **kw)
    w1, wall = run_queue_wait(), time.perf_counter() - t0
    return model, (0.0 if w0 is None or w1 is None or wall <= 0 else max(w1 - w0, 0.0) / wall)


def _entry(raw) -> dict:
    """A cost table entry as written by measured(), checked; Invalid says what is wrong."""
    if not isinstance(raw, dict) or set(raw) != {"model", "contention", "tries"}:
        raise cachefile.Invalid("an entry without model, contention, tries")
    try:
        model = CostModel(**{**raw["model"], "v": tuple(raw["model"]["v"])})
    except (TypeError, KeyError) as e:
        raise cachefile.Invalid(f"an entry's model does not fit CostModel: {e}") from None
    numbers = [model.c, model.d0, model.o, model.o0, model.o_plain, *model.v, raw["contention"]]
    if not model.v or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x == x
                              and abs(x) != float("inf") and x >= 0 for x in numbers):
        raise cachefile.Invalid("an entry with a value that is not a finite number >= 0")
    if not isinstance(raw["tries"], int) or raw["tries"] < 1:
        raise cachefile.Invalid("an entry's tries is not an int >= 1")
    return {"model": model, "contention": float(raw["contention"]), "tries": raw["tries"]}


def read_cost_table(path: pathlib.Path, *, quiet: bool = False) -> dict[str, dict]:
    """The checked entries of the cost cache by key ({} when absent); a file or entry that does not
    validate is left out with a one-line notice (the next write replaces the file)."""
    try:
        raw = cachefile.read_json(path, COST_KIND, COST_VERSION) or {}
    except (cachefile.Invalid, OSError) as e:
        if not quiet:
            cachefile.notice(path, str(e))
        return {}
    table = {}
    for key, value in raw.items():
        try:
            table[key] = _entry(value)
        except cachefile.Invalid as e:
            if not quiet:
                cachefile.notice(path, f"entry {key}: {e}")
    return table


def write_cost_table(path: pathlib.Path, table: dict[str, dict]) -> None:
    cachefile.write_json(path, COST_KIND, COST_VERSION, {
        key: {"model": {**dataclasses.asdict(e["model"]), "v": list(e["model"].v)}, "contention": e["contention"],
              "tries": e["tries"]} for key, e in table.items()})


def settled(entry: dict | None) -> bool:
    return entry is not None and (entry["contention"] <= CONTENDED or entry["tries"] >= MAX_TRIES)


def measured(target: Decoder, drafter: Drafter, *, batch_size: int = 1, k_max: int = 8,
             sampling: Sampling = Sampling()) -> CostModel:
    """measure(), cached on disk per (models, drafter, batch, threads, torch version, sampling_kind).

    The cache file is checked on read (a bad file or entry: a notice, then measured again), written
    atomically under a lock (processes measuring at once keep each other's entries; the second waits
    for the first rather than measuring on cores the first is using); a measurement taken on contended
    cores is re-taken on later runs (CONTENDED, MAX_TRIES)."""
    ident = [describe(target), describe_drafter(drafter), batch_size, k_max, torch.get_num_threads(),
             torch.__version__, sampling_kind(sampling), COST_VERSION]
    key = hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:16]
    path = cache_path()
    entry = read_cost_table(path).get(key)
    if settled(entry):
        return entry["model"]
    with cachefile.locked(path):
        entry = read_cost_table(path, quiet=True).get(key)  # another process may have measured it meanwhile
        if settled(entry):
            return entry["model"]
        again = "" if entry is None else f", again: the last was taken on busy cores ({entry['tries']} of {MAX_TRIES})"
        # a few seconds, once per machine and setup: say so (progress on stderr)
        print(f"[tt_specdec] measuring the cost model of {type(drafter).__name__} ({sampling_kind(sampling)}) on "
              f"this machine (once; cached in {path}{again})", file=sys.stderr, flush=True)
        model, contention = contended_measure(target, drafter, batch_size=batch_size, k_max=k_max, sampling=sampling)
        tries = 1 if entry is None else entry["tries"] + 1
        if entry is not None and entry["contention"] <= contention:  # the earlier one was less disturbed
            model, contention = entry["model"], entry["contention"]
        table = read_cost_table(path, quiet=True)  # as it is now, with every other process's entries
        table[key] = {"model": model, "contention": contention, "tries": tries}
        write_cost_table(path, table)
    return model
