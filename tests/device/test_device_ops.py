"""The op property tests on a Tenstorrent card: the same kernels as the emulator tests, run by
tt_specdec.runtime.device through ttnn.generic_op, against the plain-loop reference. Selected with
`pytest --device` (tests/conftest.py); skipped with the reason when no card or no ttnn.

Not run on the machines this project is developed on (no card): what is checked there is the
conformance of these descriptions and kernels with the real ttnn (tests/conformance/). Never run
on a card so far: a failure here on the first card is a finding, not a regression.
"""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec.ops import accept_prefix, rollback_kv, verify_attention
from tt_specdec.ops.accept_prefix import accept_tree
from tt_specdec.ops.accept_prefix.reference import accept_prefix as accept_prefix_reference
from tt_specdec.ops.accept_prefix.reference import accept_tree as accept_tree_reference
from tt_specdec.ops.accept_prefix.reference import random_tree
from tt_specdec.ops.rollback_kv.reference import random_rollback_step
from tt_specdec.ops.rollback_kv.reference import rollback_kv as rollback_kv_reference
from tt_specdec.ops.verify_attention import tree_mask_from_parents
from tt_specdec.ops.verify_attention.reference import random_parents
from tt_specdec.ops.verify_attention.reference import verify_attention as verify_attention_reference
from tt_specdec.runtime import device

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
    ref_n, ref_out = accept_prefix_reference(logits, drafts, num_draft=num_draft)
    assert torch.equal(n, ref_n), (n, ref_n)
    assert torch.equal(out, ref_out), (out, ref_out)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 4), T=st.sampled_from([1, 2, 5, 17, 32]), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**31 - 1),
       tie_heavy=st.booleans(), follow=st.sampled_from([0.0, 0.7, 1.0]))
def test_greedy_accept_tree_on_the_card(B, T, V, dtype, seed, tie_heavy, follow):
    logits, tokens, parents = random_tree(B, T, V, dtype, seed, tie_heavy, follow)
    got = accept_tree(logits, tokens, parents, backend="device")
    want = accept_tree_reference(logits, tokens, parents)
    for g, w, name in zip(got, want, ("num_accepted", "output_tokens", "accepted_slots")):
        assert torch.equal(g, w), (name, g, w)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 4), T=st.sampled_from([1, 2, 5, 16]), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**32 - 1),
       with_q=st.booleans(), temperature=st.sampled_from([0.3, 1.0, 2.5]), top_p=st.sampled_from([1.0, 0.9]))
def test_sampled_accept_tree_on_the_card(B, T, V, dtype, seed, with_q, temperature, top_p):
    logits, tokens, parents = random_tree(B, T, V, dtype, seed % 2**31, follow=0.7)
    q = None
    if with_q:  # i.i.d. draws: siblings may repeat a token
        g = torch.Generator().manual_seed(seed % 2**31)
        q = torch.softmax(torch.randn(B, T, V, generator=g) * 2, -1)
        tokens = torch.multinomial(q.reshape(-1, V).double(), 1, generator=g).view(B, T)
    kwargs = dict(draft_probs=q, temperature=temperature, top_p=top_p, seed=seed)
    got = accept_tree(logits, tokens, parents, backend="device", **kwargs)
    want = accept_tree_reference(logits, tokens, parents, **kwargs)
    for g_, w, name in zip(got, want, ("num_accepted", "output_tokens", "accepted_slots")):
        assert torch.equal(g_, w), (name, g_, w)


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
    ref_n, ref_out = accept_prefix_reference(logits, drafts, draft_probs=q, num_draft=num_draft,
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
    want = rollback_kv_reference(pos, last, n, out, page_table=table, block_size=bs)
    assert torch.equal(got.pos, want.pos) and torch.equal(got.last, want.last)
    if paged:
        assert torch.equal(got.page_table, want.page_table) and torch.equal(got.freed, want.freed)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), block_size=st.sampled_from([None, 32, 64]),
       layers=st.sampled_from([None, 2]), dtype=st.sampled_from([torch.bfloat16, torch.float32]),
       seed=st.integers(0, 2**31 - 1))
