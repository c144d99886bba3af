"""Accept the longest agreeing draft prefix and emit accepted + recovered/bonus tokens.

Vocabulary (as in vLLM's rejection sampler):
    accepted   draft tokens kept, d_1 .. d_n
    recovered  the target's token at the first rejection (row n), when n < k
    bonus      the target's token after a fully accepted draft (row k), when n == k
    output     accepted + (recovered | bonus): n + 1 tokens, then PLACEHOLDER (-1)
"""
from __future__ import annotations

import numpy as np
import torch

from tt_specdec.errors import check_finite, check_shape, check_tokens, value_range
from tt_specdec.sampling import (STREAM_ACCEPT, STREAM_SAMPLE, argmax, check_sampling_args, process_logits,
                                     sample_inverse_cdf, uniform)

PLACEHOLDER = -1
MAX_DRAFT = 31  # k + 1 target rows fit one 32-row tile


def check_accept_args(target_logits, draft_tokens, draft_probs, num_draft, temperature, top_k, top_p, seed,
                      finite_logits: bool = True):
    """Validate accept_prefix's arguments; returns (B, k, V). finite_logits=False leaves the finiteness of
    target_logits to the caller (the greedy path checks it in its argmax pass)."""
    check_shape("target_logits", target_logits, (None, None, None), "= [B, k+1, V]")
    B, k1, V = target_logits.shape
    k = k1 - 1
    if not 1 <= k <= MAX_DRAFT:
        raise ValueError(f"target_logits: got {k1} rows per sequence (k={k}), expected k+1 rows with 1 <= k <= {MAX_DRAFT}")
    check_shape("draft_tokens", draft_tokens, (B, k), "= [B, k] (k+1 = target_logits rows)")
    check_tokens("draft_tokens", draft_tokens, V)
    if finite_logits:
        check_finite("target_logits", target_logits)
    if num_draft is not None:
        check_shape("num_draft", num_draft, (B,))
        lo, hi = value_range(num_draft)
        if lo < -1 or hi > k:
            raise ValueError(f"num_draft: got {num_draft.tolist()}, expected values in -1..{k} (-1 = skip row)")
    check_sampling_args(temperature, top_k, top_p)
    if temperature > 0:
        if draft_probs is not None:
            check_shape("draft_probs", draft_probs, (B, k, V), "= [B, k, V] (the draft's sampling distribution)")
            check_finite("draft_probs", draft_probs)
        if seed is None:
            raise ValueError("seed: got None, expected an int or per-row seeds [B] when temperature > 0")
    return B, k, V


def accept_prefix(target_logits: torch.Tensor, draft_tokens: torch.Tensor, *,
                  draft_probs: torch.Tensor | None = None, num_draft: torch.Tensor | None = None,
                  temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                  seed: int | torch.Tensor | None = None,
                  backend: str = "torch") -> tuple[torch.Tensor, torch.Tensor]:
    """Compare drafts with the target and emit the tokens of one speculative step.

    Shapes:
        target_logits  [B, k+1, V]  target rows for [last, d_1 .. d_k]
        draft_tokens   [B, k]       d_1 .. d_k
        draft_probs    [B, k, V]    q_t, the distribution d_t was sampled from (sampling only;
                                    None = a deterministic drafter, q_t one-hot on d_t)
        num_draft      [B]          effective k per row (0 .. k; -1 skips a finished row)
        seed           int or [B]   per-row seeds of this step (sampling only)
        backend        "torch", or "emu": the TT-Metal kernels on the host emulator,
                       or "device": the same kernels on a Tenstorrent card (also chosen for ttnn tensors)
        returns        num_accepted [B] (int64, -1 for skipped rows),
                       output_tokens [B, k+1] (int64, PLACEHOLDER = -1 padded)

    Greedy (temperature == 0): n is the longest prefix with argmax(row t) == d_{t+1}; then
    the argmax of row n. Sampling: d_t is accepted with probability min(1, p_t(d_t)/q_t(d_t)),
    stopping at the first rejection, whose token is drawn from norm(max(0, p_n - q_n));
    the bonus token is drawn from p_k. p is the target after temperature, top-k, top-p.
    Either way, output has exactly the target's distribution (Leviathan et al. 2023).

    Example (greedy, k = 3, V = 4):
        >>> logits = torch.eye(4)[[1, 2, 0, 3]].unsqueeze(0)  # target argmax per row: 1, 2, 0, 3
        >>> accept_prefix(logits, torch.tensor([[1, 2, 3]]))   # d_3 = 3 != 0: reject it, emit 0
        (tensor([2]), tensor([[ 1,  2,  0, -1]]))
    """
    if backend == "device" or type(target_logits).__module__.split(".")[0] == "ttnn":  # the kernels on a card
        from tt_specdec import device  # via ttnn.generic_op; ttnn tensors in -> ttnn tensors out
        return device.accept_prefix(target_logits, draft_tokens, draft_probs=draft_probs, num_draft=num_draft,
                                    temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    # on "torch", the argmax pass below checks the logits are finite
    B, k, V = check_accept_args(target_logits, draft_tokens, draft_probs, num_draft, temperature, top_k, top_p, seed,
                                finite_logits=backend != "torch")
    if backend != "torch":  # "emu": the kernels of kernels/accept_prefix/ on the host emulator
        from tt_specdec.ops.accept_prefix_program import run_backend
        return run_backend(backend, target_logits, draft_tokens, draft_probs=draft_probs, num_draft=num_draft,
                           temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
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
                                  torch.as_tensor(seed, dtype=torch.int64).expand(B))
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
