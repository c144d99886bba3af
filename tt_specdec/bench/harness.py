"""Side-by-side wall clock: the target alone, speculative decoding with every drafter and k, and
transformers' own assisted generation with the same weights; same prompts, one process.

Every configuration decodes prompt i before any decodes prompt i+1 (the order rotating per
prompt), so machine drift hits them all alike. The figures are ratios within one stack:
`speedup` = tokens/s of a configuration / tokens/s of the same stack's target alone (ours over
ours, transformers over transformers); `vs_transformers` = ours / theirs for the same drafter
and k. `predicted_speedup` is S = E (1 + o0) / (d0 + k·c + v(k+1) + o) of speculative/cost.py evaluated on the steps
the run actually took, from the measured acceptance and the cached cost model.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import time
from typing import Callable

import torch

from tt_specdec.drafters import Drafter
from tt_specdec.errors import is_int
from tt_specdec.ops.accept_prefix import MAX_DRAFT
from tt_specdec.sampling import Sampling
from tt_specdec.speculative.cost import CostModel
from tt_specdec.speculative.measure import measured
from tt_specdec.bench.prompts_smollm2 import PROMPTS as SMOLLM2_PROMPTS
from tt_specdec.bench.prompts_smollm2 import select
from tt_specdec.speculative.stats import Stats

# byte-level prompts in the style of the tiny pair's text (Python sources), none taken from it
TINY_PROMPTS = [("code", p) for p in (
    "def fibonacci(n):\n    ",
    "import os\nimport sys\n\n\ndef main():\n    ",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        ",
    "    for key, value in sorted(mapping.items()):\n        ",
    "def read_lines(path):\n    \"\"\"Return the lines of the file at path.\"\"\"\n    with open(path) as f:\n",
    "        if not isinstance(value, str):\n            raise TypeError(",
    "# Copyright (C) 2001 Python Software Foundation\n",
    "    def __repr__(self):\n        return ",
)]
PROMPT_SETS = {"tiny": TINY_PROMPTS, "smollm2": SMOLLM2_PROMPTS}
OURS, THEIRS = "ours", "transformers"
TARGET = "target"  # the `drafter` of the baseline rows
K_MAX_AUTO = 8  # SpeculativeDecoder's k_max for k = "auto": the cost model is measured (and cached) up to it
# transformers' counterparts of our drafters: the keyword of model.generate that drafts k tokens
THEIR_DRAFTERS = ("model", "ngram")
STATS_COUNTS = ("steps", "drafted", "accepted", "emitted", "row_steps", "proposals", "proposed", "new_tokens", "ttft_s",
                "tree_row_steps")


def weight_dtype(model) -> torch.dtype:
    return getattr(model, "weight_dtype", None) or next(iter(model.parameters())).dtype  # CpuLlama: bf16


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def prompt_set(pair_name: str, n: int | None = None, categories: list[str] | None = None) -> list[tuple[str, str]]:
    """(category, user message) of the pair's fixed prompt set, round-robin over the categories."""
    if pair_name not in PROMPT_SETS:
        raise ValueError(f"pair: got {pair_name!r}, expected one of {sorted(PROMPT_SETS)}")
    return select(PROMPT_SETS[pair_name], n, categories)


@dataclasses.dataclass
class Run:
    """One prompt through one configuration."""
    tokens: list[int]  # new tokens, EOS included when hit
    seconds: float  # wall clock of the whole call, prefill included
    ttft_s: float
    stats: Stats


@dataclasses.dataclass
class Config:
    """One column of the side-by-side run."""
    stack: str  # OURS or THEIRS
    drafter: str  # TARGET for the target alone, else a drafter name
    k: int | str  # 0 for the target alone, "auto" for the adaptive k
    run: Callable[[list[int], int, int], Run]  # (prompt ids, max_new_tokens, seed) -> Run
    cost: CostModel | None = None  # ours, speculative: for the predicted speedup

    @property
    def label(self) -> str:
        return f"{self.stack} {self.drafter}" + ("" if self.drafter == TARGET else f" k={self.k}")


