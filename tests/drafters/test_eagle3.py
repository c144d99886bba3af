"""EAGLE-3 head (tt_specdec/drafters/eagle3.py) on the tiny byte-level target: the target's multi-layer
features, fusion, training-time test equal to drafting, save/load, lossless greedy decoding; and the
recipe's reading of the teacher data (tools/train_eagle3_smollm2.py)."""
import importlib.util
import pathlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tt_specdec.drafters.eagle import EagleHead, load_head, save_head
from tt_specdec.drafters.eagle3 import Eagle3Drafter, Eagle3Head, load_head3, ttt_loss
from tt_specdec.models import load_tiny_pair
from tt_specdec.sampling import Sampling, row_seeds
from tt_specdec.speculative import generate_plain, speculative_generate

LAYERS = (1, 2, 4)  # of the tiny target's 4 blocks
PROMPTS = [list(b"def wrap(text, width=70, **kwargs):\n"), list(b"import os\n"),
           list(b"class Shell:\n    def __init__(self, infile=None):\n        self.")]
RECIPE = pathlib.Path(__file__).resolve().parents[2] / "tools" / "train_eagle3_smollm2.py"


def recipe():
    spec = importlib.util.spec_from_file_location("train_eagle3_smollm2", RECIPE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def target():
    return load_tiny_pair()[0]


@pytest.fixture(scope="module")
def cpu_target():
    from tt_specdec.models.cpu_llama import CpuLlama

    return CpuLlama(load_tiny_pair()[0])


@pytest.fixture(scope="module")
def head(target):
    """A head trained briefly (20 steps, unroll 2) so that its drafts are not uniform noise."""
    torch.manual_seed(0)
    text = pathlib.Path(recipe().__file__).read_bytes()
    seqs = torch.tensor(list(text[:16 * 64])).view(16, 64)
    feats = multi_layer_features(target, seqs)
    scale = feats.view(16, 64, len(LAYERS), -1).pow(2).mean((0, 1)).sqrt()
    head = Eagle3Head.for_target(target, torch.arange(0, 256, 2), LAYERS, scale)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    mask = torch.ones(seqs.shape, dtype=torch.bool)
    mask[:, -2:] = False
    for step in range(20):
        rows = torch.arange(4) + 4 * (step % 4)
        loss = ttt_loss(head, target.embed, seqs[rows], feats[rows], mask[rows], unroll=2)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval().requires_grad_(False)


def multi_layer_features(target, tokens: torch.Tensor, layers=LAYERS) -> torch.Tensor:
    """tokens [B, L] -> hidden_cache [B, L, n*d] of the target's inference path."""
    target.allocate_cache(tokens.shape[0], tokens.shape[1], keep_hidden=layers)
    with torch.no_grad():
        target.forward(tokens, torch.zeros(tokens.shape[0], dtype=torch.long))
    return target.hidden_cache.clone()


def drafts_from_ttt(head, embed, seq: torch.Tensor, feats: torch.Tensor, n: int, k: int):
    """seq [1, n+k] (context of n, then k drafts), feats [1, n+k, 3d] -> (argmax of pass j at slot n+j-3,
    its softmax probability) for j = 1..k."""
    with torch.no_grad():
        outs = head.ttt_forward(embed(seq[:, 1:]), head.input_features(feats[:, :-1]), k)
        probs = [torch.softmax(head.lm_head(head.norm(outs[j][0, n + j - 2])), -1) for j in range(k)]
        return [int(head.vocab_ids[p.argmax()]) for p in probs], torch.stack([p.max() for p in probs])


@pytest.mark.parametrize("cpu_attention", ["cpu", "torch"])
def test_cpu_llama_keeps_the_layers_without_changing_its_logits(target, cpu_target, cpu_attention):
    """keep_hidden=LAYERS: the engine copies the rows out between its blocks (the torch-attention path
    collects them too); the logits are the same bits, the layers those of the torch Llama (bf16 weights
    here, fp32 there)."""
    tokens = torch.tensor([PROMPTS[0][:24], PROMPTS[2][:24]])
    pos = torch.zeros(2, dtype=torch.long)
    cpu_target.attention = cpu_attention
    try:
        cpu_target.allocate_cache(2, 32)
        whole = cpu_target.forward(tokens, pos)
        cpu_target.allocate_cache(2, 32, keep_hidden=LAYERS)
        kept_run = cpu_target.forward(tokens, pos)
        kept = cpu_target.hidden_cache[:, :24]  # [2, 24, 3*d]
        final = cpu_target.forward(tokens, pos, with_logits=False)
    finally:
        cpu_target.attention = cpu_target.native_attention
    assert torch.equal(whole, kept_run)
    d = cpu_target.cfg.dim
    assert kept.shape == (2, 24, 3 * d)
    assert torch.equal(kept[..., 2 * d:], final)  # the last of LAYERS is the final block
    ref = multi_layer_features(target, tokens)[:, :24].view(2, 24, 3, d)
    assert float(((kept.view(2, 24, 3, d) - ref).norm(dim=-1) / ref.norm(dim=-1)).max()) < 0.02
    assert not torch.equal(kept[..., :d], kept[..., d:2 * d])


def test_cpu_engine_refuses_bad_hidden_layers(cpu_target):
    cpu_target.allocate_cache(1, 8)
    x = cpu_target.embed(torch.tensor([[1, 2]])).contiguous()  # [1, 2, d]
    d = cpu_target.cfg.dim
    forward = cpu_target.engine.forward
    with pytest.raises(ValueError, match=r"hidden_layers: got 1 at index 1, expected increasing block counts in 1..4"):
        forward(x, cpu_target.k_cache, cpu_target.v_cache, [0], None, hidden=torch.empty(1, 2, 2, d),
                hidden_layers=[2, 1])
    with pytest.raises(ValueError, match=r"hidden_layers: got 5 at index 0, expected increasing block counts in 1..4"):
        forward(x, cpu_target.k_cache, cpu_target.v_cache, [0], None, hidden=torch.empty(1, 2, 1, d), hidden_layers=[5])
    with pytest.raises(ValueError, match=r"hidden"):
        forward(x, cpu_target.k_cache, cpu_target.v_cache, [0], None, hidden=torch.empty(1, 2, 1, d + 1),
                hidden_layers=[2])
    with pytest.raises(ValueError, match=r"hidden, hidden_layers: got hidden_layers without hidden, expected both"):
        forward(x, cpu_target.k_cache, cpu_target.v_cache, [0], None, hidden_layers=[2])


@pytest.mark.parametrize("bad", [(0, 2), (2, 2), (3, 1), (1, 5), (), "2"])
def test_keep_hidden_that_is_not_block_counts_is_refused(target, bad):
    with pytest.raises(ValueError, match=r"keep_hidden: got .*, expected a bool or increasing block counts in 1..4"):
        target.allocate_cache(1, 8, keep_hidden=bad)


def test_fusion_scales_then_projects(head):
    f = torch.randn(5, 3 * head.cfg.dim)
    expected = f @ (head.fuse.weight / head.feat_scale.flatten()).T
    torch.testing.assert_close(head.input_features(f), expected, rtol=1e-4, atol=1e-4)
    assert head.input_features(f.view(1, 5, -1)).shape == (1, 5, head.cfg.dim)


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 9), steps=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_fusion_on_the_cpu_engine_is_the_bf16_product(cpu_target, head, rows, steps, seed):
    """The drafter's packed fuse: torch's product of the bf16-rounded weights (and, on a bf16-product matrix
    path, bf16-rounded scaled features) up to the order of fp32 sums; near the fp32 head's fusion."""
    from tt_specdec.models.cpu_llama import matrix_path

    drafter = Eagle3Drafter(cpu_target, head)
    assert drafter.engine is not None
    f = torch.randn(rows, steps, 3 * head.cfg.dim, generator=torch.Generator().manual_seed(seed)) * 4
    got = drafter.input_features(f)  # [rows, steps, d]
    x = f / head.feat_scale.flatten()
    if matrix_path() not in ("portable", "avx2"):  # these widen bf16 weights and keep fp32 activations
        x = x.bfloat16().float()
    expected = x.double() @ head.fuse.weight.bfloat16().double().T
    assert got.shape == (rows, steps, head.cfg.dim) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4 * float(expected.abs().max()))
    torch.testing.assert_close(got, head.input_features(f), rtol=0.03, atol=0.03 * float(expected.abs().max()))


