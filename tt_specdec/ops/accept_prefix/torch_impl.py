"""accept_prefix in torch and numpy, vectorized over rows (the CPU path); arguments validated by
tt_specdec.ops.accept_prefix."""
from __future__ import annotations

import numpy as np
import torch

from tt_specdec.ops.accept_prefix.checks import PLACEHOLDER
from tt_specdec.sampling import (STREAM_ACCEPT, STREAM_SAMPLE, argmax, process_logits, sample_inverse_cdf, seeds_for_rows,
                                 uniform)


def accept_prefix(target_logits: torch.Tensor, draft_tokens: torch.Tensor, draft_probs: torch.Tensor | None,
                  num_draft: torch.Tensor | None, temperature: float, top_k: int, top_p: float,
                  seed: int | torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """num_accepted [B], output_tokens [B, k+1] (int64), as tt_specdec.ops.accept_prefix documents; the
    finiteness of target_logits is checked here, in the one argmax pass over every row."""
    B, k1, V = target_logits.shape
    k = k1 - 1
    # [B, k(+1)] small integers from here on: numpy, whose ops cost microseconds (torch's ~10x more)
    d = draft_tokens.long().numpy()
    lim = np.full(B, k) if num_draft is None else num_draft.long().numpy()
    # one pass over every row: greedy's target tokens, and the finiteness check of both paths (sampling
    # reads only the rows it reaches)
    target_tokens = argmax(target_logits, check="target_logits").numpy()  # [B, k+1]
    if temperature == 0.0:
        accepted = (target_tokens[:, :k] == d) & (np.arange(k) < lim.reshape(B, 1))
        n = accepted.cumprod(1).sum(1)  # [B]
        final = target_tokens[np.arange(B), n]
    else:
        n, final = accept_sampled(target_logits, d, draft_probs, lim, temperature, top_k, top_p,
                                  seeds_for_rows(seed, B))  # an int: one seed for the call, rows independent
    output = np.where(np.arange(k + 1) < n.reshape(B, 1), np.concatenate([d, d[:, :1]], 1), PLACEHOLDER)
    output[np.arange(B), n] = final
    if num_draft is not None:
        skipped = lim < 0
        n = np.where(skipped, PLACEHOLDER, n)
        output[skipped] = PLACEHOLDER
    return torch.from_numpy(n.astype(np.int64)), torch.from_numpy(output.astype(np.int64))


def accept_sampled(target_logits: torch.Tensor, d: np.ndarray, draft_probs: torch.Tensor | None, lim: np.ndarray,
                   temperature: float, top_k: int, top_p: float, seed: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Speculative sampling's accept test, row by row: (n [B], the recovered/bonus token [B]).

    A row's target distribution p_t is computed only for the positions it reaches (the drafts up to the
    first rejection, then the residual's or the bonus's row): ~0.2 ms of a 49152-wide row each, and
    most drafts are rejected early. The caller has checked that every row is finite."""
    B, k = d.shape
    q = None if draft_probs is None else draft_probs.double().numpy()  # [B, k, V]; None: one-hot on d_t
    u = uniform(seed.view(B, 1), STREAM_ACCEPT, torch.arange(k).view(1, k)).numpy()  # [B, k]
    n, residuals, drawn = np.zeros(B, dtype=np.int64), [], []
    for b in range(B):
        if lim[b] < 0:  # a finished row: nothing to accept or draw
            continue
        drawn.append(b)
        t = 0
        while True:
            p = process_logits(target_logits[b, t], temperature, top_k, top_p).numpy()  # [V]
            if t >= lim[b]:  # every offered draft accepted: the bonus token draws from p itself
                residuals.append(p)
                break
            q_d = 1.0 if q is None else q[b, t, d[b, t]]
            if u[b, t] * q_d < p[d[b, t]]:  # accepted with probability min(1, p/q), without dividing by q = 0
                t += 1
                continue
            # rejected: the recovered token draws from max(0, p - q_t) (p - one-hot: p without the draft)
            if q is None:
                residual = p.copy()
                residual[d[b, t]] = 0.0
            else:
                residual = np.maximum(p - q[b, t], 0.0)
            # p == q on the support gives a zero residual; rejection then has probability 0, keep p
            residuals.append(residual if residual.sum() > 0 else p)
            break
        n[b] = t
    final = np.full(B, PLACEHOLDER, dtype=np.int64)
    if drawn:
        final[drawn] = sample_inverse_cdf(torch.from_numpy(np.stack(residuals)), uniform(seed[drawn], STREAM_SAMPLE, 0))
    return n, final


def accept_tree(target_logits: torch.Tensor, tree_tokens: torch.Tensor,
                parents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """num_accepted [B], output_tokens [B, T], accepted_slots [B, T] (int64), as
    tt_specdec.ops.accept_prefix.accept_tree documents (greedy)."""
    B, T, _ = target_logits.shape
    rows = np.arange(B)
    target_tokens = argmax(target_logits, check="target_logits").numpy()  # [B, T]
    tokens, par = tree_tokens.long().numpy(), parents.long().numpy()
    ok = np.zeros((B, T), bool)  # node t is on the accepted path
    ok[:, 0] = True
    depth = np.zeros((B, T), np.int64)
    for t in range(1, T):  # parents come first
        p = par[:, t]
        ok[:, t] = ok[rows, p] & (tokens[:, t] == target_tokens[rows, p])
        depth[:, t] = depth[rows, p] + 1
    # the accepted nodes form one path (siblings have distinct tokens): its end is the deepest of them
    best = np.where(ok, depth, -1).argmax(1)  # [B]
    n = depth[rows, best]
    slots = np.tile(np.arange(T), (B, 1))  # rows j > n: identity (rollback copies nothing)
    node = best.copy()
    for j in range(T - 1, -1, -1):  # walk up from the end: path node j of row b is at depth j
        at = n >= j
        slots[rows[at], j] = node[at]
        node = np.where(at, np.maximum(par[rows, node], 0), node)
    output = np.where(np.arange(T) < n.reshape(B, 1), np.take_along_axis(tokens, np.roll(slots, -1, 1), 1), PLACEHOLDER)
    output[rows, n] = target_tokens[rows, best]  # recovered (best has children) or bonus (a leaf)
    return torch.from_numpy(n), torch.from_numpy(output.astype(np.int64)), torch.from_numpy(slots)
