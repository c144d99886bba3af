"""The speculative step on a Tenstorrent device: both decoders and the loop's state on the card.

    step = DeviceStep(target, draft, k=4)            # two TtLlama (tt_specdec/models/ttnn_llama.py), one batch
    first = step.start(prompts)                       # prefill both, one after the other; host gets the first tokens
    n, tokens = step.step()                           # one step; host reads back num_accepted [B] and tokens [B, k+1]

State, all device tensors (int32, row-major [1, B] unless said):
    pos        target slots filled: the KV of every emitted token except `last`
    last       the newest emitted token, not yet in either cache
    prev       the token before `last` (its KV is in the draft's cache unless the whole draft was accepted)
    draft_pos  pos - 1: where the draft's first row of a step goes
    num_draft  [1, B] the effective k per row (k as data: 0 .. k; -1 skips a finished row)

A step (DESIGN.md's algorithm):
1. draft: the draft decoder runs [prev, last] at draft_pos (T = 2: rewriting prev's KV is harmless, and it
   restores it when the previous step accepted the whole draft and the draft never saw d_k), then k-1 rows of
   T = 1; each next token is ttnn.argmax of the last row.
2. verify: the target runs [last, d_1 .. d_k] at pos .. pos+k (T = k+1), attention by our verify_attention kernel.
3. accept: our accept_prefix kernel (greedy) -> num_accepted [B], output_tokens [B, k+1].
4. rollback: our rollback_kv kernel twice: with n -> (pos + n + 1, last = output[n]); with n - 1 ->
   (pos + n, prev = output[n-1], or the old last when n = 0: a row with -1 is left as it was).
The host reads back only num_accepted and output_tokens (4B + 4B(k+1) bytes). Every shape is fixed from the
first step on, so the program cache is hit from the second step on; nothing inside a step reads the host, and the
state tensors are updated in place (ttnn.copy), so their buffers stay the same from the first start() on.

Traced (after tt-transformers' Generator: models/tt_transformers/tt/generator.py, _capture_decode_trace_text /
_decode_forward_trace_text): step 1 runs `body` untraced (the compile run: every program built and cached, the
per-T constants made); step 2 captures `body` once per (B, k) with ttnn.begin_trace_capture / end_trace_capture
(which records the commands without running them) and replays it with ttnn.execute_trace; later steps only
replay. Its outputs (num_accepted, output_tokens) are the tensors the capture allocated, read back after each
replay. Where a trace cannot run (runtime/device.py trace_unavailable_reason: a mock device, slow dispatch, no
trace region) every step runs `body` untraced, the same ops, and the reason is said once on stderr.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from tt_specdec.ops.accept_prefix import accept_prefix
from tt_specdec.ops.rollback_kv import rollback_kv
from tt_specdec.runtime import device as D

_said: set[str] = set()  # the reasons for running untraced already said on stderr (once per process)


@dataclass
class StepState:
    pos: object
    last: object
    prev: object
    draft_pos: object
    num_draft: object


class DeviceStep:
    """trace: None (default) traces where the device can (trace_reason says why not), True requires it (refused
    with the reason where it cannot), False never traces."""

    def __init__(self, target, draft, k: int, *, trace: bool | None = None):
        if target.B != draft.B or target.vocab_size != draft.vocab_size:
            raise ValueError(f"draft: batch {draft.B} / vocab {draft.vocab_size}, expected the target's "
                             f"{target.B} / {target.vocab_size}")
        if k < 1:
            raise ValueError(f"k: got {k}, expected >= 1")
        if trace not in (None, True, False):
            raise ValueError(f"trace: got {trace!r}, expected None (when the device can), True or False")
        reason = D.trace_unavailable_reason(target.dev) if trace is not False else "trace=False"
        if trace and reason:
            raise ValueError(f"trace: got True, but this device cannot replay a trace: {reason}")
        self.target, self.draft, self.k, self.B = target, draft, k, target.B
        self.ttnn = target.ttnn
        self.ops = target.ops  # one log for the whole step (the draft's decoder shares it)
        draft.ops = self.ops
        self.state: StepState | None = None
        self.readback_bytes = 0
        self.trace_reason = reason  # None: steps after the first replay a captured trace
        self.trace_required = trace is True  # a failed capture raises instead of falling back
        self.compiled = False  # the first body ran untraced: every program is built and cached
        self.traces: dict[tuple[int, int], tuple[object, tuple]] = {}  # (B, k) -> (trace id, its outputs)

    def _row(self, values) -> object:
        ttnn = self.ttnn
        return ttnn.Tensor(np.asarray(values, np.int32).reshape(1, -1), ttnn.int32, self.target.dev,
                           ttnn.ROW_MAJOR_LAYOUT)

    def readback(self, x) -> list:
        """A device tensor's values on the host (counted: the only host reads of a step)."""
        self.readback_bytes += int(x.volume()) * int(x.element_size())
        return x.cpu().to_list()

    def start(self, prompts: list[list[int]]) -> list[int]:
        """Prefills the target, then the draft, on the prompts; returns the target's first token per row
        (greedy), which becomes `last`. A second start() writes the new state into the same buffers (ttnn.copy):
        a captured trace keeps replaying."""
        ttnn, op = self.ttnn, self.ops
        for model, T in ((self.target, self.k + 1), (self.draft, 2), (self.draft, 1)):
            model.step_constants(T)  # made (written from the host) here, so that the step body writes nothing
        logits = self.target.prefill(prompts)  # [B, 1, V]
        first = op(ttnn.argmax, op(ttnn.to_layout, logits, ttnn.ROW_MAJOR_LAYOUT), dim=-1)
        self.draft.prefill(prompts)
        firsts = [int(np.asarray(r).reshape(-1)[0]) for r in self.readback(first)]
        lengths = [len(p) for p in prompts]
        state = StepState(pos=self._row(lengths), last=self._row(firsts), prev=self._row([p[-1] for p in prompts]),
                          draft_pos=self._row([n - 1 for n in lengths]), num_draft=self._row([self.k] * self.B))
        if self.state is None:
            self.state = state
        else:
            for name in ("pos", "last", "prev", "draft_pos", "num_draft"):
                op(ttnn.copy, getattr(state, name), getattr(self.state, name))
        return firsts

    def propose(self, s: StepState):
        """k greedy draft tokens [B, k] int32, on the device."""
        ttnn, op, B, V = self.ttnn, self.ops, self.B, self.draft.vocab_size
        tokens = op(ttnn.concat, [self._tokens(s.prev), self._tokens(s.last)], dim=1)  # [B, 2]
        pos, T, drafts = s.draft_pos, 2, []
        for i in range(self.k):
            logits = self.draft.forward(op(ttnn.typecast, tokens, ttnn.uint32), pos, T)  # [1, 1, B*T, V]
            if T > 1:  # each row's last
                logits = op(ttnn.slice, op(ttnn.reshape, logits, [B, T, V]), [0, T - 1, 0], [B, T, V])
            logits = op(ttnn.reshape, op(ttnn.to_layout, logits, ttnn.ROW_MAJOR_LAYOUT), [1, 1, B, V])
            d = op(ttnn.reshape, op(ttnn.argmax, logits, dim=-1), [B, 1])  # uint32
            d = op(ttnn.typecast, op(ttnn.to_layout, d, ttnn.TILE_LAYOUT), ttnn.int32)
            d = op(ttnn.to_layout, d, ttnn.ROW_MAJOR_LAYOUT)
            drafts.append(d)
            if i + 1 < self.k:
                pos = self._add(pos, T)  # the next row's position
                tokens, T = d, 1
        return op(ttnn.concat, drafts, dim=1)  # [B, k]

    def step(self) -> tuple[list[int], list[list[int]]]:
        """One speculative step; returns (num_accepted [B], output tokens [B, k+1], -1 padded) read back."""
        if self.state is None:
            raise RuntimeError("step: call start(prompts) first")
        if self.trace_reason not in (None, "trace=False") and self.trace_reason not in _said:
            _said.add(self.trace_reason)
            print(f"tt_specdec: the device step runs untraced: {self.trace_reason}", file=sys.stderr)
        if not self.compiled or self.trace_reason is not None:
            n, out = self.body()
            self.compiled = True
        else:
            n, out = self.replay()
        accepted = [int(v) for v in np.asarray(self.readback(n)).reshape(-1)]
        return accepted, [list(map(int, r)) for r in self.readback(out)]

    def replay(self) -> tuple:
        """The step as a trace: captured on first use per (B, k) (ttnn.begin_trace_capture records `body`'s
        commands without running them), then ttnn.execute_trace; returns the outputs the capture allocated."""
        ttnn, dev, key = self.ttnn, self.target.dev, (self.B, self.k)
        if key not in self.traces:
            trace_id = ttnn.begin_trace_capture(dev, cq_id=0)
            try:
                outputs = self.body()
            except Exception as error:  # nothing ran (capture only records): free it, never capture again
                ttnn.end_trace_capture(dev, trace_id, cq_id=0)
                ttnn.release_trace(dev, trace_id)
                self.trace_reason = f"the trace capture failed ({type(error).__name__}: {error})"
                if self.trace_required:
                    raise
                print(f"tt_specdec: the device step runs untraced: {self.trace_reason}", file=sys.stderr)
                return self.body()
            ttnn.end_trace_capture(dev, trace_id, cq_id=0)
            self.traces[key] = (trace_id, outputs)
        trace_id, outputs = self.traces[key]
        ttnn.execute_trace(dev, trace_id, cq_id=0, blocking=False)  # the readback that follows waits for it
        return outputs

    def release(self) -> None:
        """Frees the captured traces' device storage (ttnn.release_trace)."""
        for trace_id, _ in self.traces.values():
            self.ttnn.release_trace(self.target.dev, trace_id)
        self.traces = {}

    def body(self) -> tuple:
        """The step on the device, nothing read or written by the host (what a trace replays): draft, verify,
        accept, rollback, the state updated in place; returns (num_accepted [B], output_tokens [B, k+1])
        device tensors."""
        ttnn, op, s, B, k = self.ttnn, self.ops, self.state, self.B, self.k
        drafts = self.propose(s)  # [B, k] int32
        tokens = op(ttnn.concat, [self._tokens(s.last), drafts], dim=1)  # [B, k+1]: last, d_1 .. d_k
        logits = self.target.forward(op(ttnn.typecast, tokens, ttnn.uint32), s.pos, k + 1)  # [1, 1, B(k+1), V]
        logits = op(ttnn.reshape, op(ttnn.to_layout, logits, ttnn.ROW_MAJOR_LAYOUT), [B, k + 1, self.target.vocab_size])
        n, out = op(accept_prefix, logits, drafts, num_draft=s.num_draft, name="accept_prefix")
        after = op(rollback_kv, s.pos, s.last, n, out, name="rollback_kv")
        before = op(rollback_kv, s.pos, s.last, self._add(n, -1), out, name="rollback_kv")  # pos + n, output[n-1]
        # the state's tensors are updated in place (fixed buffers from start() on: what a captured trace replays)
        for new, state in ((after.pos, s.pos), (after.last, s.last), (before.last, s.prev), (before.pos, s.draft_pos)):
            op(ttnn.copy, op(ttnn.reshape, new, [1, B]), state)  # rollback_kv's [B] -> the state's [1, B]
        return n, out

    def _tokens(self, row):
        """[1, B] -> [B, 1]."""
        return self.ops(self.ttnn.reshape, row, [self.B, 1])

    def _add(self, x, value: int):
        """x + value for an int32 row-major device tensor, on the device."""
        ttnn, op = self.ttnn, self.ops
        shape = list(x.shape)
        x = op(ttnn.reshape, x, [1, int(x.volume())])
        y = op(ttnn.add, op(ttnn.to_layout, x, ttnn.TILE_LAYOUT), value)
        return op(ttnn.reshape, op(ttnn.to_layout, y, ttnn.ROW_MAJOR_LAYOUT), shape)