def test_cpu_engine_proposals_follow_the_torch_head(cpu_target, head):
    """The drafts on the CPU engine (bf16 fc, fuse, layer, lm_head) against the same drafter on torch ops (fp32):
    the head's arithmetic differs in bf16 rounding only, so the greedy drafts agree almost everywhere."""
    cpu_target.attention = "torch"  # the same head on torch ops
    slow = Eagle3Drafter(cpu_target, head)
    cpu_target.attention = "cpu"
    fast = Eagle3Drafter(cpu_target, head)
    assert fast.engine is not None and slow.engine is None
    context = torch.tensor([PROMPTS[2] + [0] * 8])
    cpu_target.allocate_cache(1, context.shape[1], keep_hidden=LAYERS)
    cpu_target.forward(context[:, :len(PROMPTS[2])], torch.zeros(1, dtype=torch.long))
    same = total = 0
    for drafter in (fast, slow):
        drafter.stop_reach = 0.0  # always k drafts
        drafter.reset(1, context.shape[1])
    for n in range(10, len(PROMPTS[2]), 3):  # drafts after tokens 0..n-1, the target's features fed
        drafts = [d.propose(context, torch.tensor([n]), 3, Sampling(), row_seeds(0, 1)).tokens for d in (fast, slow)]
        same += int((drafts[0] == drafts[1]).sum())
        total += drafts[0].numel()
    assert same >= 0.8 * total, f"{same} of {total} drafts equal"


