"""The cost model of speculative decoding: what a step costs and what it gains, in target decode steps.

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
