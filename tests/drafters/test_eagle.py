"""EagleDrafter on the tiny byte-level target: a head trained for a few seconds on the target's own
features (so drafts are often accepted, and fully accepted steps happen), checked against the
teacher-forced head (forward_train), the target alone (lossless), and for bad input. Last, the
shipped SmolLM2 head (tools/train_eagle_smollm2.py): needs the SmolLM2 target (tools/setup.sh)."""
import importlib.util
import json
import pathlib
import sysconfig

import pytest
import torch

import tt_specdec
from tt_specdec.drafters import EagleDrafter, EagleHead
from tt_specdec.sampling import Sampling
from tt_specdec.drafters.eagle import SMOLLM2_EAGLE, load_eagle_drafter, load_head, save_head, training_loss
from tt_specdec.models import load_tiny_pair
from tt_specdec.models.llama import Llama
from tt_specdec.sampling import row_seeds
from tt_specdec.speculative import generate_plain, speculative_generate

PROMPTS = [list(b"def wrap(text, width=70, **kwargs):\n"), list(b"import os\n"),
           list(b"class Shell:\n    def __init__(self, infile=None):\n        self.")]


def target_features(target: Llama, tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B, L] -> the target's features [B, L, d], through the inference path (keep_hidden)."""
    target.allocate_cache(tokens.shape[0], tokens.shape[1], keep_hidden=True)
    target.forward(tokens, torch.zeros(tokens.shape[0], dtype=torch.long))
    return target.hidden_cache.clone()


@pytest.fixture(scope="module")
def target():
    return load_tiny_pair()[0]  # its own copy: the tests allocate its cache with keep_hidden


@pytest.fixture(scope="module")
def trained_head(target):
    """A head trained for 40 steps on 48 windows of a stdlib file the prompts don't come from."""
    text = (pathlib.Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_bytes()
    seqs = torch.tensor(list(text[:48 * 96])).view(48, 96)
    feats = target_features(target, seqs)
    labels = target.logits(feats).argmax(-1)
    scale = feats.pow(2).mean((0, 1)).sqrt()
    torch.manual_seed(0)
    head = EagleHead.for_target(target)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    mask = torch.ones(seqs.shape, dtype=torch.bool)
    for step in range(40):
        rows = torch.arange(8) + 8 * (step % 6)
        loss = training_loss(target, head, seqs[rows], feats[rows], labels[rows], mask[rows], scale, 0.05, 0.5)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval().requires_grad_(False)


def test_drafts_are_the_teacher_forced_heads_argmax(target, trained_head):
    """Each draft d_t = argmax of the head run by forward_train over the whole context: target features
    at slots 0..n-2, the head's own predicted features after; per row, rows of different lengths."""
    subset = torch.arange(255, -1, -3)  # 86 ids, not sorted: row i of the head is id subset[i]
    head = trained_head.with_vocabulary(subset)
    drafter = EagleDrafter(target, head)
    drafter.stop_reach = 0.0  # all k drafts
    B, k = len(PROMPTS), 3
    context = torch.zeros(B, 72, dtype=torch.long)
    length = torch.tensor([len(p) for p in PROMPTS])
    for b, p in enumerate(PROMPTS):
        context[b, :len(p)] = torch.tensor(p)
    target.allocate_cache(B, 72, keep_hidden=True)
    drafter.reset(B, 72)
    target.forward(context, torch.zeros(B, dtype=torch.long))  # features of every slot; the drafter reads 0..n-2
    proposal = drafter.propose(context, length, k, Sampling(), row_seeds(0, B))
    drafts, probs = proposal.tokens, proposal.probs
    assert probs is None and drafts.shape == (B, k)
    for b in range(B):
        n = int(length[b])
        tokens, feats = context[b, :n].tolist(), target.hidden_cache[b, :n - 1]  # f_0 .. f_{n-2}
        for t in range(k):
            pred = head.forward_train(target.embed(torch.tensor([tokens[1:]])), feats.unsqueeze(0))[0]
            logits = target.logits(pred[-1])  # full vocabulary
            expected = int(subset[logits[subset].argmax()])
            assert int(drafts[b, t]) == expected, (b, t)
            tokens.append(expected)
            feats = torch.cat([feats, pred[-1:]])


@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_greedy_lossless_batch_of_three(target, trained_head, k):
    spec = speculative_generate(target, EagleDrafter(target, trained_head), PROMPTS, k=k, max_new_tokens=40)
    plain = generate_plain(target, PROMPTS, max_new_tokens=40)
    assert spec.tokens == plain.tokens
    assert spec.stats.accepted > 0
    if k <= 2:  # some step accepts every draft: the next proposal must feed d_k's slot too
        assert spec.stats.accepted_per_position[-1] > 0


@pytest.fixture(scope="module")
def cpu_target():
    from tt_specdec.models.cpu_llama import CpuLlama

    return CpuLlama(load_tiny_pair()[0])  # the fast CPU decoder: the drafter runs the head on its kernels too


def test_head_on_the_cpu_engine_matches_the_torch_head(cpu_target, trained_head):
    fast = EagleDrafter(cpu_target, trained_head.with_vocabulary(torch.arange(0, 256, 3)))
    cpu_target.attention = "torch"  # the same drafter on torch ops
    slow = EagleDrafter(cpu_target, fast.head)
    cpu_target.attention = "cpu"
    assert fast.engine is not None and slow.engine is None
    embeds, feats = cpu_target.embed(torch.tensor([[104, 101, 108]])), torch.randn(1, 3, 256) * 4
    results = []
    for drafter in (fast, slow):
        drafter.head.allocate_cache(1, 8)
        drafter.head.k_cache.zero_()
        results.append(drafter.step(embeds, feats, torch.tensor([2])))
    # bf16 panels on the engine, fp32 weights in torch
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0.03, atol=0.03)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0.03, atol=0.1)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_lossless_on_the_cpu_engine(cpu_target, trained_head, k):
    drafter = EagleDrafter(cpu_target, trained_head.with_vocabulary(torch.arange(0, 128)))
    assert drafter.engine is not None
    spec = speculative_generate(cpu_target, drafter, PROMPTS, k=k, max_new_tokens=40)
    assert spec.tokens == generate_plain(cpu_target, PROMPTS, max_new_tokens=40).tokens
    assert spec.stats.accepted > 0