def test_first_ttt_pass_is_the_teacher_forced_head(target, head):
    tokens = torch.tensor([PROMPTS[0][:30]])
    g = head.input_features(multi_layer_features(target, tokens))
    embeds = target.embed(tokens)
    outs = head.ttt_forward(embeds, g, unroll=3)
    assert len(outs) == 3 and all(o.shape == (1, 30, head.cfg.dim) for o in outs)
    torch.testing.assert_close(outs[0], head.forward_train(embeds, g), rtol=1e-4, atol=1e-4)


def test_ttt_pass_j_is_draft_step_j(target, head):
    """Draft j of the drafter = argmax of training-time-test pass j at slot n+j-3 when the sequence
    continues with the drafts themselves: the training sees exactly what drafting computes."""
    k, B = 4, len(PROMPTS)
    drafter = Eagle3Drafter(target, head)
    drafter.stop_reach = 0.0
    context = torch.zeros(B, 80, dtype=torch.long)
    length = torch.tensor([len(p) for p in PROMPTS])
    for b, p in enumerate(PROMPTS):
        context[b, :len(p)] = torch.tensor(p)
    assert drafter.needs_target_hidden == LAYERS
    target.allocate_cache(B, 80, keep_hidden=drafter.needs_target_hidden)
    drafter.reset(B, 80)
    target.forward(context, torch.zeros(B, dtype=torch.long))
    proposal = drafter.propose(context, length, k, Sampling(), row_seeds(0, B))
    drafts = proposal.tokens
    for b in range(B):
        n = int(length[b])
        seq = torch.tensor([PROMPTS[b] + drafts[b].tolist()])
        tokens, probs = drafts_from_ttt(head, target.embed, seq, target.hidden_cache[b:b + 1, :seq.shape[1]], n, k)
        assert tokens == drafts[b].tolist(), b
        torch.testing.assert_close(probs, proposal.confidence[b], rtol=1e-4, atol=1e-5)


def test_ttt_loss_counts_per_pass(target, head):
    tokens = torch.tensor([PROMPTS[0][:30], PROMPTS[2][:30]])
    feats = multi_layer_features(target, tokens)
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[:, 5:28] = True
    loss, hits, counts = ttt_loss(head, target.embed, tokens, feats, mask, unroll=3)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert counts == [46, 46, 46]  # passes 2, 3 lose slots 0, 1: outside the mask anyway
    assert all(0 <= h <= c for h, c in zip(hits, counts))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_lossless_on_the_cpu_engine(cpu_target, head, k):
    drafter = Eagle3Drafter(cpu_target, head)
    assert drafter.engine is not None
    spec = speculative_generate(cpu_target, drafter, PROMPTS, k=k, max_new_tokens=40)
    assert cpu_target.hidden_cache.shape[2] == 3 * cpu_target.cfg.dim
    assert spec.tokens == generate_plain(cpu_target, PROMPTS, max_new_tokens=40).tokens
    assert spec.stats.accepted > 0


@pytest.mark.parametrize("k", [2, 4])
def test_greedy_lossless_on_the_torch_llama(target, head, k):
    drafter = Eagle3Drafter(target, head)
    assert drafter.engine is None
    spec = speculative_generate(target, drafter, PROMPTS, k=k, max_new_tokens=40)
    assert target.hidden_cache.shape[2] == 3 * target.cfg.dim
    assert spec.tokens == generate_plain(target, PROMPTS, max_new_tokens=40).tokens
    assert spec.stats.accepted > 0


