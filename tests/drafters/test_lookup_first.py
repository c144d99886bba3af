"""LookupFirstDrafter: prompt lookup where the context repeats, a draft model or EAGLE head elsewhere.
On the tiny pair's CPU engine (exact: a k-row forward has the bits of k one-row forwards), so the
fallback's proposals inside the hybrid can be compared bit for bit with a fresh drafter's."""
import pytest
import torch

import tt_specdec
from tt_specdec.drafters import LookupFirstDrafter, ModelDrafter, NgramDrafter
from tt_specdec.sampling import Sampling
from tt_specdec.speculative import generate_plain, speculative_generate

# repetitive code: the tails often occur earlier, so some steps copy, some draft, some do both
PROMPTS = [list(b"def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n"),
           list(b"import os\nimport sys\n"),
           list(b"for i in range(10):\n    print(i)\nfor j in range(10):\n    print(j)\nfor k in range(")]


@pytest.fixture(scope="module")
def pairs():
    return tt_specdec.load_pair("tiny"), tt_specdec.load_pair("tiny")  # the second: a fresh drafter's own model


class CheckedModelDrafter(ModelDrafter):
    """A ModelDrafter whose every proposal is compared with a fresh drafter's on the same context:
    a KV cache left holding drafts the hybrid replaced would change its draft distributions."""

    def __init__(self, model, fresh_model):
        super().__init__(model)
        self.fresh, self.calls = ModelDrafter(fresh_model), 0

    def propose(self, context, length, k, sampling, seeds):
        got = super().propose(context, length, k, sampling, seeds)
        self.fresh.reset(context.shape[0], context.shape[1])
        want = self.fresh.propose(context, length, k, sampling, seeds)
        assert torch.equal(got.tokens, want.tokens)
        assert (got.probs is None) == (want.probs is None) and (got.probs is None or torch.equal(got.probs, want.probs))
        self.calls += 1
        return got


@pytest.mark.parametrize("k", [2, 4])
def test_greedy_lossless_and_the_fallback_cache_stays_true(pairs, k):
    target, draft = pairs[0].target, pairs[0].draft
    fallback = CheckedModelDrafter(draft, pairs[1].draft)
    hybrid = LookupFirstDrafter(fallback)
    copied_steps = []
    inner = hybrid.lookup.match
    hybrid.lookup.match = lambda ctx, k_: copied_steps.append(inner(ctx, k_) is not None) or inner(ctx, k_)
    spec = speculative_generate(target, hybrid, PROMPTS, k=k, max_new_tokens=48)
    assert spec.tokens == generate_plain(target, PROMPTS, max_new_tokens=48).tokens
    assert any(copied_steps) and not all(copied_steps), "the prompts exercise both copying and drafting"
    assert fallback.calls > 0
    st = spec.stats  # row-steps by what they verified: plain, the fallback's drafts, copies
    plain, drafted, copied = st.kind_steps
    assert drafted > 0 and copied > 0 and sum(st.kind_steps) == st.row_steps
    assert sum(st.kind_drafted) == st.drafted and sum(st.kind_accepted) == st.accepted
    assert st.kind_drafted[0] == st.kind_accepted[0] == 0 and st.kind_drafted[2] <= k * copied


def test_sampled_proposals_match_a_fresh_fallback_and_copied_rows_are_one_hot(pairs):
    target, draft = pairs[0].target, pairs[0].draft
    fallback = CheckedModelDrafter(draft, pairs[1].draft)
    hybrid = LookupFirstDrafter(fallback)
    sampling = Sampling(temperature=0.8, coupled=False)  # the rejection rule's draft_probs
    runs = [speculative_generate(target, hybrid, PROMPTS, k=3, max_new_tokens=32, sampling=sampling, seed=5)
            for _ in range(2)]
    assert runs[0].tokens == runs[1].tokens  # seeded
    # one mixed proposal by hand: row 0 copies, row 1 (no earlier match of its tail) drafts
    ctx = torch.zeros(2, 64, dtype=torch.long)
    ctx[0, :10], ctx[1, :5] = torch.tensor(list(b"abcdeXabcd")), torch.tensor(list(b"vwxyz"))
    length = torch.tensor([10, 5])
    hybrid.reset(2, 64)
    proposal = hybrid.propose(ctx, length, 3, sampling, torch.tensor([1, 2]))
    drafts, probs = proposal.tokens, proposal.probs
    assert bytes(drafts[0].tolist()) == b"eXa"
    assert torch.equal(probs[0], torch.nn.functional.one_hot(drafts[0], probs.shape[-1]).to(probs.dtype))
    assert torch.allclose(probs[1].sum(-1), torch.ones(3, dtype=probs.dtype))
    assert hybrid.fallback.cached.tolist() == [10, 5 + 3 - 1], "a replaced row keeps only its true context"