def test_only_a_drafter_that_reads_features_makes_the_target_write_them(cpu_target, trained_head):
    """The hidden-state copy is EAGLE's cost: plain decoding and other drafters run without it, even
    after an EAGLE run on the same target."""
    from tt_specdec.drafters import LookupFirstDrafter, NgramDrafter

    eagle = EagleDrafter(cpu_target, trained_head)
    runs = [(eagle, True), (NgramDrafter(), False), (LookupFirstDrafter(eagle), True), (None, False)]
    for drafter, writes in runs:
        if drafter is None:
            generate_plain(cpu_target, PROMPTS, max_new_tokens=8)
        else:
            speculative_generate(cpu_target, drafter, PROMPTS, k=2, max_new_tokens=8)
        assert bool(cpu_target.keep_hidden) is writes, type(drafter).__name__
        if writes:
            assert cpu_target.hidden_cache.abs().sum() > 0


def test_trained_head_is_accepted_more_than_an_untrained_one(target, trained_head):
    torch.manual_seed(1)
    untrained = EagleHead.for_target(target)
    rates = [speculative_generate(target, EagleDrafter(target, h), PROMPTS, k=2, max_new_tokens=40).stats.acceptance_rate
             for h in (trained_head, untrained)]
    # measured 0.24 vs 0.004: the positions training_loss supervises are the ones drafting uses
    assert rates[0] > 0.15 > rates[1], rates


def test_greedy_lossless_with_vocabulary_subset(target, trained_head):
    head = trained_head.with_vocabulary(torch.arange(0, 128))
    spec = speculative_generate(target, EagleDrafter(target, head), PROMPTS, k=3, max_new_tokens=30)
    assert spec.tokens == generate_plain(target, PROMPTS, max_new_tokens=30).tokens


def test_sampling_draft_probs_are_full_distributions_zero_outside_the_subset(target, trained_head):
    subset = torch.arange(32, 127)
    head = trained_head.with_vocabulary(subset)
    drafter = EagleDrafter(target, head)
    drafter.stop_reach = 0.0  # all k drafts, however unlikely
    B, k = len(PROMPTS), 4
    context = torch.zeros(B, 72, dtype=torch.long)
    for b, p in enumerate(PROMPTS):
        context[b, :len(p)] = torch.tensor(p)
    length = torch.tensor([len(p) for p in PROMPTS])
    target.allocate_cache(B, 72, keep_hidden=True)
    drafter.reset(B, 72)
    target.forward(context, torch.zeros(B, dtype=torch.long))
    sampling = Sampling(temperature=0.9, top_p=0.95, coupled=False)  # the rejection rule's draft_probs
    proposal = drafter.propose(context, length, k, sampling, row_seeds(3, B))
    drafts, probs = proposal.tokens, proposal.probs
    assert probs.shape == (B, k, 256)
    torch.testing.assert_close(probs.sum(-1), torch.ones(B, k, dtype=probs.dtype))
    outside = torch.ones(256, dtype=torch.bool)
    outside[subset] = False
    assert bool((probs[..., outside] == 0).all()) and bool((probs >= 0).all())
    assert bool((probs.gather(2, drafts.unsqueeze(-1)) > 0).all())  # each draft was possible under its q
    drafter.reset(B, 72)  # the same seeds draft the same tokens
    again = drafter.propose(context, length, k, sampling, row_seeds(3, B)).tokens
    assert torch.equal(again, drafts)


