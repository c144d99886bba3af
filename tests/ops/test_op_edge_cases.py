"""Issue 15's op cases on every backend: each bad input raises an error naming the argument, what it got and
what was expected (never a raw IndexError, a wrong answer or a silent acceptance), and the empty cases
(B = 0, T = 0) give the same answer on every backend."""
import re

import pytest
import torch

from tt_specdec.ops import accept_prefix, rollback_kv, verify_attention

BACKENDS = ["torch", "emu"]


def qkv(B=1, T=2, Hq=4, Hkv=2, S=64, D=32, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(B, T, Hq, D, generator=g).to(dtype), torch.randn(B, Hkv, S, D, generator=g).to(dtype),
            torch.randn(B, Hkv, S, D, generator=g).to(dtype))


def paged(blocks=4):
    q, _, _ = qkv()
    g = torch.Generator().manual_seed(1)
    return q, torch.randn(blocks, 2, 32, 32, generator=g), torch.randn(blocks, 2, 32, 32, generator=g)


q, kc, vc = qkv()
pq, pk, pv = paged()
LOGITS = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(2))
DRAFTS = torch.tensor([[1, 2, 3], [4, 5, 6]])

VERIFY_CASES = {
    # name: (args, kwargs, error type, message pattern)
    "page id -1": ((pq, pk, pv, torch.tensor([40])), dict(page_table=torch.tensor([[0, -1]])), ValueError,
                   r"^page_table: got block id -1 at \[0, 1\], expected an allocated block in 0\.\.3"),
    "page id = blocks": ((pq, pk, pv, torch.tensor([40])), dict(page_table=torch.tensor([[0, 4]])), ValueError,
                         r"^page_table: got block id 4 at \[0, 1\], expected an allocated block in 0\.\.3"),
    "float page table": ((pq, pk, pv, torch.tensor([10])), dict(page_table=torch.tensor([[0.0, 1.0]])), TypeError,
                         r"^page_table: got dtype torch\.float32, expected an integer dtype"),
    "q of rank 3": ((q[0], kc, vc, torch.tensor([5])), {}, ValueError,
                    r"^q: got shape \[2, 4, 32\], expected \[\*, \*, \*, \*\] = \[B, T, Hq, D\]"),
    "k_cache of rank 1": ((q, torch.randn(5), torch.randn(5), torch.tensor([5])), {}, ValueError,
                          r"^k_cache: got shape \[5\], expected \[1, \*, \*, 32\]"),
    "Hkv = 0": ((q, kc[:, :0], vc[:, :0], torch.tensor([5])), {}, ValueError, r"^q, k_cache: got Hq=4, Hkv=0, D=32"),
    "D = 0": ((q[..., :0], kc[..., :0], vc[..., :0], torch.tensor([5])), {}, ValueError,
              r"^q, k_cache: got Hq=4, Hkv=2, D=0"),
    "float pos": ((q, kc, vc, torch.tensor([5.5])), {}, TypeError, r"^pos: got dtype torch\.float32, expected an integer"),
    "mixed dtypes": ((q, kc.bfloat16(), vc.bfloat16(), torch.tensor([5])), {}, TypeError,
                     r"^k_cache: got dtype torch\.bfloat16, expected q's torch\.float32"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(VERIFY_CASES))
def test_verify_attention_bad_input_is_named(case, backend):
    args, kwargs, kind, pattern = VERIFY_CASES[case]
    with pytest.raises(kind, match=pattern):
        verify_attention(*args, **kwargs, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unread_page_table_entries_may_be_unallocated(backend):
    """Entries past the blocks a row reads are not read: -1 there is an unallocated block, not an error
    (row 0 reads blocks 0..1 for pos 40 + T 2; row 1 reads block 0 only)."""
    q2 = torch.cat([pq, pq])
    out = verify_attention(q2, pk, pv, torch.tensor([40, 3]), page_table=torch.tensor([[2, 1, -1], [3, -1, -1]]),
                           backend=backend)
    ref = verify_attention(q2, pk, pv, torch.tensor([40, 3]), page_table=torch.tensor([[2, 1, 0], [3, 0, 0]]))
    torch.testing.assert_close(out, ref, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("shape", [dict(B=0), dict(T=0), dict(B=0, T=0)])
def test_verify_attention_empty_is_empty_on_every_backend(shape):
    q0, k0, v0 = qkv(**shape)
    pos = torch.full((q0.shape[0],), 5)
    outs = [verify_attention(q0, k0, v0, pos, backend=b) for b in BACKENDS]
    for out in outs:
        assert out.shape == q0.shape and out.dtype == q0.dtype


ACCEPT_CASES = {
    "int logits": ((LOGITS.long(), DRAFTS), {}, TypeError,
                   r"^target_logits: got dtype torch\.int64, expected a floating dtype"),
    "float num_draft": ((LOGITS, DRAFTS), dict(num_draft=torch.tensor([1.5, 2.0])), TypeError,
                        r"^num_draft: got dtype torch\.float32, expected an integer dtype"),
    "float seed": ((LOGITS, DRAFTS), dict(temperature=1.0, seed=1.5), TypeError,
                   r"^seed: got 1\.5 \(float\), expected an int or per-row int seeds \[2\]"),
    "float seed tensor": ((LOGITS, DRAFTS), dict(temperature=1.0, seed=torch.tensor([1.5, 2.0])), TypeError,
                          r"^seed: got dtype torch\.float32, expected an integer dtype"),
    "seed of the wrong shape": ((LOGITS, DRAFTS), dict(temperature=1.0, seed=torch.tensor([1, 2, 3])), ValueError,
                                r"^seed: got shape \[3\], expected \[2\]"),
    "seed too large": ((LOGITS, DRAFTS), dict(temperature=1.0, seed=2 ** 70), ValueError,
                       r"^seed: got 1180591620717411303424, expected an int in 0\.\.2\*\*63-1"),
    "negative draft_probs": ((LOGITS, DRAFTS), dict(temperature=1.0, seed=1, draft_probs=-torch.ones(2, 3, 16)),
                             ValueError, r"^draft_probs: got -1\.0 at \[0, 0, 0\], expected probabilities >= 0"),
    "all-zero draft_probs": ((LOGITS, DRAFTS), dict(temperature=1.0, seed=1, draft_probs=torch.zeros(2, 3, 16)),
                             ValueError, r"^draft_probs: got q=0\.0 for the drafted token 1 at \[0, 0\], expected > 0"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(ACCEPT_CASES))
def test_accept_prefix_bad_input_is_named(case, backend):
    args, kwargs, kind, pattern = ACCEPT_CASES[case]
    with pytest.raises(kind, match=pattern):
        accept_prefix(*args, **kwargs, backend=backend)


def test_draft_probs_zero_off_the_drafted_tokens_are_fine():
    """Only q_t(d_t) must be positive: a peaked draft distribution with zeros elsewhere is legal."""
    probs = torch.zeros(2, 3, 16)
    probs.scatter_(2, DRAFTS.unsqueeze(-1), 1.0)
    n, out = accept_prefix(LOGITS, DRAFTS, temperature=1.0, seed=1, draft_probs=probs)
    assert out.shape == (2, 4)
    # a row that verifies no draft (num_draft 0) never reads q
    probs[1] = 0
    accept_prefix(LOGITS, DRAFTS, temperature=1.0, seed=1, draft_probs=probs, num_draft=torch.tensor([3, 0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_accept_prefix_empty_batch_is_the_same_everywhere(backend):
    n, out = accept_prefix(LOGITS[:0], DRAFTS[:0], backend=backend)
    assert n.shape == (0,) and out.shape == (0, 4) and n.dtype == out.dtype == torch.int64


ROLLBACK = (torch.tensor([3, 4]), torch.tensor([1, 1]))
ROLLBACK_CASES = {
    "float num_accepted": ((*ROLLBACK, torch.tensor([0.0, 0.0]), torch.tensor([[1, 2], [3, 4]])), TypeError,
                           r"^num_accepted: got dtype torch\.float32, expected an integer dtype"),
    "-7 in output_tokens": ((*ROLLBACK, torch.tensor([1, 0]), torch.tensor([[5, -7], [3, 4]])), ValueError,
                            re.escape("output_tokens: got -7 at [0, 1] (index num_accepted of a live row)")),
    "-7 in num_accepted": ((*ROLLBACK, torch.tensor([-7, 0]), torch.tensor([[1, 2], [3, 4]])), ValueError,
                           re.escape("num_accepted: got [-7, 0], expected values in -1..1")),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(ROLLBACK_CASES))
def test_rollback_kv_bad_input_is_named(case, backend):
    args, kind, pattern = ROLLBACK_CASES[case]
    with pytest.raises(kind, match=pattern):
        rollback_kv(*args, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rollback_kv_float_page_table_is_named(backend):
    with pytest.raises(TypeError, match=r"^page_table: got dtype torch\.float32, expected an integer dtype"):
        rollback_kv(*ROLLBACK, torch.tensor([0, 0]), torch.tensor([[1, 2], [3, 4]]),
                    page_table=torch.tensor([[0.0], [1.0]]), block_size=32, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rollback_kv_empty_batch_is_the_same_everywhere(backend):
    e = torch.zeros(0, dtype=torch.long)
    r = rollback_kv(e, e, e, torch.zeros(0, 3, dtype=torch.long), backend=backend)
    assert r.pos.shape == r.last.shape == (0,) and r.page_table is None and r.freed is None
