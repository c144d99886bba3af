"""The speculative loop of DESIGN.md, and plain decoding with the same target for comparison.

Per row b the target holds `pos[b]` tokens' KV and `last[b]`, the newest emitted token,
not yet in its cache. One step: draft k tokens after `last`, verify [last, d_1..d_k] in
one target forward, accept the agreeing prefix plus one recovered/bonus token, advance.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np
import torch

from tt_specdec import ops
from tt_specdec.drafters.base import Drafter, Sampling
from tt_specdec.models.decoder import Decoder
from tt_specdec.ops.accept_prefix import MAX_DRAFT
from tt_specdec.ops.sampling import greedy_or_sample, row_seeds, step_seeds
from tt_specdec.spec.cost import AdaptiveK
from tt_specdec.spec.stats import Stats, step_kind

OnTokens = Callable[[int, list[int]], None]  # (row, new token ids), called as tokens are emitted


@dataclasses.dataclass
class Generation:
    tokens: list[list[int]]  # new tokens per row, prompt excluded (EOS included when hit)
    stats: Stats


class Rows:
    """Per-row bookkeeping: the token context, stopping (EOS, max tokens) and streaming.

    The per-step integers live in numpy (`done`, and numpy views of the `context` and `length` tensors
    the drafters read): a numpy op costs microseconds, a torch op several times more, every step."""

    def __init__(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, extra: int,
                 eos_token_id: int | None, on_tokens: OnTokens | None):
        B = len(prompts)
        self.prompt_len = torch.tensor([len(p) for p in prompts])
        self.context = torch.zeros(B, int(self.prompt_len.max()) + max_new_tokens + extra, dtype=torch.long)
        for b, p in enumerate(prompts):
            self.context[b, :len(p)] = torch.tensor(p)
        self.length = self.prompt_len.clone()  # [B] valid tokens in context
        self.done = np.zeros(B, dtype=bool)  # [B]
        self.remaining = np.full(B, max_new_tokens)  # [B] tokens each row may still emit
        self.new_tokens: list[list[int]] = [[] for _ in range(B)]
        self.max_new_tokens, self.eos_token_id, self.on_tokens = max_new_tokens, eos_token_id, on_tokens

    def emit(self, b: int, tokens: list[int]) -> None:
        """Append row b's emitted tokens; tokens past EOS or max_new_tokens are dropped."""
        context, length = self.context.numpy(), self.length.numpy()  # views: numpy writes cost microseconds
        n0 = int(length[b])
        context[b, n0:n0 + len(tokens)] = tokens
        length[b] = n0 + len(tokens)
        kept = tokens[:self.max_new_tokens - len(self.new_tokens[b])]
        if self.eos_token_id is not None and self.eos_token_id in kept:
            kept = kept[:kept.index(self.eos_token_id) + 1]
            self.done[b] = True
        self.new_tokens[b] += kept
        self.remaining[b] = self.max_new_tokens - len(self.new_tokens[b])
        if self.remaining[b] <= 0:
            self.done[b] = True
        if kept and self.on_tokens is not None:
            self.on_tokens(b, kept)


def is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)  # True is an int to Python, not a token or a k


def check_request(target: Decoder, prompts, max_new_tokens: int, k: int, drafter: Drafter | None = None) -> None:
    """Reject bad requests before any cache or state is touched."""
    if drafter is not None and not (is_int(k) and 1 <= k <= MAX_DRAFT):
        raise ValueError(f"k: got {k}, expected an integer in 1..{MAX_DRAFT} (k+1 verify rows fit one tile)")
    if not is_int(max_new_tokens) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: got {max_new_tokens!r}, expected an int >= 1")
    if not prompts:
        raise ValueError("prompts: got no prompts, expected a list of token-id lists")
    V = target.vocab_size
    if drafter is not None and drafter.vocab_size not in (None, V):
        raise ValueError(f"drafter: got vocabulary size {drafter.vocab_size}, expected the target's {V}")
    for b, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompts[{b}]: got an empty prompt, expected at least one token")
        bad = [t for t in p if not (is_int(t) and 0 <= t < V)]
        if bad:
            raise ValueError(f"prompts[{b}]: got token id {bad[0]!r}, expected ints in 0..{V - 1} (the vocabulary)")
        need = len(p) + max_new_tokens + k + 1
        if need > target.max_seq_len:
            raise ValueError(f"prompts[{b}]: got {len(p)} tokens; with max_new_tokens={max_new_tokens} and k={k} "
                             f"the KV cache needs {need} positions, expected at most {target.max_seq_len}")