@dataclasses.dataclass
class Tally:
    """What one configuration measured over the prompts."""
    seconds: float = 0.0
    ttft_s: list[float] = dataclasses.field(default_factory=list)
    outputs: list[list[int]] = dataclasses.field(default_factory=list)
    stats: Stats = dataclasses.field(default_factory=Stats)
    per_category: dict[str, Stats] = dataclasses.field(default_factory=dict)

    def add(self, category: str, run: Run) -> None:
        self.seconds += run.seconds
        self.ttft_s.append(run.ttft_s)
        self.outputs.append(run.tokens)
        merge(self.stats, run.stats)
        merge(self.per_category.setdefault(category, Stats()), run.stats)

    @property
    def tokens_per_s(self) -> float:
        return self.stats.new_tokens / self.seconds if self.seconds else 0.0


def merge(into: Stats, s: Stats) -> None:
    """Add the counts of `s` to `into` (per-position lists of any lengths, padded with 0)."""
    into.k = s.k
    for f in STATS_COUNTS:
        setattr(into, f, getattr(into, f) + getattr(s, f))
    for name in ("accepted_per_position", "offered_per_position", "kind_steps", "kind_drafted", "kind_accepted"):
        summed = itertools.zip_longest(getattr(into, name), getattr(s, name), fillvalue=0)
        setattr(into, name, [a + b for a, b in summed])
    for shape, n in s.shape_steps.items():
        into.shape_steps[shape] = into.shape_steps.get(shape, 0) + n


# -- the cost model's prediction ------------------------------------------------------------------

def steps_per_k(stats: Stats) -> list[int]:
    """[k_max+1] how many row-steps drafted exactly j tokens, from the per-position offered counts."""
    offered = list(stats.offered_per_position) + [0]
    return [stats.row_steps - offered[0]] + [offered[j - 1] - offered[j] for j in range(1, len(offered))]


def predicted_speedup(stats: Stats, cost: CostModel) -> float:
    """S = emitted tokens x (1 + o0) / predicted time of the steps taken (target decode steps), as in
    speculative/cost.py: each proposal costs d0 + c per draft-model step it ran (a copy: none), each step
    v(k+1) for the k drafts it verified + o (a plain step: 1 + o_plain); plain decoding 1 + o0 a token. With
    every step at one k and mean accepted length E: E (1 + o0) / (d0 + k·c + v(k+1) + o). Batch 1
    (the bench's): steps and row-steps are the same."""
    counts = steps_per_k(stats)
    if len(counts) - 1 > cost.k_max:
        raise ValueError(f"cost: got v measured up to k={cost.k_max}, expected up to k={len(counts) - 1} (the run's)")
    time_units = (sum(n * cost.v[k] for k, n in enumerate(counts)) + counts[0] * cost.o_plain
                  + (stats.row_steps - counts[0]) * cost.o + stats.proposals * cost.d0 + stats.proposed * cost.c)
    return stats.emitted * (1.0 + cost.o0) / time_units if time_units else 0.0


def available_drafters(pair) -> dict[str, "Drafter"]:
    """The registered drafters this pair can build, built (the bench's default); the others are named on stderr."""
    from tt_specdec.api import DRAFTERS

    built = {}
    for name, factory in DRAFTERS.items():
        try:
            built[name] = factory(pair)
        except Exception as e:  # noqa: BLE001 - no weights for this pair, made for another target, or broken
            progress(f"drafter={name} left out: {e if isinstance(e, ValueError) else repr(e)}")
    return built


def build_drafters(pair, drafters: "list[str] | dict[str, Drafter]") -> "dict[str, Drafter]":
    """name -> Drafter, each built once (every k of a drafter shares it: a generate call resets it)."""
    from tt_specdec.api import DRAFTERS

    return dict(drafters) if isinstance(drafters, dict) else {name: DRAFTERS[name](pair) for name in drafters}


# -- our configurations ----------------------------------------------------------------------------

def ours(dec, drafter: str, k: int | str, cost: CostModel | None = None) -> Config:
    """A SpeculativeDecoder as a configuration (k = 0: the target alone)."""
    def run(ids, max_new_tokens, seed):
        start = time.perf_counter()
        gen = dec.generate_ids([ids], max_new_tokens, seed)
        return Run(gen.tokens[0], time.perf_counter() - start, gen.stats.ttft_s, gen.stats)
    return Config(OURS, drafter, k, run, cost)


