"""accept_prefix's argument checks and the names its torch version, program and reference share."""
from __future__ import annotations

from tt_specdec.errors import check_finite, check_shape, check_tokens, value_range
from tt_specdec.sampling import check_sampling_args


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
