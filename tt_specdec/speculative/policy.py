"""The k policy: per-row k chosen from the cost model and a running estimate of acceptance."""
from __future__ import annotations

import numpy as np

from tt_specdec.speculative.cost import CostModel, expected_tokens


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

    width: int | None = None  # children per node a tree drafter is asked for; None: its own (TreePolicy sets it)

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
    # microseconds (torch's small ops cost a step ~1 ms); per-row arrays in and out are numpy too (the
    # loop's form), and anything np.asarray takes is accepted
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

    def calibrated(self, confidence, source=None) -> np.ndarray:
        """confidence [B, k] in 0..1 (0: not a draft), source [B] or None (0) -> estimated acceptance (float64)."""
        return self.estimate(np.asarray(confidence), None if source is None else np.asarray(source))

    def trim(self, num_draft: np.ndarray, confidence: np.ndarray | None,
             source: np.ndarray | None = None) -> np.ndarray:
        """num_draft [B] drafts made per row (-1 skipped), confidence [B, k] or None, source [B] -> the drafts
        each row verifies: the prefix maximising (1 + sum of estimated acceptances of its drafts) / (its
        verify cost + the drafting already spent). A row with NaN confidence (unknown) keeps all."""
        if confidence is None:
            return num_draft
        conf, made = np.asarray(confidence), np.asarray(num_draft)
        B, k = conf.shape
        unsure = np.where(np.isnan(conf), 1.0, conf)  # NaN: no confidence given, taken as sure
        reach = np.cumprod(self.estimate(unsure, None if source is None else np.asarray(source)), 1)  # P(d_1..d_t ok)
        tokens = 1.0 + np.concatenate([np.zeros((B, 1)), reach.cumsum(1)], 1)  # [B, k+1]
        rate = tokens / (self.cost.d0 + k * self.cost.c + self.after_drafting[:k + 1])  # per prefix j, drafts spent
        j = np.arange(k + 1)
        rate[j > made.reshape(B, 1)] = -np.inf  # only the drafts a row made
        best = k - rate[:, ::-1].argmax(1)  # the best rate; on a tie the longer prefix
        unknown = (np.isnan(conf) & (j[1:] <= made.reshape(B, 1))).any(1)  # NaN among its drafts: keep all
        return np.where((made <= 0) | unknown, made, best).astype(np.int64)

    def observe(self, num_draft: np.ndarray, num_accepted: np.ndarray, confidence: np.ndarray | None,
                source: np.ndarray | None = None) -> None:
        """Learn confidence -> acceptance from one step: d_t was judged when d_1..d_{t-1} were accepted."""
        if confidence is None:
            return
        conf = np.asarray(confidence)
        self.bin_hits *= self.decay ** (1 / self.bins)  # slow: every bin sees only some drafts
        self.bin_trials *= self.decay ** (1 / self.bins)
        n = np.maximum(np.asarray(num_accepted), 0).reshape(-1, 1)
        t = np.arange(conf.shape[1])
        # d_t judged: offered and reached (d_1..d_{t-1} accepted); NaN (no confidence) and 0 (no draft) > 0 is False
        judged = (t < np.maximum(np.asarray(num_draft), 0).reshape(-1, 1)) & (t <= n) & (conf > 0)  # [B, k]
        rows, index = self.table_index(conf, None if source is None else np.asarray(source))
        at = (np.repeat(rows, index.shape[1], 1)[judged], index[judged])  # (source, bin) of each judged draft
        np.add.at(self.bin_trials, at, 1.0)
        np.add.at(self.bin_hits, at, ((t < n) & judged)[judged].astype(np.float64))

    def acceptance(self) -> np.ndarray:
        """[B] estimated per-token acceptance: the running successes and trials with the prior."""
        return (self.success + self.prior * self.prior_weight) / (self.trials + self.prior_weight)

    def choose(self) -> np.ndarray:
        """[B] k per row for the next step, 0 .. k_max."""
        a = self.acceptance()
        ks = np.array([self.cost.best_k(a_b, self.k_max) for a_b in a.tolist()], dtype=np.int64)
        probe = (ks == 0) & (self.plain_steps + 1 >= self.probe_every)
        return np.where(probe, 1, ks)

    def update(self, num_draft: np.ndarray, num_accepted: np.ndarray, confidence: np.ndarray | None = None,
               source: np.ndarray | None = None, slots: np.ndarray | None = None) -> None:
        """num_draft [B] offered (-1 skipped), num_accepted [B] from accept_prefix, confidence [B, k] and
        source [B] the drafter's or None (see trim); slots [B, k+1]: a tree's accepted path (TreePolicy)."""
        self.observe(num_draft, num_accepted, confidence, source)
        made = np.asarray(num_draft)
        offered = np.maximum(made, 0).astype(np.float64)
        n = np.maximum(np.asarray(num_accepted), 0).astype(np.float64)
        failed = (n < offered).astype(np.float64)
        live = offered > 0
        self.success = np.where(live, self.success * self.decay + n, self.success)
        self.trials = np.where(live, self.trials * self.decay + n + failed, self.trials)
        self.plain_steps = np.where(made == 0, self.plain_steps + 1, 0)


