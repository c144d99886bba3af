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

from tt_specdec.drafters.base import Drafter
from tt_specdec.errors import check_seed
from tt_specdec.models.decoder import Decoder, TreeDecoder
from tt_specdec.ops import PLACEHOLDER, accept_prefix, rollback_kv
from tt_specdec.ops.rollback_kv import compact_hidden
from tt_specdec.ops.accept_prefix import MAX_DRAFT, accept_tree
from tt_specdec.sampling import (MASKED, Sampling, greedy_or_sample, process_logits, row_seeds, sample_next, step_seeds,
                                 support_scores)
from tt_specdec.speculative.policy import AdaptiveK
from tt_specdec.speculative.stats import Stats, step_kind

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
        # numpy views of both (the drafters read the tensors): a numpy write costs microseconds
        self.context_np, self.length_np = self.context.numpy(), self.length.numpy()
        self.done = np.zeros(B, dtype=bool)  # [B]
        self.remaining = np.full(B, max_new_tokens)  # [B] tokens each row may still emit
        self.new_tokens: list[list[int]] = [[] for _ in range(B)]
        self.max_new_tokens, self.eos_token_id, self.on_tokens = max_new_tokens, eos_token_id, on_tokens

    def emit(self, b: int, tokens: list[int]) -> None:
        """Append row b's emitted tokens; tokens past EOS or max_new_tokens are dropped."""
        context, length = self.context_np, self.length_np
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


def check_request(target: Decoder, prompts, max_new_tokens: int, k: int, drafter: Drafter | None = None, *,
                  seed: int = 0, eos_token_id: int | None = None, sampling: Sampling = Sampling()) -> None:
    """Reject bad requests before any cache or state is touched."""
    check_seed("seed", seed)
    if eos_token_id is not None and not (is_int(eos_token_id) and 0 <= eos_token_id < target.vocab_size):
        raise ValueError(f"eos_token_id: got {eos_token_id!r}, expected None or a token id in "
                         f"0..{target.vocab_size - 1} (the vocabulary)")
    if drafter is not None and not (is_int(k) and 1 <= k <= MAX_DRAFT):
        raise ValueError(f"k: got {k!r}, expected an integer in 1..{MAX_DRAFT} (k+1 verify rows fit one tile)")
    if not is_int(max_new_tokens) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: got {max_new_tokens!r}, expected an int >= 1")
    if not prompts:
        raise ValueError("prompts: got no prompts, expected a list of token-id lists")
    if drafter is not None and drafter.makes_trees:
        check_tree_request(target)
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


def check_tree_request(target: Decoder) -> None:
    """A tree drafter's proposals are verified by the target's forward_tree (then accept_tree: greedy, coupled
    or sampled): what the loop's tree path needs."""
    if not isinstance(target, TreeDecoder):
        raise ValueError(f"drafter: got a tree drafter with a {type(target).__name__} target, expected a target "
                         "with forward_tree (Llama, CpuLlama)")


