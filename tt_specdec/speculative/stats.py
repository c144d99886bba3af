"""What a generation run measured."""
from __future__ import annotations

import dataclasses


STEP_KINDS = ("plain", "drafted", "copied")  # a row-step verified no draft / its drafter's own / copies (draft_source 1)


def step_kind(num_draft: int, source: int) -> int:
    """Index into STEP_KINDS of a row-step that verified num_draft drafts of draft_source `source`."""
    return 0 if num_draft <= 0 else 1 + min(source, 1)


@dataclasses.dataclass
class Stats:
    k: int = 0
    steps: int = 0  # target forward calls after prefill (verify steps, or decode steps when k = 0)
    drafted: int = 0  # draft tokens offered for verification, summed over live rows
    accepted: int = 0  # draft tokens accepted
    emitted: int = 0  # tokens emitted after the prefill token (accepted + recovered/bonus)
    row_steps: int = 0  # (live row, step) pairs
    proposals: int = 0  # steps in which the drafter ran
    proposed: int = 0  # draft-model steps it ran (a copy runs none); with confidence trims, more than drafted / B
    accepted_per_position: list[int] = dataclasses.field(default_factory=list)  # [k] rows accepting d_t
    offered_per_position: list[int] = dataclasses.field(default_factory=list)  # [k] rows offering d_t
    # per kind of row-step (STEP_KINDS: plain, the drafter's own drafts, copies): row-steps, drafts verified,
    # drafts accepted; what each kind of step brings (a plain one includes drafts trimmed to none)
    kind_steps: list[int] = dataclasses.field(default_factory=lambda: [0] * len(STEP_KINDS))
    kind_drafted: list[int] = dataclasses.field(default_factory=lambda: [0] * len(STEP_KINDS))
    kind_accepted: list[int] = dataclasses.field(default_factory=lambda: [0] * len(STEP_KINDS))
    tree_row_steps: int = 0  # row-steps that verified a token tree with a branch (a node with 2+ children)
    # steps per proposal shape the policy asked for: "k=<drafts> w=<children per node>" (w=1: a chain)
    shape_steps: dict[str, int] = dataclasses.field(default_factory=dict)
    new_tokens: int = 0  # tokens returned to the caller, all rows
    ttft_s: float = 0.0  # prompt in -> first token out
    total_s: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drafted tokens."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_accepted_length(self) -> float:
        """Tokens emitted per row per target step (n + 1): 1 for plain decoding."""
        return self.emitted / self.row_steps if self.row_steps else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.total_s if self.total_s else 0.0

    @property
    def acceptance_per_position(self) -> list[float]:
        """P(d_t accepted | d_t offered), t = 1 .. k."""
        return [a / o if o else 0.0 for a, o in zip(self.accepted_per_position, self.offered_per_position)]

    @property
    def steps_by_kind(self) -> dict[str, dict[str, float]]:
        """Per kind of row-step: its share of the row-steps and the tokens it emitted per step."""
        total = sum(self.kind_steps)
        return {kind: {"share": n / total, "tokens_per_step": (n + a) / n}
                for kind, n, a in zip(STEP_KINDS, self.kind_steps, self.kind_accepted) if n}

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for name in ("acceptance_rate", "mean_accepted_length", "tokens_per_s", "acceptance_per_position",
                     "steps_by_kind"):
            out[name] = getattr(self, name)
        return out