@pytest.mark.parametrize("engine", ["cpu", "torch"])
def test_lookup_first_passes_the_layers_on_and_stays_lossless(target, cpu_target, head, engine):
    from tt_specdec.drafters import LookupFirstDrafter

    model = cpu_target if engine == "cpu" else target
    drafter = LookupFirstDrafter(Eagle3Drafter(model, head))
    assert drafter.needs_target_hidden == LAYERS
    spec = speculative_generate(model, drafter, PROMPTS, k=3, max_new_tokens=40)
    assert model.hidden_cache.shape[2] == 3 * model.cfg.dim
    assert spec.tokens == generate_plain(model, PROMPTS, max_new_tokens=40).tokens


@pytest.mark.parametrize("lookup_first", [False, True], ids=["eagle3", "lookup+eagle3"])
def test_coupled_sampling_equals_the_target_alone_on_the_cpu_engine(cpu_target, head, lookup_first):
    """Seeded coupled sampling (the default): the drafts use the target's noise, so the output is the
    target alone's seeded output, token for token."""
    from tt_specdec.drafters import LookupFirstDrafter

    sampling = Sampling(0.8, 0, 0.9, coupled=True)
    drafter = Eagle3Drafter(cpu_target, head)
    drafter = LookupFirstDrafter(drafter) if lookup_first else drafter
    spec = speculative_generate(cpu_target, drafter, PROMPTS, k=3, max_new_tokens=32, sampling=sampling, seed=7)
    assert spec.tokens == generate_plain(cpu_target, PROMPTS, max_new_tokens=32, sampling=sampling, seed=7).tokens
    assert spec.stats.accepted > 0, "no draft accepted: the equality would hold trivially"


def test_save_load_round_trip_and_vocabulary_subset(target, head, tmp_path):
    path = tmp_path / "h.safetensors"
    save_head(head, path, {"steps": "20"})
    back = load_head3(path)
    assert back.feature_layers == LAYERS and torch.equal(back.vocab_ids, head.vocab_ids)
    torch.testing.assert_close(back.feat_scale, head.feat_scale)  # kept in fp32
    f = torch.randn(2, 3 * head.cfg.dim)
    torch.testing.assert_close(back.input_features(f), head.input_features(f), rtol=0.02, atol=0.02)
    sub = head.with_vocabulary(torch.tensor([10, 2, 100]))
    assert torch.equal(sub.lm_head.weight, head.lm_head.weight[[5, 1, 50]])
    with pytest.raises(ValueError, match="outside the head's vocabulary"):
        head.with_vocabulary(torch.tensor([3]))  # odd ids are not in it
    save_head(EagleHead(target.cfg), tmp_path / "e1.safetensors", {})
    with pytest.raises(ValueError, match="kind 'eagle', expected an Eagle3Head file"):
        load_head3(tmp_path / "e1.safetensors")
    with pytest.raises(ValueError, match="kind 'eagle3', expected an EagleHead file"):
        load_head(path)


def test_feature_layers_beyond_the_target_are_refused(target):
    head = Eagle3Head(target.cfg, None, (1, 2, 9))
    with pytest.raises(ValueError, match=r"head: got feature_layers \(1, 2, 9\), expected .* the target's 4 blocks"):
        Eagle3Drafter(target, head)
    with pytest.raises(ValueError, match="feature_layers"):
        Eagle3Head(target.cfg, None, (2, 1))
    with pytest.raises(TypeError, match="head: got EagleHead, expected an Eagle3Head"):
        Eagle3Drafter(target, EagleHead(target.cfg))


# ---- the recipe's data reading ---------------------------------------------------------------
def write_teacher(path: pathlib.Path, convs: list[tuple[list[int], list[int]]], name: str) -> None:
    q, a = [c[0] for c in convs], [c[1] for c in convs]
    np.savez_compressed(path / name, query=np.concatenate([np.array(x, np.uint16) for x in q]),
                        query_off=np.cumsum([0] + [len(x) for x in q]),
                        answer=np.concatenate([np.array(x, np.uint16) for x in a]),
                        answer_off=np.cumsum([0] + [len(x) for x in a]))