def test_sampled_generation_runs_and_is_seeded(target, trained_head):
    sampling = Sampling(temperature=0.8)
    runs = [speculative_generate(target, EagleDrafter(target, trained_head), PROMPTS, k=3, max_new_tokens=24,
                                 sampling=sampling, seed=7) for _ in range(2)]
    assert runs[0].tokens == runs[1].tokens
    assert all(len(t) == 24 for t in runs[0].tokens) and runs[0].stats.accepted > 0


def test_save_and_load_head_round_trip(target, trained_head, tmp_path):
    head = EagleHead(trained_head.cfg, torch.tensor([5, 3, 200]))
    save_head(head, tmp_path / "h.safetensors", {"recipe": "test"})
    loaded = load_head(tmp_path / "h.safetensors")
    assert torch.equal(loaded.vocab_ids, head.vocab_ids) and loaded.cfg == head.cfg
    assert load_head(tmp_path / "h.safetensors", max_seq_len=4096).cfg.max_seq_len == 4096  # the target's
    for name, value in head.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name].float(), value.bfloat16().float(), msg=name)


def test_bad_vocab_ids_are_rejected(target):
    for ids, what in [(torch.tensor([0, 256]), "0..255"), (torch.tensor([1, 1]), "distinct"),
                      (torch.tensor([], dtype=torch.long), "N >= 1"), (torch.tensor([0.5]), "int ids")]:
        with pytest.raises(ValueError, match=f"vocab_ids: got .*{what}"):
            EagleHead(target.cfg, ids)


def test_head_of_another_target_is_rejected_and_target_untouched():
    target = load_tiny_pair()[0]
    other = EagleHead(load_tiny_pair()[1].cfg)  # the draft's dim 96, not 256
    with pytest.raises(ValueError, match="head: got dim 96.*expected the target's dim 256"):
        EagleDrafter(target, other)
    assert target.keep_hidden == () and target.hidden_cache is None


def test_reset_without_the_targets_hidden_cache_says_so(trained_head):
    target = load_tiny_pair()[0]
    target.allocate_cache(2, 32)  # without keep_hidden: no hidden_cache
    drafter = EagleDrafter(target, trained_head)
    with pytest.raises(RuntimeError, match=r"target.hidden_cache: got None, expected \[2, 32, 256\].*keep_hidden=True"):
        drafter.reset(2, 32)
    target.allocate_cache(2, 32, keep_hidden=True)
    drafter.reset(2, 32)  # now it is there


def test_draft_past_the_cache_is_rejected(target, trained_head):
    drafter = EagleDrafter(target, trained_head)
    target.allocate_cache(1, 16, keep_hidden=True)
    drafter.reset(1, 16)
    context = torch.zeros(1, 16, dtype=torch.long)
    with pytest.raises(ValueError, match=r"k: got 7 with a row of length 12, expected length \+ k - 2 <= 16"):
        drafter.propose(context, torch.tensor([12]), 7, Sampling(), row_seeds(0, 1))
    assert drafter.head.k_cache.abs().sum() == 0  # rejected before any slot was written
    drafter.stop_reach = 0.0
    assert drafter.propose(context, torch.tensor([12]), 6, Sampling(), row_seeds(0, 1)).tokens.shape == (1, 6)