def our_configs(pair, drafters: "dict[str, Drafter]", ks: list[int | str], sampling: Sampling,
                eos_token_id: int) -> list[Config]:
    """The target alone, then every drafter at every k; each speculative one with its cost model."""
    from tt_specdec.api import SpeculativeDecoder

    configs = [ours(SpeculativeDecoder(pair, k=0, sampling=sampling, eos_token_id=eos_token_id), TARGET, 0)]
    for name, drafter in drafters.items():
        # a tree drafter's policy may fill the 32-row verify tile: its v(T) is measured up to T = 32
        k_max = max([MAX_DRAFT if drafter.makes_trees else K_MAX_AUTO] + [k for k in ks if k != "auto"])
        progress(f"cost model of drafter={name}, k up to {k_max} (measured once per machine, then cached)")
        cost = measured(pair.target, drafter, batch_size=1, k_max=k_max, sampling=sampling)
        configs += [ours(SpeculativeDecoder(pair, drafter, k, sampling, eos_token_id=eos_token_id, k_max=k_max),
                         name, k, cost) for k in ks]
    return configs


# -- transformers' configurations ---------------------------------------------------------------

def hf_llama(model, transformers):
    """Our Llama's weights as transformers' LlamaForCausalLM (same layout: rotate-half RoPE)."""
    cfg = model.cfg
    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.ffn_dim,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta}, hidden_act="silu")
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "wq": "self_attn.q_proj",
             "wk": "self_attn.k_proj", "wv": "self_attn.v_proj", "wo": "self_attn.o_proj",
             "w_gate": "mlp.gate_proj", "w_up": "mlp.up_proj", "w_down": "mlp.down_proj"}
    state = {}
    ours = model.state_dict()  # CpuLlama: its bf16-rounded weights in fp32, computed in fp32 like ours
    for name, tensor in ours.items():
        parts = name.split(".")
        if parts[0] == "layers":  # layers.{i}.{ours}.weight -> model.layers.{i}.{theirs}.weight
            name = f"model.layers.{parts[1]}.{names[parts[2]]}.{parts[3]}"
        else:
            name = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}.get(name, name)
        state[name] = tensor
    hf = transformers.LlamaForCausalLM(hf_cfg).to(next(iter(ours.values())).dtype)
    hf.load_state_dict(state, strict=not cfg.tie_embeddings)  # tied: lm_head is embed_tokens
    if cfg.tie_embeddings:
        hf.tie_weights()
    return hf.eval()


def hf_smollm2_target(dtype: torch.dtype, transformers):
    """transformers' own GGUF load of the file our SmolLM2 target comes from (no hub)."""
    import functools

    import gguf

    from tt_specdec.models.gguf import smollm2_gguf_path

    path = smollm2_gguf_path()
    # its GGUF loader calls this pure function once per module (~400 times, ~15 s): memoize it for the load
    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    finally:
        gguf.get_tensor_name_map = original
    return hf.eval()


class FirstTokenClock:
    """A transformers streamer that only notes when the first new token arrives (put #1 is the prompt)."""

    def __init__(self):
        self.puts, self.first_token_at = 0, None

    def put(self, value) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


class ForwardCounter:
    """Counts forward calls of a transformers model: target steps and drafted tokens of a generate()."""

    def __init__(self, model):
        self.calls = 0
        model.register_forward_hook(self.hook)

    def hook(self, *_):
        self.calls += 1


