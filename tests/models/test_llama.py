"""Llama: the KV-cache path (`forward` at per-row positions) equals the training path
(`forward_train`, full causal, no cache); a T-row forward equals T one-row forwards; a
rolled-back cache behaves like a fresh one; bad positions are rejected before the cache
is touched; the tiny pair loads with its recipe's config and is trained."""
import pathlib
import sysconfig

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tt_specdec.models import Llama, LlamaConfig, load_tiny_pair

# fp32 logits of the small model are O(1); cached and uncached paths sum in different orders
ATOL = 1e-4


def small_llama(seed: int = 0, max_seq_len: int = 64) -> Llama:
    """Random GQA Llama (4 query heads, 2 KV heads), weights scaled up so attention is not uniform."""
    torch.manual_seed(seed)
    model = Llama(LlamaConfig(256, 64, 2, 4, 2, 128, max_seq_len)).eval().requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(4.0)
    return model


@pytest.fixture(scope="module")
def model() -> Llama:
    return small_llama()


def full_logits(model: Llama, tokens: list[int]) -> torch.Tensor:
    """[L, V] logits of the training path for one sequence."""
    with torch.no_grad():
        return model.forward_train(torch.tensor([tokens]))[0].float()


def test_logits_are_not_trivial(model):
    # guards the comparisons below: they mean little if every logit were ~equal
    logits = full_logits(model, list(range(40, 60)))
    assert float(logits.std(-1).min()) > 0.5


def test_prefill_then_decode_equals_forward_train_per_row(model):
    # three rows, prompts of 5, 11 and 2 tokens: every row sits at its own position every step
    gen = torch.Generator().manual_seed(1)
    seqs = torch.randint(0, 256, (3, 24), generator=gen)
    lengths = torch.tensor([5, 11, 2])
    model.allocate_cache(3, 32)
    logits = model.prefill(seqs[:, :int(lengths.max())], lengths)  # [3, V]
    pos = lengths.clone()
    for step in range(8):
        for b in range(3):
            want = full_logits(model, seqs[b, :int(pos[b])].tolist())[-1]
            torch.testing.assert_close(logits[b], want, atol=ATOL, rtol=0, msg=f"row {b} step {step}")
        # decode the next token of each row's own sequence (teacher forcing)
        logits = model.forward(seqs.gather(1, pos.view(3, 1)), pos)[:, 0]
        pos += 1


def test_chunked_forward_at_per_row_positions_equals_forward_train(model):
    gen = torch.Generator().manual_seed(2)
    seqs = torch.randint(0, 256, (2, 30), generator=gen)
    model.allocate_cache(2, 32)
    pos = torch.tensor([0, 0])
    for T in (7, 3, 1, 5):  # row 1 gets its chunks one position later: staggered positions
        if int(pos[0]) == 0:
            model.forward(seqs[:, :T], pos)
            pos = torch.tensor([T, T - 1])
            continue
        tokens = torch.stack([seqs[b, int(pos[b]):int(pos[b]) + T] for b in range(2)])
        logits = model.forward(tokens, pos)  # [2, T, V]
        for b in range(2):
            want = full_logits(model, seqs[b, :int(pos[b]) + T].tolist())[int(pos[b]):]
            torch.testing.assert_close(logits[b], want, atol=ATOL, rtol=0, msg=f"row {b} T={T}")
        pos = pos + T


@settings(max_examples=12, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(2, 9), start=st.lists(st.integers(1, 20), min_size=3, max_size=3),
       seed=st.integers(0, 2**16))
def test_t_row_forward_equals_t_single_row_forwards(model, B, T, start, seed):
    gen = torch.Generator().manual_seed(seed)
    seqs = torch.randint(0, 256, (B, 32), generator=gen)
    pos = torch.tensor(start[:B])
    prompt = seqs[:, :int(pos.max())]

    model.allocate_cache(B, 32)
    model.prefill(prompt, pos)
    chunk = torch.stack([seqs[b, int(pos[b]):int(pos[b]) + T] for b in range(B)])
    together = model.forward(chunk, pos)  # [B, T, V]
    k_together = model.k_cache.clone()

    model.allocate_cache(B, 32)
    model.prefill(prompt, pos)
    one_by_one = torch.cat([model.forward(chunk[:, t:t + 1], pos + t) for t in range(T)], 1)
    torch.testing.assert_close(together, one_by_one, atol=ATOL, rtol=0)
    for b in range(B):  # the KV both wrote for the chunk's positions agree too
        p = int(pos[b])
        torch.testing.assert_close(k_together[:, b, :, p:p + T], model.k_cache[:, b, :, p:p + T], atol=ATOL, rtol=0)


