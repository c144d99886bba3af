"""accept_prefix sampling kernels (kernels/accept_prefix/*_sampling.cpp) on the emulator: seeded
results equal the plain-loop reference token for token (same counter-based uniforms, float64
math), with and without draft probabilities, over B 1..8, k 1..15, edge vocabularies."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tt_specdec import emu
from tt_specdec.ops import accept_prefix, reference
from tt_specdec.ops.accept_prefix_program import accept_prefix_sampling_emu, split_vocab
from tt_specdec.ops.sampling import process_logits

VOCABS = [2, 31, 33, 100, 2047, 2049, 4103, 6001]


def make_case(B, k, V, dtype, seed, draft_kind):
    """Logits [B, k+1, V]; drafts [B, k] and draft_probs [B, k, V] | None.
    draft_kind: 'sampled' (q a softmax, d ~ q), 'target' (q = the target's own p: residual all
    zero at a rejection), 'deterministic' (no q; drafts mostly the target argmax)."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, k + 1, V, generator=g) * 2).to(dtype)
    if draft_kind == "deterministic":
        drafts = logits.argmax(-1)[:, :k].clone()
        flip = torch.rand(B, k, generator=g) < 0.3
        drafts[flip] = torch.randint(0, V, (int(flip.sum()),), generator=g)
        return logits, drafts, None
    if draft_kind == "target":
        q = process_logits(logits[:, :k], 1.0).float()
    else:
        q = torch.softmax(torch.randn(B, k, V, generator=g) * 2, -1)
    drafts = torch.multinomial(q.reshape(-1, V).double(), 1, generator=g).view(B, k)
    return logits, drafts, q


def check(logits, drafts, q, num_draft, temperature, seed, max_cores=8):
    n, out, result = accept_prefix_sampling_emu(logits, drafts, draft_probs=q, num_draft=num_draft,
                                                temperature=temperature, seed=seed, max_cores=max_cores)
    ref_n, ref_out = reference.accept_prefix(logits, drafts, draft_probs=q, num_draft=num_draft,
                                             temperature=temperature, seed=seed)
    assert torch.equal(n, ref_n), (n, ref_n)
    assert torch.equal(out, ref_out), (out, ref_out)
    return n, result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 8), k=st.integers(1, 15), V=st.sampled_from(VOCABS),
       dtype=st.sampled_from([torch.bfloat16, torch.float32]), seed=st.integers(0, 2**32 - 1),
       draft_kind=st.sampled_from(["sampled", "target", "deterministic"]), dynamic_k=st.booleans(),
       temperature=st.sampled_from([0.3, 1.0, 2.5]), max_cores=st.sampled_from([1, 3, 8]))
def test_sampling_matches_reference(B, k, V, dtype, seed, draft_kind, dynamic_k, temperature, max_cores):
    """max_cores 1 puts several chunks in one slice: the reader and writer must stay in step."""
    logits, drafts, q = make_case(B, k, V, dtype, seed % 1000, draft_kind)
    num_draft = torch.randint(-1, k + 1, (B,), generator=torch.Generator().manual_seed(seed)) if dynamic_k else None
    check(logits, drafts, q, num_draft, temperature, seed, max_cores)


def test_per_row_seeds_and_large_vocab():
    V = 128256
    assert len(split_vocab(V)) == 8
    logits, drafts, q = make_case(2, 3, V, torch.bfloat16, 5, "sampled")
    check(logits, drafts, q, None, 1.0, torch.tensor([11, 2**32 - 7]))


def test_one_core_several_chunks_with_draft_probs():
    """Three chunks per slice: logits and q pages must alternate or the 2-page CBs deadlock."""
    logits, drafts, q = make_case(2, 3, 6001, torch.float32, 3, "sampled")
    for seed in range(3):
        check(logits, drafts, q, None, 1.0, seed, max_cores=1)


def test_accepts_and_rejects_both_happen():
    """Over many seeds the kernel accepts and rejects (so the tests above exercise both paths)."""
    logits, drafts, q = make_case(8, 4, 300, torch.float32, 9, "sampled")
    counts = torch.cat([check(logits, drafts, q, None, 1.0, s)[0] for s in range(4)])
    assert int(counts.min()) == 0 and int(counts.max()) >= 1


def test_new_temperature_and_seed_compile_nothing():
    logits, drafts, q = make_case(3, 4, 3000, torch.bfloat16, 1, "sampled")
    check(logits, drafts, q, torch.tensor([4, 2, -1]), 0.7, 1)
    before = emu.compile_stats.compiled, emu.compile_stats.disk_hits
    check(logits, drafts, q, torch.tensor([1, 4, 0]), 1.9, 2)
    assert (emu.compile_stats.compiled, emu.compile_stats.disk_hits) == before


def test_top_k_top_p_are_not_claimed():
    logits, drafts, q = make_case(1, 2, 64, torch.float32, 0, "sampled")
    with pytest.raises(NotImplementedError, match="top_k"):
        accept_prefix(logits, drafts, draft_probs=q, temperature=1.0, top_k=5, seed=0, backend="emu")


def test_one_hot_and_bonus_rows_read_the_logits_about_once():
    """Without draft probabilities the residual's slice masses come from the softmax statistics:
    only the slice holding the sampled token is read again (1 / (num_cores * (k+1)) of the logits)."""
    B, k, V = 4, 4, 49152
    logits, drafts, _ = make_case(B, k, V, torch.bfloat16, 6, "deterministic")
    _, result = check(logits, drafts, None, None, 1.0, 3)
    logits_bytes = logits.numel() * logits.element_size()
    extra = logits_bytes / (len(split_vocab(V)) * (k + 1))
    assert logits_bytes <= result.total("dram_bytes_read") <= logits_bytes + extra + 4096