def prefill(target: Decoder, rows: Rows, sampling: Sampling, seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the prompts through the target and emit the first token. Returns pos [B], last [B]."""
    lengths = rows.prompt_len
    logits = target.prefill(rows.context[:, :int(lengths.max())], lengths)  # [B, V]
    last = greedy_or_sample(logits, sampling.temperature, sampling.top_k, sampling.top_p, step_seeds(seeds, lengths))
    for b in range(len(last)):
        rows.emit(b, [int(last[b])])
    return lengths.clone(), last


def this_step(seeds: torch.Tensor, pos: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Per-row seeds [B] of the step at pos [B]; greedy steps draw nothing, so they get the run's row seeds
    (hashing them per step cost ~0.1 ms a step)."""
    return seeds if sampling.greedy else step_seeds(seeds, pos)


def keep_hidden_for(target: Decoder, drafter: Drafter | None) -> None:
    """The target writes its final hidden states (`hidden_cache`) only for a drafter that reads them
    (`needs_target_hidden`: EAGLE): plain decoding and other drafters skip the copy. Before allocate_cache."""
    if hasattr(target, "keep_hidden"):
        target.keep_hidden = bool(getattr(drafter, "needs_target_hidden", False))
    if hasattr(target, "hidden_layers"):  # which hidden states: an EAGLE-3 drafter's layers, else the final one
        target.hidden_layers = getattr(drafter, "target_hidden_layers", None)


def generate_plain(target: Decoder, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                   sampling: Sampling = Sampling(), seed: int = 0, eos_token_id: int | None = None,
                   on_tokens: OnTokens | None = None) -> Generation:
    """The target alone, one token per forward: the baseline speculative decoding must equal."""
    check_request(target, prompts, max_new_tokens, k=0)
    stats, start = Stats(k=0), time.perf_counter()
    rows = Rows(prompts, max_new_tokens, 1, eos_token_id, on_tokens)
    keep_hidden_for(target, None)
    target.allocate_cache(len(prompts), rows.context.shape[1])
    seeds = row_seeds(seed, len(prompts))
    pos, last = prefill(target, rows, sampling, seeds)
    stats.ttft_s = time.perf_counter() - start
    while not rows.done.all():
        logits = target.forward(last.view(-1, 1), pos)[:, 0]  # [B, V]
        live = np.flatnonzero(~rows.done).tolist()
        pos = pos + torch.from_numpy(~rows.done)
        last = greedy_or_sample(logits, sampling.temperature, sampling.top_k, sampling.top_p,
                                this_step(seeds, pos, sampling))
        tokens = last.tolist()
        for b in live:
            rows.emit(b, [tokens[b]])
        stats.steps += 1
        stats.row_steps += len(live)
        stats.emitted += len(live)
    stats.total_s = time.perf_counter() - start
    stats.new_tokens = sum(map(len, rows.new_tokens))
    return Generation(rows.new_tokens, stats)


def speculative_generate(target: Decoder, drafter: Drafter, prompts: Sequence[Sequence[int]], *, k: int,
                         max_new_tokens: int, sampling: Sampling = Sampling(), seed: int = 0,
                         eos_token_id: int | None = None, on_tokens: OnTokens | None = None,
                         policy: AdaptiveK | None = None, ops_backend: str = "torch") -> Generation:
    """Draft k, verify in one target forward, accept the agreeing prefix, roll back the rest.

    Greedy output is token for token the target's own greedy output (generate_plain);
    sampled output has exactly the target's distribution. With a `policy`, each row drafts
    the k (at most `k`) the cost model predicts fastest, 0 meaning a plain target step.
    `ops_backend` runs accept_prefix and rollback_kv ("emu": their kernels on the host emulator);
    the decoders run verify_attention with their own `ops_backend` (SpeculativeDecoder sets all three).
    """
    check_request(target, prompts, max_new_tokens, k, drafter)
    stats, start = Stats(k=k, accepted_per_position=[0] * k, offered_per_position=[0] * k), time.perf_counter()
    B = len(prompts)
    rows = Rows(prompts, max_new_tokens, k + 1, eos_token_id, on_tokens)
    keep_hidden_for(target, drafter)
    target.allocate_cache(B, rows.context.shape[1])
    drafter.reset(B, rows.context.shape[1])
    seeds = row_seeds(seed, B)
    pos, last = prefill(target, rows, sampling, seeds)  # pos [B], last [B]
    stats.ttft_s = time.perf_counter() - start
    if policy is not None:
        policy.reset(B)
    while not rows.done.all():
        step_seed = this_step(seeds, pos, sampling)  # [B] randomness of this step, per row
        # per-row effective k: at most the tokens a row may still emit, minus the recovered/bonus one,
        # so no row runs past max_new_tokens (nor its KV past the cache); finished rows are skipped (-1)
        k_rows = np.full(B, k) if policy is None else np.minimum(policy.choose().numpy(), k)
        if policy is not None and getattr(drafter, "stop_reach", None) is not None:
            k_rows = np.where(k_rows > 0, k, 0)  # it drafts as far as its confidence goes; trimmed below
        num_draft = torch.from_numpy(np.where(rows.done, -1, np.minimum(k_rows, rows.remaining - 1)))  # [B]
        k_step = int(num_draft.max())  # drafts this step: as many as the most hopeful row takes
        confidence = source = None
        if k_step > 0:
            # 1. draft: d_1..d_k after last (and q_1..q_k when sampling); a drafter may stop before k
            draft_tokens, draft_probs = drafter.propose(rows.context, rows.length, k_step, sampling, step_seed)
            num_draft = num_draft.clamp(max=draft_tokens.shape[1])
            stats.proposals += 1
            stats.proposed += getattr(drafter, "draft_steps", draft_tokens.shape[1])
            source = getattr(drafter, "draft_source", None)
            if policy is not None:  # a row verifies only the drafts its drafter is confident enough in
                confidence = getattr(drafter, "draft_confidence", None)
                num_draft = policy.trim(num_draft, confidence, source)
            k_step = int(num_draft.max())
            draft_tokens = draft_tokens[:, :k_step]
            draft_probs = None if draft_probs is None else draft_probs[:, :k_step]
        if k_step <= 0:  # no row verifies a draft: a plain target step
            logits = target.forward(last.view(B, 1), pos)[:, 0]  # [B, V]
            token = greedy_or_sample(logits, sampling.temperature, sampling.top_k, sampling.top_p, step_seed)
            done = torch.from_numpy(rows.done)
            num_accepted = torch.where(done, -1, 0)
            output = torch.where(done, -1, token).view(B, 1)
        else:
            # 2. verify: one target forward over [last, d_1..d_k] at pos..pos+k -> logits [B, k+1, V]
            logits = target.forward(torch.cat([last.view(B, 1), draft_tokens], 1), pos)
            # 3. accept: n agreeing drafts, then one recovered/bonus token -> output [B, k+1], -1 padded
            num_accepted, output = ops.accept_prefix(
                logits, draft_tokens, draft_probs=draft_probs, num_draft=num_draft, temperature=sampling.temperature,
                top_k=sampling.top_k, top_p=sampling.top_p, seed=step_seed, backend=ops_backend)
        if policy is not None:
            policy.update(num_draft, num_accepted, confidence, source)
        # 4. rollback: pos += n + 1, last = output[n]; KV past the accepted prefix is stale
        pos, last, _, _ = ops.rollback_kv(pos, last, num_accepted, output, backend=ops_backend)
        # per-row bookkeeping on Python ints: a few tensor reads instead of several per row
        sources = [0] * B if source is None else source.tolist()
        out_rows = output.tolist()
        stats.steps += 1
        for b, (n, offered) in enumerate(zip(num_accepted.tolist(), num_draft.tolist())):
            if n < 0:  # a finished row
                continue
            rows.emit(b, out_rows[b][:n + 1])
            for t in range(offered):
                stats.offered_per_position[t] += 1
                stats.accepted_per_position[t] += int(t < n)
            kind = step_kind(offered, sources[b])
            stats.kind_steps[kind] += 1
            stats.kind_drafted[kind] += max(offered, 0)
            stats.kind_accepted[kind] += n
            stats.row_steps += 1
            stats.drafted += offered
            stats.accepted += n
            stats.emitted += n + 1
    stats.total_s = time.perf_counter() - start
    stats.new_tokens = sum(map(len, rows.new_tokens))
    return Generation(rows.new_tokens, stats)