def theirs(target, counter: ForwardCounter, drafter: str, k: int | str, sampling: Sampling, eos_token_id: int,
           assistant=None, assistant_counter: ForwardCounter | None = None) -> Config:
    """transformers' generate() as a configuration: the target alone, assisted generation with our
    draft's weights, or its prompt lookup. Steps and acceptance come from forward-call counts."""
    import copy

    base_assistant_config = copy.deepcopy(assistant.generation_config) if assistant is not None else None

    def run(ids, max_new_tokens, seed):
        kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=eos_token_id,
                      do_sample=not sampling.greedy)
        if not sampling.greedy:
            kwargs |= dict(temperature=sampling.temperature, top_k=sampling.top_k or None, top_p=sampling.top_p)
        if drafter == "model":
            # fresh per call: transformers keeps adjusting its confidence threshold across calls
            assistant.generation_config = copy.deepcopy(base_assistant_config)
            if k != "auto":  # exactly k drafts per step; "auto" keeps transformers' own dynamic defaults
                assistant.generation_config.num_assistant_tokens = k
                assistant.generation_config.num_assistant_tokens_schedule = "constant"
                assistant.generation_config.assistant_confidence_threshold = 0.0
            kwargs["assistant_model"] = assistant
        elif drafter == "ngram":
            kwargs["prompt_lookup_num_tokens"] = k
        clock, calls_before = FirstTokenClock(), counter.calls
        drafted_before = assistant_counter.calls if assistant_counter is not None else 0
        torch.manual_seed(seed)
        start = time.perf_counter()
        with torch.inference_mode():
            out = target.generate(torch.tensor([ids]), streamer=clock, **kwargs)
        seconds = time.perf_counter() - start
        tokens = out[0, len(ids):].tolist()
        calls = counter.calls - calls_before
        stats = Stats(k=0 if k == "auto" else k, new_tokens=len(tokens),
                      ttft_s=(clock.first_token_at or start + seconds) - start)
        if drafter == TARGET:  # a prefill call emits the first token, then one call per token (as ours)
            stats.steps, stats.emitted = calls - 1, len(tokens) - 1
        else:  # the first call verifies the prompt and the first drafts together: every call is a step
            stats.steps, stats.emitted = calls, len(tokens)
            stats.accepted = stats.emitted - stats.steps
        stats.row_steps = stats.steps
        if assistant_counter is not None:  # one assistant call per drafted token
            stats.drafted = assistant_counter.calls - drafted_before
        return Run(tokens, seconds, stats.ttft_s, stats)
    return Config(THEIRS, drafter, k, run)


def their_configs(pair_name: str, pair, drafters: list[str], ks: list[int | str], sampling: Sampling,
                  eos_token_id: int) -> list[Config]:
    """transformers' target alone and its counterparts of our drafters, on the same weights and dtype."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever fetched: the weights are ours or the GGUF
    os.environ.setdefault("TQDM_DISABLE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # stderr is the bench's progress
    dtype = weight_dtype(pair.target)
    progress(f"loading transformers' models ({transformers.__version__}, {dtype})")
    target = hf_smollm2_target(dtype, transformers) if pair_name == "smollm2" else hf_llama(pair.target, transformers)
    counter = ForwardCounter(target)
    configs = [theirs(target, counter, TARGET, 0, sampling, eos_token_id)]
    for drafter in (d for d in drafters if d in THEIR_DRAFTERS):
        if drafter == "model":
            if pair.draft is None:
                continue
            assistant = hf_llama(pair.draft, transformers)
            assistant_counter = ForwardCounter(assistant)
            configs += [theirs(target, counter, drafter, k, sampling, eos_token_id, assistant, assistant_counter)
                        for k in ks]
        else:  # prompt lookup has no adaptive mode in transformers
            configs += [theirs(target, counter, drafter, k, sampling, eos_token_id) for k in ks if k != "auto"]
    return configs


def cpu_engine_info(pair) -> dict | None:
    """The CPU engine's matrix path of the target (None when the target is not on the CPU engine) and the
    CPU's model name: a figure is only comparable with one from the same path and machine."""
    path = getattr(pair.target, "matrix_path", None)
    if path is None:
        return None
    from tt_specdec.models.cpu_llama import matrix_paths, threads

    return {"matrix_path": path, "matrix_paths_available": matrix_paths(), "threads": threads(),
            "cpu_model": cpu_model_name()}


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's answer elsewhere)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- the run --------------------------------------------------------------------------------------

def check_ks(ks: list[int | str]) -> None:
    if not ks or any(not (k == "auto" or (is_int(k) and 1 <= k <= MAX_DRAFT)) for k in ks):
        raise ValueError(f"ks: got {ks!r}, expected a non-empty list of ints in 1..{MAX_DRAFT} or 'auto' "
                         "(k+1 verify rows fit one tile)")