def test_rollback_kv_compaction_on_the_card(B, k, block_size, layers, dtype, seed):
    """Accepted KV rows copied to pos + j on the card, bit-exact against the reference (a copy)."""
    step = random_rollback_step(seed, B, k, block_size=block_size, layers=layers, dtype=dtype)
    got = {name: x.clone() if isinstance(x, torch.Tensor) else x for name, x in step.items()}
    want = {name: x.clone() if isinstance(x, torch.Tensor) else x for name, x in step.items()}
    result = rollback_kv(**got, backend="device")
    expected = rollback_kv_reference(**want)
    assert torch.equal(result.pos, expected.pos) and torch.equal(result.last, expected.last)
    assert torch.equal(got["k_cache"], want["k_cache"]) and torch.equal(got["v_cache"], want["v_cache"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 4), T=st.integers(1, 8), Hkv=st.integers(1, 4), group=st.sampled_from([1, 2, 4, 8]),
       D=st.sampled_from([32, 64, 128]), dtype=st.sampled_from([torch.bfloat16, torch.float32]),
       block_size=st.sampled_from([None, 32, 64]), S=st.sampled_from([32, 64, 100, 160, 2048]),
       tree=st.sampled_from([None, "tree", "forest"]), seed=st.integers(0, 2**31 - 1))
def test_verify_attention_on_the_card(B, T, Hkv, group, D, dtype, block_size, S, tree, seed):
    """Tolerance as on the emulator (tests/emu/test_emu_verify_attention.py): fp32 1e-5 relative and
    absolute; bf16 one bf16 ulp (2^-7 relative) over the float64 reference. tree: a random token tree
    (tree_mask) instead of the staircase."""
    g = torch.Generator().manual_seed(seed)
    Hq = Hkv * group
    q = torch.randn(B, T, Hq, D, generator=g).to(dtype)
    pos = torch.randint(0, S - T + 1, (B,), generator=g)
    page_table = None
    if block_size is None:
        k, v = (torch.randn(B, Hkv, S, D, generator=g).to(dtype) for _ in range(2))
    else:
        max_blocks = -(-S // block_size)
        k, v = (torch.randn(B * max_blocks, Hkv, block_size, D, generator=g).to(dtype) for _ in range(2))
        page_table = torch.randperm(B * max_blocks, generator=g).view(B, max_blocks)
    tree_mask = None if tree is None else tree_mask_from_parents(random_parents(B, T, g, forest=tree == "forest"))
    out = verify_attention(q, k, v, pos, page_table=page_table, tree_mask=tree_mask, backend="device")
    ref = verify_attention_reference(q, k, v, pos, page_table=page_table, tree_mask=tree_mask).double()
    rtol, atol = (1e-5, 1e-5) if dtype == torch.float32 else (2**-7, 1e-6)
    err = (out.double() - ref).abs()
    assert bool((err <= atol + rtol * ref.abs()).all()), f"max error {err.max().item()}"


def test_ttnn_tensors_stay_on_the_card():
    """ttnn tensors in, ttnn tensors out: the ops dispatch on the tensor type."""
    import ttnn

    logits, drafts, _ = logits_case(2, 3, 2049, torch.bfloat16, 0, 0.3)
    dev = device.device()
    t_logits = ttnn.from_torch(logits, dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
    t_drafts = ttnn.from_torch(drafts.to(torch.int32), dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
    n, out = accept_prefix(t_logits, t_drafts)
    assert device.is_ttnn_tensor(n) and device.is_ttnn_tensor(out)
    ref_n, ref_out = accept_prefix_reference(logits, drafts)
    assert torch.equal(ttnn.to_torch(n).long().view(-1), ref_n)
    assert torch.equal(ttnn.to_torch(out).long(), ref_out)
    pos, last = torch.tensor([10, 3]), torch.tensor([1, 2])
    new = rollback_kv(*(ttnn.from_torch(x.to(torch.int32).view(1, -1) if x.dim() == 1 else x.to(torch.int32),
                                        dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
                        for x in (pos, last, ref_n, ref_out)))
    want = rollback_kv_reference(pos, last, ref_n, ref_out)
    assert torch.equal(ttnn.to_torch(new.pos).long().view(-1), want.pos)
    # verify_attention: the caches stay on the card as tiles, the output comes back as a ttnn tensor
    q, kc = torch.randn(2, 3, 4, 64).to(torch.bfloat16), torch.randn(2, 2, 128, 64).to(torch.bfloat16)
    vc = torch.randn(2, 2, 128, 64).to(torch.bfloat16)
    tiles = lambda x: ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=dev)  # noqa: E731
    t_pos = ttnn.from_torch(pos.to(torch.int32), dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
    out = verify_attention(tiles(q), tiles(kc), tiles(vc), t_pos)
    assert device.is_ttnn_tensor(out)
    ref = verify_attention_reference(q, kc, vc, pos).double()
    assert bool(((ttnn.to_torch(out).double() - ref).abs() <= 1e-6 + 2**-7 * ref.abs()).all())