def test_recipe_reads_conversations_holds_out_by_user_turn_and_plans_shards(tmp_path):
    r = recipe()
    convs_in = [([5 + i, 6, 7], [40000 + i, 9, 2]) for i in range(60)] + [([5, 6, 7], [11, 12])]
    write_teacher(tmp_path, convs_in[:40], "a.npz")
    write_teacher(tmp_path, convs_in[40:], "b.npz")
    convs = r.read_conversations(tmp_path, ("a.npz", "b.npz"))
    assert len(convs) == 61 and convs[40]["file"] == "b.npz" and convs[40]["index"] == 0
    assert convs[3]["answer"].tolist() == [40003, 9, 2]  # uint16 ids above 32767 survive
    seq, start = r.sequence(convs[3])
    assert seq.tolist() == r.PREFIX + [8, 6, 7] + r.SUFFIX + [40003, 9, 2]
    assert start == len(r.PREFIX) + 3 + len(r.SUFFIX)
    assert convs[60]["held"] == convs[0]["held"]  # the same user turn: the same side
    plan = r.shard_plan(convs)
    names = [n for n, _ in plan]
    flat = sorted(i for _, idx in plan for i in idx)
    assert flat == list(range(61))
    for name, idx in plan:
        assert all(convs[i]["held"] == name.startswith("held") for i in idx)
    assert r.shard_plan(convs) == plan  # seeded
    assert len(names) == len(set(names))


def test_recipe_shards_round_trip_and_batches(tmp_path):
    r = recipe()
    seqs = [np.arange(10), np.arange(7) + 3]
    feats = [np.random.default_rng(0).standard_normal((len(s), 3, 8)).astype(np.float16) for s in seqs]
    r.write_shard(tmp_path / "train_0000", seqs, [4, 5], feats, {"layers": [1, 2, 3]})
    shard = r.Shard(tmp_path / "train_0000")
    assert len(shard) == 2
    tokens, f, start = shard[1]
    assert tokens.tolist() == (np.arange(7) + 3).tolist() and start == 5
    assert np.array_equal(f, feats[1])
    tok, fe, mask = r.make_batch([shard[0], shard[1]])
    assert tok.shape == (2, 10) and fe.shape == (2, 10, 24)
    # slot p enters the loss when x_{p+2} is an answer token: p = start-2 .. n-3
    assert mask[0].nonzero().flatten().tolist() == list(range(2, 8))
    assert mask[1].nonzero().flatten().tolist() == list(range(3, 5))


@pytest.mark.skipif(not (recipe().DATA / "answers_2.npz").is_file(), reason="the teacher data is not here")
def test_recipe_reads_the_real_teacher_data():
    r = recipe()
    convs = r.read_conversations(limit=50)
    assert len(convs) == 50
    for c in convs:
        seq, start = r.sequence(c)
        assert seq[start - len(r.SUFFIX):start].tolist() == r.SUFFIX
        assert 0 < len(c["answer"]) <= 256 and seq.max() < 49152


# ---- the shipped SmolLM2 head -------------------------------------------------------------------
def _smollm2_ready() -> bool:
    from tt_specdec.drafters.eagle3 import SMOLLM2_EAGLE3

    return SMOLLM2_EAGLE3.is_file() and all(importlib.util.find_spec(m) for m in ("gguf", "tokenizers"))


# Greedy acceptance of the shipped head (step 655) on a chat and a code bench prompt, load_pair's
# CPU-engine target, k=4, 24 tokens must stay above this floor: it catches a broken or misaligned
# head (an untrained one: ~0), not a slightly different checkpoint.
ACCEPTANCE_FLOOR = 0.1


@pytest.mark.skipif(not _smollm2_ready(), reason="needs smollm2_eagle3.safetensors, gguf, tokenizers (tools/setup.sh)")
def test_smollm2_eagle3_head_loads_is_accepted_and_lossless():
    import tt_specdec
    from tt_specdec.drafters.eagle3 import SMOLLM2_EAGLE3, load_eagle3_drafter
    from tt_specdec.bench.prompts_smollm2 import PROMPTS as BENCH_PROMPTS

    assert SMOLLM2_EAGLE3.stat().st_size <= 25 * 1024 * 1024
    pair = tt_specdec.load_pair("smollm2", torch.float32)
    drafter = load_eagle3_drafter(pair.target)
    assert drafter.head.feature_layers == (2, 15, 27) and drafter.head.cfg.dim == 576
    assert drafter.engine is not None  # the head runs on the CPU engine's kernels
    tok = pair.tokenizer
    drafted = accepted = 0
    for text in (BENCH_PROMPTS[0][1], BENCH_PROMPTS[6][1]):
        ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}]))
        plain = generate_plain(pair.target, [ids], max_new_tokens=24, eos_token_id=tok.eos_token_id)
        spec = speculative_generate(pair.target, drafter, [ids], k=4, max_new_tokens=24, eos_token_id=tok.eos_token_id)
        assert spec.tokens == plain.tokens  # lossless: the target's own greedy output
        drafted += spec.stats.drafted
        accepted += spec.stats.accepted
    assert accepted / drafted > ACCEPTANCE_FLOOR, f"acceptance {accepted / drafted:.3f} ({accepted}/{drafted})"