def bench(pair_name: str, pair, *, drafters: "list[str] | dict[str, Drafter]", ks: list[int | str], prompts: list[tuple[str, str]],
          max_new_tokens: int = 128, sampling: Sampling = Sampling(), seed: int = 0, chat: bool = True,
          compare: bool = True) -> dict:
    """Run every configuration on every prompt, interleaved; returns {"meta", "results"} (see rows())."""
    from tt_specdec.api import chat_prompt

    check_ks(ks)
    if not prompts:
        raise ValueError("prompts: got none, expected (category, text) pairs")
    tok = pair.tokenizer
    eos = tok.eos_token_id
    ids = [tok.encode(chat_prompt(tok, text) if chat else text) for _, text in prompts]
    drafters = build_drafters(pair, drafters)
    configs = our_configs(pair, drafters, ks, sampling, eos)
    transformers_version = None
    if compare:
        try:
            import transformers
            transformers_version = transformers.__version__
        except ImportError:
            progress("transformers is not installed: no comparison (pip install -e '.[compare]')")
    if transformers_version:
        configs += their_configs(pair_name, pair, list(drafters), ks, sampling, eos)
    progress(f"warm-up: {len(configs)} configurations")
    for c in configs:  # first calls pay one-off allocation and dispatch costs
        c.run(ids[0], min(4, max_new_tokens), seed)
    tallies = [Tally() for _ in configs]
    start = time.perf_counter()
    for i, ((category, _), p) in enumerate(zip(prompts, ids)):
        shift = i % len(configs)  # rotate who goes first, so no configuration always runs on a cold cache
        for j in itertools.chain(range(shift, len(configs)), range(shift)):
            tallies[j].add(category, configs[j].run(p, max_new_tokens, seed + i))
        elapsed = time.perf_counter() - start
        progress(f"prompt {i + 1}/{len(prompts)} ({category}, {len(p)} tokens) done; elapsed {elapsed:.0f} s, "
                 f"about {elapsed / (i + 1) * (len(prompts) - i - 1):.0f} s left")
    results = rows(configs, tallies, sampling)
    meta = {"prompts": len(prompts), "categories": list(dict.fromkeys(c for c, _ in prompts)),
            "max_new_tokens": max_new_tokens, "temperature": sampling.temperature, "top_k": sampling.top_k,
            "top_p": sampling.top_p, "coupled": sampling.coupled, "chat_template": chat, "eos_token_id": eos, "transformers": transformers_version,
            "targets_identical": targets_identical(configs, tallies), "cpu": cpu_engine_info(pair),
            "prompt_texts": [{"category": c, "text": t, "tokens": len(p)} for (c, t), p in zip(prompts, ids)]}
    return {"meta": meta, "results": results}


def targets_identical(configs: list[Config], tallies: list[Tally]) -> int | None:
    """Prompts on which our target alone and transformers' produced the same tokens (None: no transformers)."""
    base = {c.stack: t for c, t in zip(configs, tallies) if c.drafter == TARGET}
    if THEIRS not in base:
        return None
    return sum(a == b for a, b in zip(base[OURS].outputs, base[THEIRS].outputs))


def offered_positions(stats: Stats) -> list[float]:
    """P(d_t accepted | offered) for the positions t that were offered at least once (k auto may stop short)."""
    return [a for a, offered in zip(stats.acceptance_per_position, stats.offered_per_position) if offered]


