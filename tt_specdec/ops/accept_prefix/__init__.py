"""Accept the longest agreeing draft prefix and emit accepted + recovered/bonus tokens.

Vocabulary (as in vLLM's rejection sampler):
    accepted   draft tokens kept, d_1 .. d_n
    recovered  the target's token at the first rejection (row n), when n < k
    bonus      the target's token after a fully accepted draft (row k), when n == k
    output     accepted + (recovered | bonus): n + 1 tokens, then PLACEHOLDER (-1)
"""
from __future__ import annotations

import torch

from tt_specdec.ops import dispatch
from tt_specdec.ops.accept_prefix.checks import MAX_DRAFT, PLACEHOLDER, check_accept_args, check_tree_args

__all__ = ["MAX_DRAFT", "PLACEHOLDER", "accept_prefix", "accept_tree", "check_accept_args", "check_tree_args"]


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
        seed           int or [B]   sampling only: an int is one seed for the call, rows independent (their seeds
                                    derived from (seed, row): sampling.row_seeds); [B] per-row seeds as given
        backend        "torch", or "emu": the TT-Metal kernels of kernels/ on the host emulator,
                       or "device": the same kernels on a Tenstorrent card (also chosen for ttnn tensors;
                       then the results stay on the card: int32 num_accepted [B], output_tokens [B, k+1])
        returns        num_accepted [B] (int64, -1 for skipped rows),
                       output_tokens [B, k+1] (int64, PLACEHOLDER = -1 padded)

    Greedy (temperature == 0): n is the longest prefix with argmax(row t) == d_{t+1}; then
    the argmax of row n. Sampling: d_t is accepted with probability min(1, p_t(d_t)/q_t(d_t)),
    stopping at the first rejection, whose token is drawn from norm(max(0, p_n - q_n));
    the bonus token is drawn from p_k. p is the target after temperature, top-k, top-p, computed in
    integers on every backend (sampling.fixed_params: the float64 softmax within 4.5e-8 relative
    plus (1 + V p) 2^-31 per token), so seeded results are the same token for token on each.
    Either way, output has the target's distribution (Leviathan et al. 2023): p's, exactly but for the
    residual's floor(q z), within V 2^-30 in total.
    B = 0 returns empty results, int64 [0] and [0, k+1], on every backend.

    Example (greedy, k = 3, V = 4):
        >>> logits = torch.eye(4)[[1, 2, 0, 3]].unsqueeze(0)  # target argmax per row: 1, 2, 0, 3
        >>> accept_prefix(logits, torch.tensor([[1, 2, 3]]))   # d_3 = 3 != 0: reject it, emit 0
        (tensor([2]), tensor([[ 1,  2,  0, -1]]))
    """
    backend = dispatch.backend_for(backend, target_logits)
    if not dispatch.is_ttnn_tensor(target_logits):  # ttnn tensors stay on the card: nothing is read back
        # on "torch", the argmax pass checks the logits are finite
        check_accept_args(target_logits, draft_tokens, draft_probs, num_draft, temperature, top_k, top_p, seed,
                          finite_logits=backend != "torch")
    if backend == "torch" or (target_logits.shape[0] == 0 and not dispatch.is_ttnn_tensor(target_logits)):
        from tt_specdec.ops.accept_prefix import torch_impl  # B = 0: the same empty answer on every backend
        return torch_impl.accept_prefix(target_logits, draft_tokens, draft_probs, num_draft, temperature, top_k,
                                        top_p, seed)
    from tt_specdec.ops.accept_prefix import program
    return program.run(dispatch.executor(backend), target_logits, draft_tokens, draft_probs=draft_probs,
                       num_draft=num_draft, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)[0]


def accept_tree(target_logits: torch.Tensor, tree_tokens: torch.Tensor, parents: torch.Tensor, *,
                draft_probs: torch.Tensor | None = None, temperature: float = 0.0, top_k: int = 0,
                top_p: float = 1.0, seed: int | torch.Tensor | None = None,
                backend: str = "torch") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accept a token tree: the accepted root-to-leaf path, greedy or sampled.

    Shapes:
        target_logits  [B, T, V]  target rows for the tree's nodes (verify_attention with tree_mask)
        tree_tokens    [B, T]     node t's token; node 0 is the root (the last emitted token)
        parents        [B, T]     node t's parent, in 0 .. t-1; -1 for node 0
        draft_probs    [B, T, V]  sampling only: q_t, the distribution node t's token was drawn from given
                                  its ancestors and its earlier siblings (row 0, the root's, unused);
                                  None = a deterministic drafter, q_t one-hot on node t's token
        seed           int or [B] sampling only, as accept_prefix: an int is one seed for the call, rows
                                  independent (sampling.row_seeds); [B] per-row seeds as given
        backend        "torch", or "emu": the TT-Metal kernels of kernels/ (greedy: reader_accept_tree.cpp,
                       writer_accept_tree.cpp; sampled: reader_accept_prefix_sampling.cpp,
                       writer_accept_tree_sampling.cpp) on the host emulator, or "device": the same kernels on
                       a Tenstorrent card (also chosen for ttnn tensors; then the results stay on the card,
                       int32, and accepted_slots goes to rollback_kv as it is)
        returns        num_accepted [B] (n: accepted drafts, the path's depth),
                       output_tokens [B, T] (the path's n tokens, then the target's token at its end
                       node: recovered, or bonus at a leaf; PLACEHOLDER = -1 padded),
                       accepted_slots [B, T] (node of path token j, j <= n; j beyond: identity), the
                       compaction that rollback_kv(..., accepted_slots=, k_cache=, v_cache=) applies;
                       int64 (int32 ttnn tensors on a card)

    Greedy (temperature == 0): a node is accepted when its parent is and its token is the target's argmax
    at its parent; siblings must carry distinct tokens. Then the argmax at the path's end. The kernels take
    the argmax of every node row (ties: the first maximum; a NaN outranks every number, as torch.argmax),
    the vocabulary split over up to 8 cores as accept_prefix's, then core 0 walks from the root: the first
    child in index order whose token is the node's argmax. B = 0 returns the empty results on every backend.

    Sampling: recursive rejection over siblings (SpecInfer, Miao et al. 2024; Chen et al. 2023's rule at
    each node). The walk starts at the root with r = p_0 (the target after temperature, top-k, top-p). Its
    children are tested in index order: child c with token x is accepted with probability min(1, r(x)/q_c(x));
    on rejection r becomes norm(max(0, r - q_c)) and the next sibling is tested against it. An accepted child
    is walked into with r = p_c. When every child of the walk's node is rejected, or it has none (a leaf: the
    bonus), the last token is drawn from r. Output has exactly the target's distribution (tests prove it by
    enumeration) provided each node's token was drawn from its q (i.i.d. children, or without replacement
    with q_c the conditional given the earlier siblings). Siblings repeating a token: with draft_probs they
    are allowed (i.i.d. draws repeat) and a repeat is never accepted (r is 0 at a token once rejected: r < q
    there); without draft_probs (deterministic) they are refused, as greedy refuses them.
    Randomness (sampling.uniform of the row's seed): node t's accept test takes STREAM_ACCEPT index t - 1,
    the last token STREAM_SAMPLE index 0; each node is tested at most once. A chain (parents t - 1) is then
    accept_prefix bit for bit, with the same draft_probs rows shifted by one node. The kernels walk each tree
    on core 0, the vocabulary split over up to 8 cores as the chain's sampling kernels, r kept in L1 (the same
    integers: their results are the torch op's token for token).

    Example (greedy, V = 4): root 0 with children 1 (token 2) and 2 (token 1); node 3 (token 3) under node 2.
        >>> logits = torch.eye(4)[[1, 0, 3, 0]].unsqueeze(0)  # argmax per node: 1, 0, 3, 0
        >>> accept_tree(logits, torch.tensor([[1, 2, 1, 3]]), torch.tensor([[-1, 0, 0, 2]]))
        (tensor([2]), tensor([[ 1,  3,  0, -1]]), tensor([[0, 2, 3, 3]]))
        >>> accept_tree(logits, torch.tensor([[1, 2, 1, 3]]), torch.tensor([[-1, 0, 0, 2]]), backend="emu")
        (tensor([2]), tensor([[ 1,  3,  0, -1]]), tensor([[0, 2, 3, 3]]))
    Sampled, the same tree with a target sure of the same path (logits 100x: p one-hot at temperature 1):
        >>> accept_tree(100 * logits, torch.tensor([[1, 2, 1, 3]]), torch.tensor([[-1, 0, 0, 2]]),
        ...             temperature=1.0, seed=0)
        (tensor([2]), tensor([[ 1,  3,  0, -1]]), tensor([[0, 2, 3, 3]]))
    """
    backend = dispatch.backend_for(backend, target_logits)
    if not dispatch.is_ttnn_tensor(target_logits):  # ttnn tensors stay on the card: nothing is read back
        # on "torch", the argmax pass over every row checks the logits are finite
        check_tree_args(target_logits, tree_tokens, parents, draft_probs, temperature, top_k, top_p, seed,
                        finite_logits=backend != "torch")
    if backend == "torch" or (target_logits.shape[0] == 0 and not dispatch.is_ttnn_tensor(target_logits)):
        from tt_specdec.ops.accept_prefix import torch_impl  # B = 0: the same empty answer on every backend
        return torch_impl.accept_tree(target_logits, tree_tokens, parents, draft_probs, temperature, top_k, top_p,
                                      seed)
    from tt_specdec.ops.accept_prefix import program
    return program.run_tree(dispatch.executor(backend), target_logits, tree_tokens, parents, draft_probs=draft_probs,
                            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)[0]
