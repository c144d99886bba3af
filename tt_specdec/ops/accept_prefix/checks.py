"""accept_prefix's argument checks and the names its torch version, program and reference share."""
from __future__ import annotations

import numpy as np
import torch

from tt_specdec.errors import (check_finite, check_float_dtype, check_int_dtype, check_seed, check_shape, check_tokens,
                               value_range)
from tt_specdec.sampling import check_sampling_args


PLACEHOLDER = -1
MAX_DRAFT = 31  # k + 1 target rows fit one 32-row tile


def check_accept_args(target_logits, draft_tokens, draft_probs, num_draft, temperature, top_k, top_p, seed,
                      finite_logits: bool = True):
    """Validate accept_prefix's arguments; returns (B, k, V). finite_logits=False leaves the finiteness of
    target_logits to the caller (the greedy path checks it in its argmax pass)."""
    check_shape("target_logits", target_logits, (None, None, None), "= [B, k+1, V]")
    check_float_dtype("target_logits", target_logits)
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
        check_int_dtype("num_draft", num_draft, "(drafts per row, -1 = skip row)")
        lo, hi = value_range(num_draft)
        if lo < -1 or hi > k:
            raise ValueError(f"num_draft: got {num_draft.tolist()}, expected values in -1..{k} (-1 = skip row)")
    check_sampling_args(temperature, top_k, top_p)
    if temperature > 0:
        if draft_probs is not None:
            check_shape("draft_probs", draft_probs, (B, k, V), "= [B, k, V] (the draft's sampling distribution)")
            check_float_dtype("draft_probs", draft_probs)
            check_draft_probs(draft_probs, draft_tokens, num_draft)
        if seed is None:
            raise ValueError("seed: got None, expected an int or per-row seeds [B] when temperature > 0")
        check_seed("seed", seed, B)
    return B, k, V


def check_draft_probs(draft_probs, draft_tokens, num_draft, first: int = 0) -> None:
    """q_t is a distribution d_t was drawn from: finite, no negative value, and q_t(d_t) > 0 for every draft a
    row verifies (q = 0 there would make p/q infinite: every draft accepted). Rows before `first` are not
    drafts (a tree's root) and only need to be finite and >= 0."""
    check_finite("draft_probs", draft_probs)
    if draft_probs.numel() and float(draft_probs.amin()) < 0:  # amin: the cheapest pass (~20 us for [1, 4, 49152])
        at = (draft_probs < 0).nonzero()[0].tolist()
        raise ValueError(f"draft_probs: got {float(draft_probs[tuple(at)])} at {at}, expected probabilities >= 0")
    B, k, _ = draft_probs.shape
    # [B, k] q_t(d_t): small, so numpy from here (each torch op on it costs ~5 us)
    q_d = draft_probs.gather(2, draft_tokens.long().unsqueeze(-1)).view(B, k).float().numpy()
    lim = np.full((B, 1), k) if num_draft is None else num_draft.numpy().reshape(B, 1)
    t = np.arange(k).reshape(1, k)
    bad = (t >= first) & (t < lim) & ~(q_d > 0)
    if bad.any():
        b, t = (int(x) for x in np.argwhere(bad)[0])
        raise ValueError(f"draft_probs: got q={float(q_d[b, t])} for the drafted token {int(draft_tokens[b, t])} at "
                         f"[{b}, {t}], expected > 0 (the draft was sampled from q)")


def check_tree_args(target_logits, tree_tokens, parents, draft_probs=None, temperature=0.0, top_k=0, top_p=1.0,
                    seed=None, finite_logits: bool = True):
    """Validate accept_tree's arguments; returns (B, T, V). The tree is in topological order: node 0 the
    root (parent -1), node t's parent in 0 .. t-1. Siblings carry distinct tokens (so at most one child can
    match the target's token and the accepted nodes form one path), except when sampling with draft_probs:
    children drawn i.i.d. repeat tokens, and recursive rejection handles a repeat (accept_tree says how).
    finite_logits=False leaves the finiteness of target_logits to the caller (the torch version's argmax pass)."""
    check_shape("target_logits", target_logits, (None, None, None), "= [B, T, V] (one row per tree node)")
    check_float_dtype("target_logits", target_logits)
    B, T, V = target_logits.shape
    if not 1 <= T <= MAX_DRAFT + 1:
        raise ValueError(f"target_logits: got {T} tree nodes per sequence, expected 1 .. {MAX_DRAFT + 1}")
    check_shape("tree_tokens", tree_tokens, (B, T), "= [B, T] (node 0 the root: the last emitted token)")
    check_tokens("tree_tokens", tree_tokens, V)
    check_shape("parents", parents, (B, T), "= [B, T]")
    check_int_dtype("parents", parents, "(node t's parent, -1 for the root)")
    if finite_logits:
        check_finite("target_logits", target_logits)
    par = parents.long()
    if B and bool((par[:, 0] != -1).any()):
        raise ValueError(f"parents: got {par[:, 0].tolist()} for node 0, expected -1 (node 0 is the root)")
    t = torch.arange(T).view(1, T)
    bad = (t >= 1) & ((par < 0) | (par >= t))
    if bool(bad.any()):
        b, i = (int(x) for x in bad.nonzero()[0])
        raise ValueError(f"parents: got parent {int(par[b, i])} for node {i} of sequence {b}, expected 0 .. {i - 1} "
                         "(nodes in topological order)")
    check_sampling_args(temperature, top_k, top_p)
    sampled = temperature > 0
    if sampled:
        if draft_probs is not None:
            check_shape("draft_probs", draft_probs, (B, T, V), "= [B, T, V] (node t's draft distribution; row 0 unused)")
            check_float_dtype("draft_probs", draft_probs)
            check_draft_probs(draft_probs, tree_tokens, None, first=1)
        if seed is None:
            raise ValueError("seed: got None, expected an int or per-row seeds [B] when temperature > 0")
        check_seed("seed", seed, B)
    if sampled and draft_probs is not None:
        return B, T, V
    same = (par.unsqueeze(2) == par.unsqueeze(1)) & (tree_tokens.unsqueeze(2) == tree_tokens.unsqueeze(1))
    dup = same & (t.view(1, T, 1) > t.view(1, 1, T)) & (t.view(1, T, 1) >= 1)  # [B, T, T]: node > sibling
    if bool(dup.any()):
        b, i, j = (int(x) for x in dup.nonzero()[0])
        why = "greedy" if not sampled else "a deterministic drafter (draft_probs=None): a repeat is never accepted"
        raise ValueError(f"tree_tokens: got nodes {j} and {i} of sequence {b} with the same parent and token "
                         f"{int(tree_tokens[b, i])}, expected siblings with distinct tokens ({why})")
    return B, T, V