class TreePolicy(AdaptiveK):
    """Chain or token tree, and how many drafts, for a tree drafter: the (width, k) whose predicted
    tokens per second E_w(k) / step_cost(k) is best, from the cost model's measured v(T) and the
    acceptance measured on this run.

    E_w(k), the tokens a step emits when it verifies the best-first tree of k drafts with at most w
    children per node (w = 1: a chain), is measured exactly for every k' <= k by each step that verified
    k drafts at width w: the first k' nodes of a best-first proposal are the k'-draft tree, and the
    accepted path restricted to them is the path's first nodes below k' (`prefix_accepted`). Counts
    decay geometrically; a size measured little leans on its prior, extrapolated from the sizes below
    it, and is predicted optimistically (`expected`), so that k grows while growing pays and stops
    when measurements say otherwise. Every `probe_every` steps the best (w, k) of another width is tried,
    so that each width's estimate stays current. A step asks all live rows for the same shape: they
    share the verify forward. Ties go to the chain, then to fewer drafts.
    """

    def __init__(self, cost: CostModel, k_max: int, widths: tuple[int, ...] = (1, 4), *, prior: float = 0.6,
                 prior_weight: float = 2.0, decay: float = 0.95, probe_every: int = 8, explore: float = 1.0,
                 shrink: float = 0.9):
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths: got {widths!r}, expected ints >= 1 (children per node; 1: a chain)")
        self.widths = tuple(sorted(set(widths)))
        self.explore = explore  # tokens of optimism for a size measured once (over sqrt of its weight)
        self.shrink = shrink  # per draft, how an extrapolated gain shrinks past the sizes measured
        super().__init__(cost, k_max, prior=prior, prior_weight=prior_weight, decay=decay, probe_every=probe_every)
        self.width = self.widths[0]
        self.step_costs = np.array([cost.step_cost(k) for k in range(self.k_max + 1)])  # [k_max+1], decode steps

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        W, K = len(self.widths), self.k_max + 1
        # shape_tokens[w, k] / shape_trials[w, k]: decayed sum and count of the tokens a step emitted within
        # its first k drafts at width w (k = 0: a plain step, 1 token)
        self.shape_tokens = np.zeros((W, K))
        self.shape_trials = np.zeros((W, K))
        self.steps = 0

    def expected(self) -> np.ndarray:
        """[W, k_max+1] E_w(k), optimistic: the mean tokens per step measured at each size, pulled towards a
        prior with `prior_weight` steps and made non-decreasing in k, plus explore / sqrt(the size's weight)
        (one step's count is noisy: a size measured once may be better than it looked), at most k + 1. The
        prior: the chain's at acceptance `prior` up to the first size measured; past the last size measured,
        the mean gain per draft over the upper half of the sizes below it, shrinking by `shrink` per draft
        (a best-first tree's gains shrink), so sizes measured little or long ago follow those measured."""
        W, K = len(self.widths), self.k_max + 1
        mean = np.ones((W, K))  # k = 0: a plain step emits one token
        weight = self.shape_trials + self.prior_weight  # [W, K]
        for w in range(W):
            last, gain = 0, 0.0  # the largest size measured so far, and the gain per draft below it
            for k in range(1, K):
                if last == 0:
                    prior = expected_tokens(self.prior, k)
                else:
                    prior = mean[w, k - 1] + gain * self.shrink ** (k - last)
                mean[w, k] = max(mean[w, k - 1], (self.shape_tokens[w, k] + prior * self.prior_weight) / weight[w, k])
                if self.shape_trials[w, k] >= 0.5:
                    last, half = k, k // 2
                    gain = (mean[w, k] - mean[w, half]) / (k - half)
        optimistic = np.maximum.accumulate(mean + self.explore / np.sqrt(weight), axis=1)
        return np.minimum(optimistic, np.arange(K) + 1.0)  # k drafts emit at most k + 1 tokens

    def rates(self) -> np.ndarray:
        """[W, k_max+1] predicted speedup over the target alone of each (width, k): CostModel.speedup_at_length."""
        return self.expected() * (1.0 + self.cost.o0) / self.step_costs

    def best(self, widths: list[int] | None = None) -> tuple[int, int]:
        """(width index, k) with the best predicted speedup among `widths` (indices; default all); ties:
        the narrower width, then fewer drafts."""
        S = self.rates()
        allowed = range(len(self.widths)) if widths is None else widths
        return max(((w, k) for w in allowed for k in range(self.k_max + 1)), key=lambda wk: (S[wk], -wk[0], -wk[1]))

    def choose(self) -> np.ndarray:
        """[B] the same k for every row (0: a plain step) and self.width, for the next step."""
        w, k = self.best()
        self.steps += 1
        if len(self.widths) > 1 and self.steps % self.probe_every == 0:  # keep the other widths measured
            w, k = self.best([i for i in range(len(self.widths)) if i != w])
        if k == 0 and self.plain_steps.size and int(self.plain_steps.min()) + 1 >= self.probe_every:
            k = 1  # a row at plain decoding probes with one draft so that its estimate can recover
        self.width = self.widths[0] if k <= 1 else self.widths[w]  # one draft is a chain at any width
        return np.full(len(self.plain_steps), k, dtype=np.int64)

    def trim(self, num_draft: np.ndarray, confidence: np.ndarray | None,
             source: np.ndarray | None = None) -> np.ndarray:
        return num_draft  # the shape was chosen before drafting

    def update(self, num_draft: np.ndarray, num_accepted: np.ndarray, confidence: np.ndarray | None = None,
               source: np.ndarray | None = None, slots: np.ndarray | None = None) -> None:
        """Learn E_width(k') for every k' up to each row's num_draft from its accepted path (slots [B, k+1],
        accept_tree's; None: a chain, whose path is its first n drafts)."""
        made = np.asarray(num_draft)
        self.plain_steps = np.where(made == 0, self.plain_steps + 1, 0)
        live = made > 0
        if not live.any():
            return
        w = self.widths.index(self.width)
        self.shape_tokens[w] *= self.decay
        self.shape_trials[w] *= self.decay
        got = prefix_accepted(made, np.asarray(num_accepted), slots, self.k_max)  # [B, k_max+1], -1: not offered
        seen = got >= 0
        self.shape_tokens[w] += np.where(seen, got + 1, 0).sum(0)
        self.shape_trials[w] += seen.sum(0)


def prefix_accepted(num_draft: np.ndarray, num_accepted: np.ndarray, slots: np.ndarray | None,
                    k_max: int) -> np.ndarray:
    """[B, k_max+1]: for each row and k' <= num_draft[b], the drafts its step would have accepted had it
    verified only its first k' nodes (-1 where k' > num_draft[b]). The accepted path's j-th token sits at
    node slots[b, j] (increasing with j), so within the first k' nodes the path keeps the j with
    slots[b, j] <= k'. A chain (slots None): min(n, k')."""
    B = len(num_draft)
    ks = np.arange(k_max + 1)
    n = np.maximum(num_accepted, 0).reshape(B, 1)
    if slots is None:
        got = np.minimum(n, ks)
    else:
        j = np.arange(1, slots.shape[1])
        on_path = (j <= n) & (slots[:, 1:] >= 1)  # [B, k]: path tokens 1..n
        node = np.where(on_path, slots[:, 1:], k_max + 1)  # their node indices (past k_max: none)
        got = (node[:, None, :] <= ks[None, :, None]).sum(2)  # [B, k_max+1]
    return np.where(ks <= num_draft.reshape(B, 1), got, -1)