def rows(configs: list[Config], tallies: list[Tally], sampling: Sampling) -> list[dict]:
    """One dict per configuration, every key present (None where it does not apply). Outputs are compared
    with the target alone's where they must be equal: greedy, and our coupled sampling (the same seed)."""
    baseline = {c.stack: t for c, t in zip(configs, tallies) if c.drafter == TARGET}
    by_key = {(c.stack, c.drafter, c.k): t for c, t in zip(configs, tallies)}
    out = []
    for c, t in zip(configs, tallies):
        base = baseline[c.stack]
        speculative = c.drafter != TARGET
        counterpart = by_key.get((THEIRS, c.drafter, c.k)) if c.stack == OURS else None
        predicted = predicted_speedup(t.stats, c.cost) if c.cost is not None else None
        speedup = t.tokens_per_s / base.tokens_per_s if base.tokens_per_s else 0.0
        out.append({
            "config": c.label, "stack": c.stack, "drafter": c.drafter, "k": c.k,
            "prompts": len(t.outputs), "new_tokens": t.stats.new_tokens, "seconds": t.seconds,
            "tokens_per_s": t.tokens_per_s, "ttft_ms": 1e3 * sum(t.ttft_s) / len(t.ttft_s),
            # None where nothing was drafted, or the drafted count is unknown (transformers' prompt lookup)
            "acceptance_rate": t.stats.acceptance_rate if t.stats.drafted else None,
            "mean_accepted_length": t.stats.mean_accepted_length if speculative else None,
            "acceptance_per_position": offered_positions(t.stats) if speculative and c.stack == OURS else None,
            "acceptance_per_category": ({cat: s.acceptance_rate if s.drafted else None
                                         for cat, s in t.per_category.items()} if t.stats.drafted else None),
            "acceptance_source": None if not speculative else ("loop" if c.stack == OURS else "forward-call counts"),
            "steps_by_kind": t.stats.steps_by_kind if speculative and c.stack == OURS else None,
            # a tree drafter's: steps per shape asked for ("k=<drafts> w=<children per node>", w=1 a chain, as
            # its policy chose them) and row-steps whose verified tree branched
            "shapes": dict(sorted(t.stats.shape_steps.items())) if t.stats.shape_steps else None,
            "tree_row_steps": t.stats.tree_row_steps if t.stats.shape_steps else None,
            "speedup": speedup,
            "vs_transformers": (t.tokens_per_s / counterpart.tokens_per_s
                                if counterpart is not None and counterpart.tokens_per_s else None),
            "identical_to_target": (sum(a == b for a, b in zip(t.outputs, base.outputs)) if speculative and (
                sampling.greedy or (sampling.coupled and c.stack == OURS)) else None),
            "predicted_speedup": predicted,
            "measured_over_predicted": speedup / predicted if predicted else None,
            "cost_model": dataclasses.asdict(c.cost) if c.cost is not None else None,
        })
    return out


# -- reporting ------------------------------------------------------------------------------------

def _num(x, fmt: str, width: int) -> str:
    return f"{'-' if x is None else format(x, fmt):>{width}}"


def format_table(report: dict) -> str:
    """The main table, acceptance per category and per draft position, and the notes that read them."""
    results, meta = report["results"], report["meta"]
    head = (f"{'configuration':28} {'accept':>6} {'len':>5} {'tok/s':>6} {'TTFT ms':>7} {'speedup':>7} "
            f"{'pred S':>6} {'meas/pred':>9} {'vs HF':>6} {'identical':>9}")
    lines = [head, "-" * len(head)]
    for r in results:
        ident = "-" if r["identical_to_target"] is None else f"{r['identical_to_target']}/{r['prompts']}"
        lines.append(f"{r['config']:28} {_num(r['acceptance_rate'], '.3f', 6)} "
                     f"{_num(r['mean_accepted_length'], '.2f', 5)} {r['tokens_per_s']:>6.1f} {r['ttft_ms']:>7.0f} "
                     f"{r['speedup']:>6.2f}x {_num(r['predicted_speedup'], '.2f', 6)} "
                     f"{_num(r['measured_over_predicted'], '.2f', 9)} {_num(r['vs_transformers'], '.2f', 6)} "
                     f"{ident:>9}")
    speculative = [r for r in results if r["acceptance_per_category"]]
    if speculative:
        cats = meta["categories"]
        lines += ["", f"{'acceptance per category':28} " + " ".join(f"{c[:13]:>13}" for c in cats)]
        for r in speculative:
            per = r["acceptance_per_category"]
            lines.append(f"{r['config']:28} " + " ".join(_num(per.get(c), '.3f', 13) for c in cats))
    positional = [r for r in results if r["acceptance_per_position"]]
    if positional:
        lines += ["", "acceptance per draft position (P(d_t accepted | offered), t = 1, 2, ...)"]
        lines += [f"{r['config']:28} " + " ".join(f"{a:.2f}" for a in r["acceptance_per_position"])
                  for r in positional]
    kinds = [r for r in results if r.get("steps_by_kind")]
    if kinds:
        lines += ["", "steps by what they verified: share of the steps x tokens emitted per step "
                      "(plain: no draft; drafted: the drafter's own; copied: from the context)"]
        lines += [f"{r['config']:28} " + "   ".join(f"{kind} {v['share']:.2f} x {v['tokens_per_step']:.2f}"
                                                   for kind, v in r["steps_by_kind"].items()) for r in kinds]
    shaped = [r for r in results if r.get("shapes")]
    if shaped:
        lines += ["", "proposal shapes (a tree drafter's; w=1: a chain): the most frequent, share of the steps; "
                      "row-steps whose tree branched"]
        for r in shaped:
            total = sum(r["shapes"].values())
            top = sorted(r["shapes"].items(), key=lambda kv: -kv[1])[:4]
            lines.append(f"{r['config']:28} " + "  ".join(f"{shape} {n / total:.2f}" for shape, n in top)
                         + f"  (trees {r['tree_row_steps']} of {total})")
    sampling = "greedy" if meta["temperature"] == 0 else f"temperature {meta['temperature']}"
    lines += ["", f"{meta['prompts']} prompts x up to {meta['max_new_tokens']} new tokens (stop at EOS), {sampling}.",
              "speedup: tok/s over the same stack's target alone, side by side in this process.",
              "vs HF: our tok/s over transformers' for the same drafter and k. pred S: the cost model on the",
              "measured acceptance. transformers' acceptance is counted from forward calls."]
    if meta["targets_identical"] is not None:
        lines.append(f"our target alone and transformers' gave the same tokens on "
                     f"{meta['targets_identical']}/{meta['prompts']} prompts")
    return "\n".join(lines)