def device_generate(step: DeviceStep, prompts: list[list[int]], max_new_tokens: int,
                    eos_token_id: int | None = None):
    """Greedy speculative generation with every step on the device; a Generation (tokens per row, stats).
    Rows that finish (EOS, max_new_tokens) keep stepping with the others and their extra tokens are dropped:
    a finished row's num_draft could be set to -1 instead (the kernels skip it), a host write per finish."""
    import time

    from tt_specdec.speculative.loop import Generation
    from tt_specdec.speculative.stats import Stats

    t0 = time.perf_counter()
    stats = Stats(k=step.k)
    rows = [[t] for t in step.start(prompts)]
    stats.ttft_s = time.perf_counter() - t0
    limit = step.target.max_seq_len - step.k - 1  # the verify writes k+1 slots from pos

    def done(r):
        return len(r) >= max_new_tokens or (eos_token_id is not None and eos_token_id in r)

    pos = [len(p) for p in prompts]
    while not all(done(r) for r in rows) and max(pos) <= limit:
        accepted, out = step.step()
        stats.steps += 1
        for b, (n, tokens) in enumerate(zip(accepted, out)):
            pos[b] += n + 1
            if not done(rows[b]):
                stats.row_steps += 1
                stats.drafted += step.k
                stats.accepted += n
                stats.emitted += n + 1
                rows[b] += tokens[:n + 1]
    for b, r in enumerate(rows):
        r[:] = r[:max_new_tokens]
        if eos_token_id is not None and eos_token_id in r:
            r[:] = r[:r.index(eos_token_id) + 1]
    stats.new_tokens = sum(len(r) for r in rows)
    stats.total_s = time.perf_counter() - t0
    return Generation(rows, stats)


