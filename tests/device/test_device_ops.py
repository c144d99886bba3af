"""The op property tests on a Tenstorrent card: the same kernels as the emulator tests, run by
tt_specdec.device through ttnn.generic_op, against the plain-loop reference. Selected with
`pytest --device` (tests/conftest.py); skipped with the reason when no card or no ttnn.

Not run on the machines this project is developed on (no card): what is checked there is the
conformance of these descriptions and kernels with the real ttnn (tests/conformance/).
"""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec import device
from tt_specdec.ops import accept_prefix, reference, rollback_kv

pytestmark = pytest.mark.device

VOCABS = [1, 31, 32, 33, 2047, 2049, 6001, 49152]


def logits_case(B, k, V, dtype, seed, flip_rate):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, k + 1, V, generator=g) * 3).to(dtype)
    drafts = logits.argmax(-1)[:, :k].clone()
    flip = torch.rand(B, k, generator=g) < flip_rate
    drafts[flip] = torch.randint(0, V, (int(flip.sum()),), generator=g)
    num_draft = torch.randint(-1, k + 1, (B,), generator=g)
    return logits, drafts, num_draft


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**31 - 1),
       flip_rate=st.sampled_from([0.0, 0.1, 0.5]), dynamic_k=st.booleans())
def test_greedy_accept_prefix_on_the_card(B, k, V, dtype, seed, flip_rate, dynamic_k):
    logits, drafts, num_draft = logits_case(B, k, V, dtype, seed, flip_rate)
    num_draft = num_draft if dynamic_k else None
    n, out = accept_prefix(logits, drafts, num_draft=num_draft, backend="device")
    ref_n, ref_out = reference.accept_prefix(logits, drafts, num_draft=num_draft)
    assert torch.equal(n, ref_n), (n, ref_n)
    assert torch.equal(out, ref_out), (out, ref_out)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**32 - 1),
       with_q=st.booleans(), temperature=st.sampled_from([0.3, 1.0, 2.5]))
def test_sampling_accept_prefix_on_the_card(B, k, V, dtype, seed, with_q, temperature):
    logits, drafts, num_draft = logits_case(B, k, V, dtype, seed % 2**31, 0.3)
    q = None
    if with_q:
        g = torch.Generator().manual_seed(seed % 2**31)
        q = torch.softmax(torch.randn(B, k, V, generator=g) * 2, -1)
        drafts = torch.multinomial(q.reshape(-1, V).double(), 1, generator=g).view(B, k)
    n, out = accept_prefix(logits, drafts, draft_probs=q, num_draft=num_draft, temperature=temperature, seed=seed,
                           backend="device")
    ref_n, ref_out = reference.accept_prefix(logits, drafts, draft_probs=q, num_draft=num_draft,
                                             temperature=temperature, seed=seed)
    assert torch.equal(n, ref_n), (n, ref_n)
    assert torch.equal(out, ref_out), (out, ref_out)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), seed=st.integers(0, 2**31 - 1), paged=st.booleans(),
       block_size=st.sampled_from([1, 4, 16, 32]), max_blocks=st.sampled_from([16, 33, 64]))
def test_rollback_kv_on_the_card(B, k, seed, paged, block_size, max_blocks):
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(-1, k + 1, (B,), generator=g)
    out = torch.full((B, k + 1), -1)
    for b in range(B):
        if n[b] >= 0:
            out[b, :n[b] + 1] = torch.randint(0, 50000, (int(n[b]) + 1,), generator=g)
    last = torch.randint(0, 50000, (B,), generator=g)
    table, bs = None, None
    if paged:
        pos = torch.randint(0, max_blocks * block_size - k, (B,), generator=g)
        table = torch.full((B, max_blocks), -1)
        ids = torch.randperm(B * max_blocks, generator=g)
        for b in range(B):
            used = -(-(int(pos[b]) + k + 1) // block_size)
            table[b, :used] = ids[b * max_blocks:b * max_blocks + used]
        bs = block_size
    else:
        pos = torch.randint(0, 4000, (B,), generator=g)
    got = rollback_kv(pos, last, n, out, page_table=table, block_size=bs, backend="device")
    want = reference.rollback_kv(pos, last, n, out, page_table=table, block_size=bs)
    assert torch.equal(got.pos, want.pos) and torch.equal(got.last, want.last)
    if paged:
        assert torch.equal(got.page_table, want.page_table) and torch.equal(got.freed, want.freed)


def test_ttnn_tensors_stay_on_the_card():
    """ttnn tensors in, ttnn tensors out: the ops dispatch on the tensor type."""
    import ttnn

    logits, drafts, _ = logits_case(2, 3, 2049, torch.bfloat16, 0, 0.3)
    dev = device.device()
    t_logits = ttnn.from_torch(logits, dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
    t_drafts = ttnn.from_torch(drafts.to(torch.int32), dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
    n, out = accept_prefix(t_logits, t_drafts)
    assert device.is_ttnn_tensor(n) and device.is_ttnn_tensor(out)
    ref_n, ref_out = reference.accept_prefix(logits, drafts)
    assert torch.equal(ttnn.to_torch(n).long().view(-1), ref_n)
    assert torch.equal(ttnn.to_torch(out).long(), ref_out)
    pos, last = torch.tensor([10, 3]), torch.tensor([1, 2])
    new = rollback_kv(*(ttnn.from_torch(x.to(torch.int32).view(1, -1) if x.dim() == 1 else x.to(torch.int32),
                                        dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
                        for x in (pos, last, ref_n, ref_out)))
    want = reference.rollback_kv(pos, last, ref_n, ref_out)
    assert torch.equal(ttnn.to_torch(new.pos).long().view(-1), want.pos)