def test_drafting_stops_where_no_row_is_likely_to_reach(target, trained_head):
    drafter = EagleDrafter(target, trained_head)
    B = len(PROMPTS)
    context = torch.zeros(B, 72, dtype=torch.long)
    for b, p in enumerate(PROMPTS):
        context[b, :len(p)] = torch.tensor(p)
    length = torch.tensor([len(p) for p in PROMPTS])
    target.allocate_cache(B, 72, keep_hidden=True)
    target.forward(context, torch.zeros(B, dtype=torch.long))
    widths = {}
    for stop in (0.0, 0.5, 1.0):
        drafter.stop_reach = stop
        drafter.reset(B, 72)
        proposal = drafter.propose(context, length, 6, Sampling(), row_seeds(0, B))
        drafts, conf = proposal.tokens, proposal.confidence
        assert conf.shape == drafts.shape and bool(((conf > 0) & (conf <= 1)).all())
        reach = conf.cumprod(1).max(0).values  # [k'] the likeliest row's reach
        assert bool((reach[:-1] >= stop).all()), "it went on only while some row could reach"
        assert drafts.shape[1] == 6 or reach[-1] < stop, "it stopped only where no row could"
        widths[stop] = drafts.shape[1]
    assert widths[0.0] == 6 and widths[1.0] == 1 and widths[0.0] >= widths[0.5] >= widths[1.0]


@pytest.mark.parametrize("stop_reach", [0.1, 0.6])
def test_greedy_lossless_with_k_auto_and_early_stops(cpu_target, trained_head, stop_reach):
    from tt_specdec.speculative.policy import AdaptiveK
    from tt_specdec.speculative.cost import CostModel

    drafter = EagleDrafter(cpu_target, trained_head.with_vocabulary(torch.arange(0, 128)))
    drafter.stop_reach = stop_reach
    policy = AdaptiveK(CostModel(c=0.05, d0=0.0, v=(1.0, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7)), 6)
    spec = speculative_generate(cpu_target, drafter, PROMPTS, k=6, max_new_tokens=40, policy=policy)
    assert spec.tokens == generate_plain(cpu_target, PROMPTS, max_new_tokens=40).tokens
    assert spec.stats.accepted > 0 and spec.stats.proposed >= spec.stats.proposals > 0


def test_load_eagle_drafter_missing_file(target, tmp_path):
    with pytest.raises(FileNotFoundError, match="path: got .*nothing.safetensors, which does not exist"):
        load_eagle_drafter(target, tmp_path / "nothing.safetensors")


# ---- the shipped SmolLM2 head ----------------------------------------------------------------------
SMOLLM2_READY = SMOLLM2_EAGLE.is_file() and all(importlib.util.find_spec(m) for m in ("gguf", "tokenizers"))
SMOLLM2_K, SMOLLM2_TOKENS = 4, 24
# Greedy acceptance (accepted / drafted) of the shipped head (step 689, held-out teacher-forced top-1
# agreement 0.35) on a chat and a code bench prompt (never trained on), load_pair's CPU-engine target,
# k=4, 24 tokens: measured 10 / 134 = 0.075 (an untrained head: ~0). The floor catches a broken or
# misaligned head, not a slightly different checkpoint. Raise it as the shipped head improves.
ACCEPTANCE_MEASURED = 0.075
ACCEPTANCE_FLOOR = 0.03


@pytest.mark.skipif(not SMOLLM2_READY, reason="needs smollm2_eagle.safetensors, gguf, tokenizers (tools/setup.sh)")
def test_smollm2_eagle_head_loads_is_accepted_and_lossless():
    from safetensors import safe_open

    from tt_specdec.bench.prompts_smollm2 import PROMPTS as BENCH_PROMPTS

    assert SMOLLM2_EAGLE.stat().st_size <= 25 * 1024 * 1024
    pair = tt_specdec.load_pair("smollm2", torch.float32)
    drafter = load_eagle_drafter(pair.target)
    with safe_open(str(SMOLLM2_EAGLE), framework="pt") as f:
        meta = f.metadata()
    assert drafter.head.cfg.dim == pair.target.cfg.dim == 576 and json.loads(meta["config"])["n_layers"] == 1
    assert len(drafter.head.vocab_ids) == int(meta["vocab_subset"])
    assert drafter.head.cfg.max_seq_len == pair.target.max_seq_len
    tok = pair.tokenizer
    drafted = accepted = 0
    for text in (BENCH_PROMPTS[0][1], BENCH_PROMPTS[6][1]):
        ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}]))
        plain = generate_plain(pair.target, [ids], max_new_tokens=SMOLLM2_TOKENS, eos_token_id=tok.eos_token_id)
        spec = speculative_generate(pair.target, drafter, [ids], k=SMOLLM2_K, max_new_tokens=SMOLLM2_TOKENS,
                                    eos_token_id=tok.eos_token_id)
        assert spec.tokens == plain.tokens  # lossless: the target's own greedy output
        drafted += spec.stats.drafted
        accepted += spec.stats.accepted
    assert accepted / drafted > ACCEPTANCE_FLOOR, f"acceptance {accepted / drafted:.3f} ({accepted}/{drafted})"