def test_all_rows_copied_skips_the_fallback(pairs):
    fallback = CheckedModelDrafter(pairs[0].draft, pairs[1].draft)
    hybrid = LookupFirstDrafter(fallback)
    ctx = torch.tensor([list(b"abcabcab"), list(b"xyzxyzxy")])
    hybrid.reset(2, 16)
    fallback.cached = torch.tensor([7, 3])
    proposal = hybrid.propose(ctx, torch.tensor([8, 8]), 2, Sampling(), torch.zeros(2))
    drafts = proposal.tokens
    assert fallback.calls == 0 and proposal.probs is None and proposal.steps == 0, "a copy costs no draft step"
    assert [bytes(d.tolist()) for d in drafts] == [b"ca", b"zx"]
    assert fallback.cached.tolist() == [7, 3], "never raised; capped at length - 1"
    fallback.cached = torch.tensor([12, 3])
    hybrid.propose(ctx, torch.tensor([8, 8]), 2, Sampling(), torch.zeros(2))
    assert fallback.cached.tolist() == [7, 3]


def test_a_fallback_without_cached_state_is_refused():
    with pytest.raises(TypeError, match="fallback: got NgramDrafter"):
        LookupFirstDrafter(NgramDrafter())


def test_registered_by_name_and_lossless_end_to_end(pairs):
    assert {"lookup+model", "lookup+eagle"} <= set(tt_specdec.DRAFTERS)
    dec = tt_specdec.SpeculativeDecoder(pairs[0], "lookup+model", k=3)
    assert isinstance(dec.drafter, LookupFirstDrafter)
    ids = PROMPTS[0]
    want = generate_plain(pairs[0].target, [ids], max_new_tokens=24).tokens
    assert dec.generate_ids([ids], 24).tokens == want
    shared = tt_specdec.SpeculativeDecoder(pairs[0], dec.drafter, k=2)  # a built drafter, shared
    assert shared.drafter is dec.drafter and shared.generate_ids([ids], 24).tokens == want
    with pytest.raises(ValueError, match="drafter: got object, expected a name in DRAFTERS or a Drafter"):
        tt_specdec.SpeculativeDecoder(pairs[0], object(), k=2)


class ShortDrafter(ModelDrafter):
    """A fallback that, like an EAGLE head stopping early, drafts fewer than the k asked."""
    stop_reach = 0.5

    def propose(self, context, length, k, sampling, seeds):
        return super().propose(context, length, min(k, 2), sampling, seeds)


def test_copies_carry_their_match_length_as_confidence_and_outlast_a_short_fallback(pairs):
    hybrid = LookupFirstDrafter(ShortDrafter(pairs[0].draft))
    assert hybrid.stop_reach == 0.5  # drafts to its confidence, as its fallback does
    ctx = torch.zeros(2, 64, dtype=torch.long)
    ctx[0, :10], ctx[1, :5] = torch.tensor(list(b"abcdeXabcd")), torch.tensor(list(b"vwxyz"))
    hybrid.reset(2, 64)
    proposal = hybrid.propose(ctx, torch.tensor([10, 5]), 5, Sampling(), torch.zeros(2))
    drafts = proposal.tokens
    assert proposal.probs is None and drafts.shape == (2, 5) and proposal.steps == 2  # the fallback's steps
    assert bytes(drafts[0].tolist()) == b"eXabc"  # the 4-gram "abcd" matched: 5 tokens of continuation
    conf = proposal.confidence
    assert conf[0].tolist() == pytest.approx([4 / 5] * 5) and proposal.source.tolist() == [1, 0]
    assert bool((conf[1, :2] > 0).all()) and conf[1, 2:].tolist() == [0.0] * 3, "past the fallback's drafts: none"
    # a continuation running out: "xyzxy" matches "xy" at the start, followed by only "zxy"
    hybrid.reset(1, 64)
    proposal = hybrid.propose(torch.tensor([list(b"xyzxy") + [0] * 10]), torch.tensor([5]), 5, Sampling(),
                              torch.zeros(1))
    assert proposal.confidence[0].tolist() == pytest.approx([2 / 5] * 3 + [0.0] * 2)


def test_k_auto_with_copies_and_a_short_fallback_stays_lossless(pairs):
    from tt_specdec.speculative.policy import AdaptiveK
    from tt_specdec.speculative.cost import CostModel

    target = pairs[0].target
    hybrid = LookupFirstDrafter(ShortDrafter(pairs[0].draft))
    policy = AdaptiveK(CostModel(c=0.05, d0=0.0, v=(1.0, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7)), 6)
    spec = speculative_generate(target, hybrid, PROMPTS, k=6, max_new_tokens=48, policy=policy)
    assert spec.tokens == generate_plain(target, PROMPTS, max_new_tokens=48).tokens
    assert spec.stats.accepted > 0 and len(spec.stats.offered_per_position) == 6
    assert spec.stats.offered_per_position[3] > 0, "copies went past the fallback's two drafts"