def check_output_path(name: str, path: str) -> None:
    """Refuse an output file that could not be written, before the bench runs (and not after, losing it)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{name}: got {path!r}, a directory, expected a file path to write")
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: got {path!r}, whose folder {folder} does not exist, expected a path in an "
                         "existing folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"{name}: got {path!r}, which this user cannot write, expected a writable path")


def write_json(report: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


def plot(report: dict, path: str) -> None:
    """Speedup per k per drafter (both stacks), acceptance per draft position, acceptance per category."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("--plot needs matplotlib: pip install 'tt_specdec[plot]'") from e
    results = [r for r in report["results"] if r["drafter"] != TARGET]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.5))
    if all(r["k"] == "auto" for r in results):  # no k axis: one bar per configuration
        ax1.barh([r["config"] for r in results], [r["speedup"] for r in results])
        ax1.axvline(1.0, color="gray", lw=0.8, ls="--")
        ax1.set(xlabel="speedup vs the same stack's target alone", title="Wall-clock speedup, k auto")
        results_by_k = []
    else:
        results_by_k = results
    for stack, drafter in dict.fromkeys((r["stack"], r["drafter"]) for r in results_by_k):
        sel = [r for r in results if (r["stack"], r["drafter"]) == (stack, drafter)]
        fixed = [r for r in sel if r["k"] != "auto"]
        line = ax1.plot([r["k"] for r in fixed], [r["speedup"] for r in fixed], marker="o",
                        ls="-" if stack == OURS else "--", label=f"{stack} {drafter}")[0]
        for r in sel:
            if r["k"] == "auto":
                ax1.axhline(r["speedup"], color=line.get_color(), ls=":", label=f"{stack} {drafter}, k auto")
    if results_by_k:
        ax1.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax1.set(xlabel="k (draft tokens per step)", ylabel="speedup vs the same stack's target alone",
                title="Wall-clock speedup per k")
        ax1.legend(fontsize=7)
    for r in results:
        acc = r["acceptance_per_position"]
        if acc:
            ax2.plot(range(1, len(acc) + 1), acc, marker="o", label=r["config"])
    ax2.set(xlabel="draft position t", ylabel="P(d_t accepted | offered)", title="Acceptance per draft position",
            ylim=(0, 1.05))
    ax2.legend(fontsize=7)
    cats = report["meta"]["categories"]
    with_cats = [r for r in results if r["acceptance_per_category"]]
    width = 0.8 / max(len(with_cats), 1)
    for i, r in enumerate(with_cats):
        ax3.bar([j + i * width for j in range(len(cats))], [r["acceptance_per_category"].get(c) or 0 for c in cats],
                width, label=r["config"])
    ax3.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats)
    ax3.set(ylabel="accepted / drafted", title="Acceptance per prompt category", ylim=(0, 1.05))
    ax3.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