def device_generate_plain(target, prompts: list[list[int]], max_new_tokens: int, eos_token_id: int | None = None):
    """Greedy decoding with the target alone on the device (T = 1 per step, argmax on the device, one token per
    row read back per step): the baseline the speculative output must equal token for token."""
    ttnn, op, B = target.ttnn, target.ops, target.B
    logits = target.prefill(prompts)
    tok = op(ttnn.argmax, op(ttnn.to_layout, logits, ttnn.ROW_MAJOR_LAYOUT), dim=-1)  # [B, 1] uint32
    pos = ttnn.Tensor(np.asarray([[len(p) for p in prompts]], np.int32), ttnn.int32, target.dev,
                      ttnn.ROW_MAJOR_LAYOUT)
    rows = [[] for _ in prompts]
    for _ in range(max_new_tokens):
        for b, v in enumerate(np.asarray(tok.cpu().to_list()).reshape(-1)):
            rows[b].append(int(v))
        if all(eos_token_id in r for r in rows) or max(len(p) + len(r) for p, r in zip(prompts, rows)) >= \
                target.max_seq_len:
            break
        logits = target.forward(op(ttnn.reshape, tok, [B, 1]), pos, 1)  # [1, 1, B, V]
        logits = op(ttnn.reshape, op(ttnn.to_layout, logits, ttnn.ROW_MAJOR_LAYOUT), [1, 1, B, target.vocab_size])
        tok = op(ttnn.reshape, op(ttnn.argmax, logits, dim=-1), [B, 1])
        p = op(ttnn.add, op(ttnn.to_layout, pos, ttnn.TILE_LAYOUT), 1)
        pos = op(ttnn.to_layout, p, ttnn.ROW_MAJOR_LAYOUT)
    for r in rows:
        r[:] = r[:max_new_tokens]
        if eos_token_id is not None and eos_token_id in r:
            r[:] = r[:r.index(eos_token_id) + 1]
    return rows
