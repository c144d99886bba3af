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


def accept_tree(target_logits: torch.Tensor, tree_tokens: torch.Tensor, parents: torch.Tensor,
                draft_probs: torch.Tensor | None = None, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                seed: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """num_accepted [B], output_tokens [B, T], accepted_slots [B, T] (int64), as
    tt_specdec.ops.accept_prefix.accept_tree documents (greedy, or sampled by recursive rejection)."""
    B, T, _ = target_logits.shape
    rows = np.arange(B)
    tokens, par = tree_tokens.long().numpy(), parents.long().numpy()
    depth = np.zeros((B, T), np.int64)
    for t in range(1, T):  # parents come first
        depth[:, t] = depth[rows, par[:, t]] + 1
    # one pass over every row: greedy's target tokens, and the finiteness check of both paths (sampling
    # reads only the rows it reaches)
    target_tokens = argmax(target_logits, check="target_logits").numpy()  # [B, T]
    if temperature == 0.0:
        ok = np.zeros((B, T), bool)  # node t is on the accepted path
        ok[:, 0] = True
        for t in range(1, T):
            ok[:, t] = ok[rows, par[:, t]] & (tokens[:, t] == target_tokens[rows, par[:, t]])
        # the accepted nodes form one path (siblings have distinct tokens): its end is the deepest of them
        end = np.where(ok, depth, -1).argmax(1)  # [B]
        final = target_tokens[rows, end]  # recovered (end has children) or bonus (a leaf)
    else:
        end, final = accept_tree_sampled(target_logits, tokens, par, draft_probs, temperature, top_k, top_p,
                                         seeds_for_rows(seed, B))
    n = depth[rows, end]
    slots = np.tile(np.arange(T), (B, 1))  # rows j > n: identity (rollback copies nothing)
    node = end.copy()
    for j in range(T - 1, -1, -1):  # walk up from the end: path node j of row b is at depth j
        at = n >= j
        slots[rows[at], j] = node[at]
        node = np.where(at, np.maximum(par[rows, node], 0), node)
    output = np.where(np.arange(T) < n.reshape(B, 1), np.take_along_axis(tokens, np.roll(slots, -1, 1), 1), PLACEHOLDER)
    output[rows, n] = final
    return torch.from_numpy(n), torch.from_numpy(output.astype(np.int64)), torch.from_numpy(slots)


def accept_tree_sampled(target_logits: torch.Tensor, tokens: np.ndarray, par: np.ndarray,
                        draft_probs: torch.Tensor | None, temperature: float, top_k: int, top_p: float,
                        seed: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Recursive rejection over siblings, vectorized over rows: (the accepted path's end node [B], the
    recovered / bonus token [B]).

    Nodes are visited in index order. Node t is tested in the rows whose walk stands at its parent (so its
    earlier siblings were all rejected there): accepted when u * q_t(x_t) < r(x_t), r the residual the walk
    carries, then the walk moves to t with r = p_t; rejected, r becomes norm(max(0, r - q_t)) (one-hot q:
    r without x_t). A later sibling of an accepted node finds the walk elsewhere and is skipped, a child
    comes after its parent: one pass. The last token is drawn from the unnormalised residual w (p itself
    when nothing was rejected at the end node), as accept_prefix draws it: a chain gives its bits.
    p_t is computed only for the rows that reach node t (~0.2 ms a 49152-wide row)."""
    B, T, _ = target_logits.shape
    u = uniform(seed.view(B, 1), STREAM_ACCEPT, torch.arange(max(T - 1, 1)).view(1, -1)).numpy()  # [B, T-1]
    at_node = np.zeros(B, np.int64)  # where each row's walk stands
    r = process_logits(target_logits[:, 0], temperature, top_k, top_p).numpy()  # [B, V] tested against
    w = r.copy()  # [B, V] what the last token is drawn from
    for t in range(1, T):
        rows = np.flatnonzero(at_node == par[:, t])
        if not rows.size:
            continue
        x = tokens[rows, t]
        q = None if draft_probs is None else draft_probs[torch.from_numpy(rows), t].double().numpy()  # [R, V]
        q_x = 1.0 if q is None else q[np.arange(rows.size), x]
        accepted = u[rows, t - 1] * q_x < r[rows, x]  # probability min(1, r/q), without dividing by q = 0
        up = rows[accepted]
        if up.size:
            at_node[up] = t
            r[up] = w[up] = process_logits(target_logits[torch.from_numpy(up), t], temperature, top_k, top_p).numpy()
        down = rows[~accepted]
        if down.size:
            if q is None:
                residual = r[down]  # a copy (fancy indexing)
                residual[np.arange(down.size), x[~accepted]] = 0.0
            else:
                residual = np.maximum(r[down] - q[~accepted], 0.0)
            mass = residual.sum(1)  # pairwise: the reference's loop rounds differently, ~1e-16 apart
            # r <= q everywhere: the rejection had probability 0 (rounding); r stays
            moved = mass > 0
            w[down[moved]] = residual[moved]
            r[down[moved]] = residual[moved] / mass[moved, None]
    return at_node, sample_inverse_cdf(torch.from_numpy(w), uniform(seed, STREAM_SAMPLE, 0)).numpy()