def test_rolled_back_slots_are_masked_then_overwritten(model):
    # speculative rollback at the model level: verify 6 tokens, keep 2, continue from there
    gen = torch.Generator().manual_seed(3)
    prompt, rejected, accepted = (torch.randint(0, 256, (1, n), generator=gen) for n in (9, 4, 5))
    model.allocate_cache(1, 32)
    model.prefill(prompt, torch.tensor([9]))
    model.forward(torch.cat([accepted[:, :2], rejected], 1), torch.tensor([9]))  # slots 9..14
    logits = model.forward(accepted[:, 2:], torch.tensor([11]))  # stale slots 11..14 overwritten
    seq = torch.cat([prompt, accepted], 1)[0].tolist()
    torch.testing.assert_close(logits[0], full_logits(model, seq)[11:], atol=ATOL, rtol=0)


def test_positions_beyond_the_cache_are_rejected_and_the_cache_is_untouched(model):
    model.allocate_cache(2, 16)
    model.forward(torch.ones(2, 4, dtype=torch.long), torch.tensor([0, 0]))
    k_before = model.k_cache.clone()
    tokens = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^pos: .*\.\.16, expected 0\.\.15"):
        model.forward(tokens, torch.tensor([2, 13]))  # row 1 would write slot 16
    with pytest.raises(ValueError, match=r"^pos:"):
        model.forward(tokens, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"^pos:"):
        model.forward(tokens, torch.tensor([0]))  # one position for two rows
    with pytest.raises(ValueError, match=r"^tokens: .*256"):
        model.forward(torch.full((2, 4), 256), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"^tokens: .*batch 3"):
        model.forward(torch.ones(3, 4, dtype=torch.long), torch.tensor([0, 0, 0]))
    assert torch.equal(model.k_cache, k_before)
    model.forward(tokens, torch.tensor([2, 12]))  # the last slot is usable
    with pytest.raises(ValueError, match=r"^cache_len: got 65"):
        model.allocate_cache(1, 65)


def test_forward_without_a_cache_is_an_error():
    with pytest.raises(RuntimeError, match="allocate_cache"):
        small_llama(max_seq_len=16).forward(torch.ones(1, 1, dtype=torch.long), torch.tensor([0]))


# the recipe's configs (tools/train_tiny.py)
TARGET_CFG = LlamaConfig(vocab_size=256, dim=256, n_layers=4, n_heads=8, n_kv_heads=2, ffn_dim=688, max_seq_len=2048)
DRAFT_CFG = LlamaConfig(vocab_size=256, dim=96, n_layers=1, n_heads=3, n_kv_heads=1, ffn_dim=256, max_seq_len=2048)


def held_out_text() -> torch.Tensor:
    """4 KiB of a stdlib source (byte ids), for a loss check."""
    path = pathlib.Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"
    return torch.tensor(list(path.read_bytes()[:4096]))


def test_tiny_pair_loads_with_the_recipe_config_and_is_trained(tiny_pair):
    target, draft = tiny_pair
    assert target.cfg == TARGET_CFG and draft.cfg == DRAFT_CFG
    for m in (target, draft):
        assert not m.training and not any(p.requires_grad for p in m.parameters())
        assert m.embed.weight.dtype == torch.float32
        x = held_out_text().view(32, 128)  # the recipe trains on 128-byte windows
        with torch.no_grad():
            loss = F.cross_entropy(m.forward_train(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        # uniform bytes would be ln 256 = 5.5 nats; the trained pair is far below
        assert float(loss) < 2.5, f"{m.cfg.dim=}: loss {float(loss):.2f} nats/byte, weights look untrained"


def test_tiny_pair_loads_in_bfloat16():
    target, draft = load_tiny_pair(torch.bfloat16)
    assert target.embed.weight.dtype == draft.embed.weight.dtype == torch.bfloat16
    target.allocate_cache(1, 8)
    assert target.k_cache.dtype == torch.bfloat16
    logits = target.forward(torch.tensor([list(b"def ")]), torch.tensor([0]))
    assert logits.dtype == torch.float32 and bool(torch.isfinite(logits).all())


@settings(max_examples=8, deadline=None)
@given(T=st.integers(2, 9), start=st.integers(1, 90), seed=st.integers(0, 2**16))
def test_bf16_t_row_forward_is_bit_identical_to_single_row_forwards(tiny_pair_bf16, T, start, seed):
    """In bf16 this torch build's matmuls accumulate each output in one fixed order whatever
    the row count, so a k-row verify and 1-row decodes give the same bits: bf16 greedy
    speculative output cannot even differ at a near-tie. (fp32 is not: M = 1, 2-3 and
    5+ rows take different GEMM kernels.) If a torch upgrade breaks this, this test says so."""
    target, _ = tiny_pair_bf16
    seqs = torch.randint(0, 256, (1, 128), generator=torch.Generator().manual_seed(seed))
    pos = torch.tensor([start])
    target.allocate_cache(1, 128)
    target.prefill(seqs[:, :start], pos)
    together = target.forward(seqs[:, start:start + T], pos)
    target.prefill(seqs[:, :start], pos)
    one_by_one = torch.cat([target.forward(seqs[:, start + t:start + t + 1], pos + t) for t in range(T)], 1)
    assert torch.equal(together, one_by_one)