def prefill(target: Decoder, rows: Rows, sampling: Sampling, seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the prompts through the target and emit the first token. Returns pos [B], last [B]."""
    lengths = rows.prompt_len
    logits = target.prefill(rows.context[:, :int(lengths.max())], lengths)  # [B, V]
    last = sample_next(logits, sampling, seeds, lengths)  # the token at position lengths[b]
    for b in range(len(last)):
        rows.emit(b, [int(last[b])])
    return lengths.clone(), last


def this_step(seeds: torch.Tensor, pos: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Per-row seeds [B] of the step at pos [B]; greedy steps draw nothing, and coupled steps key their noise
    by (row seed, absolute position), so both get the run's row seeds (hashing them per step cost ~0.1 ms)."""
    return seeds if sampling.greedy or sampling.coupled else step_seeds(seeds, pos)


def start(target: Decoder, rows: Rows, sampling: Sampling, seed: int,
          drafter: Drafter | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Allocate the caches (the target keeps its hidden states only for a drafter that reads them) and
    prefill. Returns the run's row seeds [B], pos [B], last [B]."""
    B, cache_len = rows.context.shape
    target.allocate_cache(B, cache_len, keep_hidden=drafter is not None and drafter.needs_target_hidden)
    if drafter is not None:
        drafter.reset(B, cache_len)
    seeds = row_seeds(seed, B)
    return (seeds, *prefill(target, rows, sampling, seeds))


def generate_plain(target: Decoder, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                   sampling: Sampling = Sampling(), seed: int = 0, eos_token_id: int | None = None,
                   on_tokens: OnTokens | None = None) -> Generation:
    """The target alone, one token per forward: the baseline speculative decoding must equal."""
    check_request(target, prompts, max_new_tokens, k=0, seed=seed, eos_token_id=eos_token_id)
    stats, t0 = Stats(k=0), time.perf_counter()
    rows = Rows(prompts, max_new_tokens, 1, eos_token_id, on_tokens)
    seeds, pos, last = start(target, rows, sampling, seed)
    stats.ttft_s = time.perf_counter() - t0
    while not rows.done.all():
        logits = target.forward(last.view(-1, 1), pos)[:, 0]  # [B, V]
        live = np.flatnonzero(~rows.done).tolist()
        pos = pos + torch.from_numpy(~rows.done)
        last = sample_next(logits, sampling, seeds, pos)  # the token at position pos[b]
        tokens = last.tolist()
        for b in live:
            rows.emit(b, [tokens[b]])
        stats.steps += 1
        stats.row_steps += len(live)
        stats.emitted += len(live)
    stats.total_s = time.perf_counter() - t0
    stats.new_tokens = sum(map(len, rows.new_tokens))
    return Generation(rows.new_tokens, stats)


def drafts_per_row(rows: Rows, k: int, policy: AdaptiveK | None, drafter: Drafter) -> np.ndarray:
    """num_draft [B] to ask for: k, or the policy's choice (a drafter with stop_reach is asked for all k,
    and trimmed later), capped by what each row may still emit besides its recovered/bonus token (so no
    row runs past max_new_tokens, nor its KV past the cache); -1 skips a finished row."""
    if policy is None:
        k_rows = np.full(len(rows.done), k)
    else:
        k_rows = np.minimum(policy.choose(), k)
        if drafter.stop_reach is not None:
            k_rows = np.where(k_rows > 0, k, 0)  # it drafts as far as its confidence goes
    return np.where(rows.done, -1, np.minimum(k_rows, rows.remaining - 1))


def speculative_generate(target: Decoder, drafter: Drafter, prompts: Sequence[Sequence[int]], *, k: int,
                         max_new_tokens: int, sampling: Sampling = Sampling(), seed: int = 0,
                         eos_token_id: int | None = None, on_tokens: OnTokens | None = None,
                         policy: AdaptiveK | None = None, ops: str = "torch") -> Generation:
    """Draft k, verify in one target forward, accept the agreeing prefix, roll back the rest.

    Greedy output is token for token the target's own greedy output (generate_plain);
    sampled output has exactly the target's distribution, and with `sampling.coupled` it is token for
    token generate_plain's sampled output for the same seed (whatever the drafter, k or policy). With a `policy`, each row drafts
    the k (at most `k`) the cost model predicts fastest, 0 meaning a plain target step.
    `ops` runs accept_prefix (a tree: accept_tree) and rollback_kv (a tree: with its compaction) ("emu": their
    kernels on the host emulator); the decoders run their attention, a tree's mask too, as their own
    `attention` says (SpeculativeDecoder sets all three).

    Per-row state: pos, last [B] as torch (what the decoders and the ops take); the loop's own per-row
    integers (num_draft, num_accepted, the policy's) as numpy, each converted once per step.
    """
    check_request(target, prompts, max_new_tokens, k, drafter, seed=seed, eos_token_id=eos_token_id,
                  sampling=sampling)
    stats, t0 = Stats(k=k, accepted_per_position=[0] * k, offered_per_position=[0] * k), time.perf_counter()
    B = len(prompts)
    rows = Rows(prompts, max_new_tokens, k + 1, eos_token_id, on_tokens)
    seeds, pos, last = start(target, rows, sampling, seed, drafter)  # pos [B], last [B]
    stats.ttft_s = time.perf_counter() - t0
    if policy is not None:
        policy.reset(B)
    while not rows.done.all():
        step_seed = this_step(seeds, pos, sampling)  # [B] randomness of this step, per row
        num_draft = drafts_per_row(rows, k, policy, drafter)  # [B]
        proposal = confidence = source = None
        if num_draft.max() > 0:
            # 1. draft: d_1..d_k after last (and q_1..q_k when sampling); a drafter may stop before k
            shape = {"width": policy.width} if drafter.makes_trees and policy is not None and policy.width else {}
            proposal = drafter.propose(rows.context, rows.length, int(num_draft.max()), sampling, step_seed, **shape)
            num_draft = np.minimum(num_draft, proposal.tokens.shape[1])
            stats.proposals += 1
            stats.proposed += proposal.steps
            confidence = None if proposal.confidence is None else proposal.confidence.numpy()  # [B, k']
            source = proposal.source  # [B] numpy
            if policy is not None:  # a row verifies only the drafts worth their rows
                num_draft = policy.trim(num_draft, confidence, source)
        k_step = int(num_draft.max())
        slots = parents = None  # a tree's accepted path: where its KV was written (rollback compacts it)
        if k_step <= 0:  # no row verifies a draft: a plain target step
            num_accepted, output = plain_step(target, last, pos, rows.done, sampling, step_seed)
        elif proposal.parents is not None:  # 2-3 for a token tree: nodes 0..k (a prefix is a tree)
            parents = proposal.parents[:, :k_step + 1]
            label = f"k={k_step} w={shape.get('width', drafter.top_children)}"  # what was asked for
            stats.shape_steps[label] = stats.shape_steps.get(label, 0) + 1
            num_accepted, output, slots = verify_tree(target, last, proposal.tokens[:, :k_step], parents,
                                                      num_draft, pos, sampling, step_seed, ops)
        else:
            draft_tokens = proposal.tokens[:, :k_step]
            draft_probs = None if proposal.probs is None else proposal.probs[:, :k_step]
            # 2. verify: one target forward over [last, d_1..d_k] at pos..pos+k -> logits [B, k+1, V]
            verify_tokens = torch.cat([last.view(B, 1), draft_tokens], 1)
            logits = target.forward(verify_tokens, pos)
            # 3. accept: n agreeing drafts, then one recovered/bonus token -> output [B, k+1], -1 padded
            if sampling.coupled and not sampling.greedy:  # greedy on the target's perturbed scores
                logits = coupled_verify_scores(logits, verify_tokens, None, num_draft, pos, sampling, step_seed)
                draft_probs = None
            num_accepted, output = accept_prefix(
                logits, draft_tokens, draft_probs=draft_probs, num_draft=torch.from_numpy(num_draft),
                temperature=0.0 if sampling.coupled else sampling.temperature, top_k=sampling.top_k,
                top_p=sampling.top_p, seed=step_seed, backend=ops)
        # 4. rollback: pos += n + 1, last = output[n]; KV past the accepted prefix is stale (a tree's accepted
        # path is first compacted to pos .. pos + n, its kept hidden states with it: an EAGLE drafter reads them)
        tree_kv = {} if slots is None else dict(accepted_slots=slots, k_cache=target.k_cache, v_cache=target.v_cache)
        if slots is not None and target.hidden_cache is not None:
            compact_hidden(pos, num_accepted, slots, target.hidden_cache)
        pos, last, _, _ = rollback_kv(pos, last, num_accepted, output, backend=ops, **tree_kv)
        n = num_accepted.numpy()  # [B], -1 for finished rows
        if policy is not None:
            tree_path = {} if slots is None else {"slots": slots.numpy()}  # the accepted path's nodes (trees)
            policy.update(num_draft, n, confidence, source, **tree_path)
        record(stats, rows, n, num_draft, output, source, parents)
    stats.total_s = time.perf_counter() - t0
    stats.new_tokens = sum(map(len, rows.new_tokens))
    return Generation(rows.new_tokens, stats)


def coupled_verify_scores(logits: torch.Tensor, tokens: torch.Tensor, parents: torch.Tensor | None,
                          num_draft: np.ndarray, pos: torch.Tensor, sampling: Sampling,
                          seeds: torch.Tensor) -> torch.Tensor:
    """The coupled mode's accept test as greedy: target logits [B, T, V] of the verified nodes tokens [B, T]
    ([last, d_1 ..]; parents [B, T] for a tree, None for a chain) -> perturbed scores [B, T, V] (fp32) whose
    argmax in node t's row is the target's own coupled sample of the token after t's path, at position
    pos + 1 + depth(t), the one plain decoding draws there; a draft is accepted when it equals it. seeds [B]:
    the run's.

    A sequence's nodes are scored along the path its samples take, from the root until no verified child
    carries the sample (most are rejected early: ~0.4 ms a 49152-wide row); the greedy accept stops there
    and never reads the rows off that path, left MASKED, nor a skipped row's (num_draft -1)."""
    B, T, V = logits.shape
    scores = torch.full((B, T, V), MASKED, dtype=torch.float32)
    out, node_tokens = scores.numpy(), tokens.tolist()
    par = [list(range(-1, T - 1))] * B if parents is None else parents.tolist()
    seed_rows, pos_rows = seeds.tolist(), pos.tolist()
    for b in range(B):
        kids = {(par[b][t], node_tokens[b][t]): t for t in range(1, int(num_draft[b]) + 1)}  # (parent, token) -> node
        node, depth = 0, 0
        while num_draft[b] >= 0:  # nothing for a skipped row (-1)
            p = process_logits(logits[b, node], sampling.temperature, sampling.top_k, sampling.top_p,
                               check="target_logits").numpy()
            support, row = support_scores(p, seed_rows[b], pos_rows[b] + 1 + depth)
            out[b, node, support] = row
            node = kids.get((node, int(support[np.argmax(row)])))
            if node is None:
                break
            depth += 1
    return scores


def verify_tree(target: TreeDecoder, last: torch.Tensor, draft_tokens: torch.Tensor, parents: torch.Tensor,
                num_draft: np.ndarray, pos: torch.Tensor, sampling: Sampling, seeds: torch.Tensor,
                ops: str = "torch") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 2-3 for a token tree: one tree-masked target forward over [last, d_1..d_k] (parents [B, k+1]),
    then the accepted root path of each row's first num_draft[b] + 1 nodes (greedy; coupled: greedy on the
    perturbed scores; sampled: recursive rejection over siblings, seeds [B] this step's), accept_tree on `ops`
    (the target's attention runs as its `attention` says). Returns num_accepted [B] (-1 for skipped rows),
    output [B, k+1] (-1 padded) and accepted_slots [B, k+1] (the verify slot of accepted token j), as
    accept_tree gives them."""
    B = len(num_draft)
    tokens = torch.cat([last.view(B, 1), draft_tokens], 1)  # [B, T]: node 0 is last, at position pos
    logits = target.forward_tree(tokens, pos, parents)  # [B, T, V]
    if sampling.coupled and not sampling.greedy:
        logits = coupled_verify_scores(logits, tokens, parents, num_draft, pos, sampling, seeds)
    T = tokens.shape[1]
    num_accepted = torch.full((B,), -1, dtype=torch.long)
    output = torch.full((B, T), PLACEHOLDER, dtype=torch.long)
    slots = torch.arange(T).repeat(B, 1)  # identity: nothing to move
    for made in np.unique(num_draft[num_draft >= 0]).tolist():  # rows verifying the same node count: one call
        rows = torch.from_numpy(np.flatnonzero(num_draft == made))
        t = made + 1  # the first t nodes of a best-first tree are a tree
        # greedy (coupled: on the perturbed scores), or sampled: recursive rejection over siblings, the tree
        # drafter deterministic (q one-hot on each node's token)
        sampled = {} if sampling.greedy or sampling.coupled else dict(
            temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, seed=seeds[rows])
        n, out, sl = accept_tree(logits[rows, :t], tokens[rows, :t], parents[rows, :t], **sampled, backend=ops)
        num_accepted[rows], output[rows, :t], slots[rows, :t] = n, out, sl
    return num_accepted, output, slots


def plain_step(target: Decoder, last: torch.Tensor, pos: torch.Tensor, done: np.ndarray, sampling: Sampling,
               seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One target decode step inside the loop, in accept_prefix's output form: (num_accepted [B] = 0,
    output [B, 1]), -1 for finished rows. seeds: this step's (this_step)."""
    logits = target.forward(last.view(-1, 1), pos)[:, 0]  # [B, V]
    if sampling.coupled and not sampling.greedy:
        token = sample_next(logits, sampling, seeds, pos + 1)  # the run's row seeds; the token at pos + 1
    else:
        token = greedy_or_sample(logits, sampling.temperature, sampling.top_k, sampling.top_p, seeds)
    finished = torch.from_numpy(done)
    return torch.where(finished, -1, 0), torch.where(finished, -1, token).view(-1, 1)


def record(stats: Stats, rows: Rows, n: np.ndarray, num_draft: np.ndarray, output: torch.Tensor,
           source: np.ndarray | None, parents: torch.Tensor | None = None) -> None:
    """Emit each live row's n + 1 tokens and count the step (per position, per kind of step). For a tree
    (parents [B, k+1]), position t counts node t+1 as offered and the path's (t+1)-th token as accepted,
    and a row-step whose verified nodes branch counts in tree_row_steps."""
    sources = [0] * len(n) if source is None else source.tolist()
    out_rows = output.tolist()
    stats.steps += 1
    if parents is not None:
        par = parents.tolist()
        stats.tree_row_steps += sum(len(set(par[b][1:t + 1])) < t for b, t in enumerate(num_draft.tolist()) if t > 1)
    for b, (n_b, offered) in enumerate(zip(n.tolist(), num_draft.tolist())):
        if n_b < 0:  # a finished row
            continue
        rows.emit(b, out_rows[b][:n_b + 1])
        for t in range(offered):
            stats.offered_per_position[t] += 1
            stats.accepted_per_position[t] += int(t < n_b)
        kind = step_kind(offered, sources[b])
        stats.kind_steps[kind] += 1
        stats.kind_drafted[kind] += max(offered, 0)
        stats.kind_accepted[kind] += n_b
        stats.row_steps += 1
        stats.drafted += offered
        stats.accepted += n_b
        stats.emitted += n_b + 1
