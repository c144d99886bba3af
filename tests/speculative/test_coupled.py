"""Coupled sampling (Sampling(coupled=True)): seeded speculative output is token for token the target
alone's seeded output (generate_plain), for every drafter, k and cost model, on the tiny pair's
batch-invariant CPU engine (a verify row has the bits of the decode step at that position)."""
import pytest
import torch

from tt_specdec.api import load_pair
from tt_specdec.drafters import EagleDrafter, EagleHead, LookupFirstDrafter, ModelDrafter, NgramDrafter
from tt_specdec.models import load_tiny_pair
from tt_specdec.sampling import Sampling
from tt_specdec.speculative.cost import CostModel
from tt_specdec.speculative.loop import generate_plain, speculative_generate
from tt_specdec.speculative.policy import AdaptiveK

PROMPTS = [list(p.encode()) for p in ("def fibonacci(n):\n    ", "import os\nimport sys\n\n\ndef main():\n    ",
                                      "class Stack:\n    def push(self, item):\n        ")]
MAX_NEW = 32
COUPLED = [Sampling(0.8, 0, 0.9, coupled=True), Sampling(1.0, 10, 1.0, coupled=True)]
CHEAP = CostModel(c=0.05, d0=0.0, v=(1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3))  # drafting pays: long k
DEAR = CostModel(c=0.4, d0=0.1, v=(1.0, 1.3, 1.6, 1.9, 2.2, 2.5, 2.8))  # drafting barely pays: short k, plain steps


@pytest.fixture(scope="module")
def pair():
    return load_pair("tiny")  # CpuLlama target and draft


@pytest.fixture(scope="module")
def eagle_head(pair):
    torch.manual_seed(0)  # untrained: its drafts are poor, but drafted with the target's noise all the same
    return EagleHead(load_tiny_pair()[0].cfg, torch.arange(0, 256, 2))  # half the vocabulary


def make_drafter(name, pair, eagle_head):
    if name == "model":
        return ModelDrafter(pair.draft)
    if name == "ngram":
        return NgramDrafter()
    return LookupFirstDrafter(EagleDrafter(pair.target, eagle_head))  # "lookup+eagle"


@pytest.fixture(scope="module")
def plain(pair):
    return {s: generate_plain(pair.target, PROMPTS, max_new_tokens=MAX_NEW, sampling=s, seed=7).tokens
            for s in COUPLED}


@pytest.mark.parametrize("sampling", COUPLED, ids=["top_p", "top_k"])
@pytest.mark.parametrize("k", [1, 3, "auto"])
@pytest.mark.parametrize("drafter_name", ["model", "ngram", "lookup+eagle"])
def test_coupled_speculative_equals_coupled_plain(pair, eagle_head, plain, drafter_name, k, sampling):
    drafter = make_drafter(drafter_name, pair, eagle_head)
    policy = AdaptiveK(CHEAP, 6) if k == "auto" else None
    gen = speculative_generate(pair.target, drafter, PROMPTS, k=6 if k == "auto" else k, max_new_tokens=MAX_NEW,
                               sampling=sampling, seed=7, policy=policy)
    assert gen.tokens == plain[sampling]
    assert gen.stats.accepted > 0, "no draft accepted: the equality would hold trivially"


@pytest.mark.parametrize("drafter_name", ["model", "lookup+eagle"])
def test_output_is_the_same_under_two_cost_models(pair, eagle_head, plain, drafter_name):
    sampling = COUPLED[0]
    runs = []
    for cost in (CHEAP, DEAR):
        drafter = make_drafter(drafter_name, pair, eagle_head)
        runs.append(speculative_generate(pair.target, drafter, PROMPTS, k=6, max_new_tokens=MAX_NEW,
                                         sampling=sampling, seed=7, policy=AdaptiveK(cost, 6)))
    # the policies chose differently, and the text is the same
    assert runs[0].stats.drafted != runs[1].stats.drafted
    assert runs[0].tokens == runs[1].tokens == plain[sampling]


def test_seeds_matter_and_rows_are_independent(pair):
    sampling = COUPLED[0]
    a = generate_plain(pair.target, PROMPTS, max_new_tokens=MAX_NEW, sampling=sampling, seed=7).tokens
    b = generate_plain(pair.target, PROMPTS, max_new_tokens=MAX_NEW, sampling=sampling, seed=8).tokens
    assert a != b
    copies = generate_plain(pair.target, [PROMPTS[0]] * 4, max_new_tokens=MAX_NEW, sampling=sampling, seed=7).tokens
    assert len({tuple(t) for t in copies}) >= 3 and copies[0] == a[0]


def test_eagle_drafts_with_the_noise_of_the_full_id(pair, eagle_head):
    # the same head over the same ids in another column order drafts the same tokens: each id's score is
    # its probability and ITS noise, whatever its column
    ids = eagle_head.vocab_ids
    shuffled = eagle_head.with_vocabulary(ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(1))])
    target, B, cache_len = pair.target, len(PROMPTS), 64
    lengths = torch.tensor([len(p) for p in PROMPTS])
    context = torch.zeros(B, cache_len, dtype=torch.long)
    for b, p in enumerate(PROMPTS):
        context[b, :len(p)] = torch.tensor(p)
    drafts = []
    for head in (eagle_head, shuffled):
        target.allocate_cache(B, cache_len, keep_hidden=True)
        target.prefill(context[:, :int(lengths.max())], lengths)
        drafter = EagleDrafter(target, head)
        drafter.stop_reach = 0.0  # all k drafts
        drafter.reset(B, cache_len)
        drafts.append(torch.cat([drafter.propose(context, lengths, 4, COUPLED[0], torch.tensor([seed] * B)).tokens
                                 for seed in range(8)], 1))  # [B, 32]
    assert torch.equal(drafts[0], drafts[1])


def test_coupled_drafts_carry_no_probabilities(pair):
    ctx = torch.tensor([PROMPTS[0]])
    drafter = ModelDrafter(pair.draft)
    drafter.reset(1, 64)
    proposal = drafter.propose(ctx, torch.tensor([len(PROMPTS[0])]), 3, COUPLED[0], torch.tensor([5]))
    assert proposal.probs is None and proposal.tokens.shape == (1, 3)
