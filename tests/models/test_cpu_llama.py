"""The fast CPU decoder (models/cpu_llama.py, csrc/cpu/): same model as the torch Llama with
bf16-rounded weights, and batch-invariant: a T-row verify gives exactly the bits of T one-row
decodes, and a row's logits do not depend on its batch neighbours or the thread count."""
import copy

import pytest
import torch

from tt_specdec.drafters import ModelDrafter
from tt_specdec.models import load_tiny_pair
from tt_specdec.models.cpu_llama import CpuLlama, PackedLinear, set_threads
from tt_specdec.speculative import generate_plain, speculative_generate

# same weights, different summation order (one fma chain vs MKL's blocking): fp32 rounding only
LOGIT_ATOL = 1e-4


@pytest.fixture(scope="module")
def cpu_pair():
    target, draft = load_tiny_pair()
    return CpuLlama(target), CpuLlama(draft)


def prompts_of(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 256, (n,), generator=g).tolist() for n in lengths]


def test_weights_rounded_to_bf16_and_torch_module_shares_them(cpu_pair):
    target, _ = cpu_pair
    w = target.model.layers[0].wq.weight
    assert torch.equal(w, w.bfloat16().float())


@pytest.mark.parametrize("B,T,pos", [(1, 1, [0]), (1, 9, [5]), (3, 4, [0, 17, 40]), (2, 32, [1, 3])])
def test_logits_match_torch_llama(cpu_pair, B, T, pos):
    target, _ = cpu_pair
    ref = copy.deepcopy(target.model)
    tokens = torch.randint(0, 256, (B, max(pos) + T))
    for m in (target, ref):
        m.allocate_cache(B, max(pos) + T + 4)
        m.forward(tokens[:, :max(pos)], torch.zeros(B, dtype=torch.long)) if max(pos) else None
    p = torch.tensor(pos)
    chunk = torch.stack([tokens[b, pos[b]:pos[b] + T] for b in range(B)])
    ours, theirs = target.forward(chunk, p), ref.forward(chunk, p)
    assert ours.dtype == torch.float32 and ours.shape == (B, T, 256)
    torch.testing.assert_close(ours, theirs, atol=LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("T", [2, 3, 5, 8, 17])
def test_verify_is_bit_identical_to_decode(cpu_pair, T):
    """Exact mode: T rows in one forward == T one-row forwards, bit for bit, every row of a batch."""
    target, _ = cpu_pair
    B, start = 3, torch.tensor([7, 30, 12])
    tokens = torch.randint(0, 256, (B, 64))
    target.allocate_cache(B, 64)
    target.forward(tokens[:, :40], torch.zeros(B, dtype=torch.long))  # a context for every row
    chunk = torch.stack([tokens[b, int(start[b]):int(start[b]) + T] for b in range(B)])
    verify = target.forward(chunk, start)
    decode = torch.stack([target.forward(chunk[:, t:t + 1], start + t)[:, 0] for t in range(T)], 1)
    assert torch.equal(verify, decode)


def test_row_does_not_depend_on_batch_or_threads(cpu_pair):
    target, _ = cpu_pair
    tokens = torch.randint(0, 256, (3, 20))
    target.allocate_cache(3, 24)
    batch = target.forward(tokens, torch.zeros(3, dtype=torch.long))
    target.allocate_cache(1, 24)
    alone = target.forward(tokens[1:2], torch.zeros(1, dtype=torch.long))
    assert torch.equal(batch[1], alone[0])
    set_threads(2)
    try:
        two = target.forward(tokens[1:2], torch.zeros(1, dtype=torch.long))
    finally:
        set_threads(1)
    assert torch.equal(two, alone)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_greedy_speculative_equals_target_alone_exactly(cpu_pair, k):
    target, draft = cpu_pair
    prompts = prompts_of([5, 23, 11])
    plain = generate_plain(target, prompts, max_new_tokens=40)
    spec = speculative_generate(target, ModelDrafter(draft), prompts, k=k, max_new_tokens=40)
    assert spec.tokens == plain.tokens
    assert spec.stats.accepted > 0  # the draft really was used


def test_hidden_cache_holds_final_hidden_per_position(cpu_pair):
    target, _ = cpu_pair
    tokens = torch.randint(0, 256, (2, 12))
    target.allocate_cache(2, 16, keep_hidden=True)
    logits = target.forward(tokens, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(target.logits(target.hidden_cache[:, :12]), logits, atol=LOGIT_ATOL, rtol=0)
    target.allocate_cache(2, 16)
    assert target.hidden_cache is None, "kept only when asked"


def test_torch_ops_path_matches_engine(cpu_pair):
    target, _ = cpu_pair
    tokens = torch.randint(0, 256, (2, 10))
    target.allocate_cache(2, 12)
    engine = target.forward(tokens, torch.zeros(2, dtype=torch.long))
    target.attention = "torch"
    try:
        glue = target.forward(tokens, torch.zeros(2, dtype=torch.long))
    finally:
        target.attention = "cpu"
    torch.testing.assert_close(glue, engine, atol=LOGIT_ATOL, rtol=0)


def test_bad_input_is_named(cpu_pair):
    target, _ = cpu_pair
    target.allocate_cache(1, 8)
    before = target.k_cache.clone()
    with pytest.raises(ValueError, match="pos: got positions 6..9"):
        target.forward(torch.zeros(1, 4, dtype=torch.long), torch.tensor([6]))
    with pytest.raises(ValueError, match="tokens"):
        target.forward(torch.full((1, 2), 256), torch.tensor([0]))
    assert torch.equal(target.k_cache, before)
    with pytest.raises(ValueError, match="weight: got dtype torch.float16"):
        PackedLinear(torch.zeros(4, 4, dtype=torch.float16))
    with pytest.raises(ValueError, match="threads: got 0"):
        set_threads(0)


@pytest.mark.parametrize("N,K", [(1, 8), (17, 3), (100, 64), (640, 576)])
@pytest.mark.parametrize("M", [1, 2, 3, 5, 7, 13])
def test_packed_linear_shapes(N, K, M):
    """Edge widths (N not a multiple of the 16-column panel) and every row-block path (6, 4, 2, 1)."""
    w = torch.randn(N, K).bfloat16()
    x = torch.randn(M, K)
    lin = PackedLinear(w)
    out = lin(x)
    torch.testing.assert_close(out, x @ w.float().T, atol=1e-4 * K ** 0.5, rtol=1e-5)
    assert torch.equal(torch.cat([lin(x[m:m + 1]) for m in range(M)]), out)


@pytest.mark.parametrize("D", [64, 32, 12])  # 64: every vector path; 32: vector scores only; 12: scalar
@pytest.mark.parametrize("threads", [1, 2])  # 1: a task per KV head, 2: a task per query head
def test_attention_matches_torch_and_a_row_does_not_depend_on_the_others(D, threads):
    """Rows see keys 0..pos+t; key counts around the 8-key blocks; GQA (3 query heads per KV head)."""
    from tt_specdec.models.cpu_llama import attention
    from tt_specdec.ops import verify_attention
    from tt_specdec.ops.verify_attention import reference

    g = torch.Generator().manual_seed(D)
    B, T, Hq, Hkv, S = 2, 11, 6, 2, 48
    q = torch.randn(B, T, Hq, D, generator=g)
    k_cache, v_cache = torch.randn(2, B, Hkv, S, D, generator=g) * 2
    pos = torch.tensor([0, 29])
    set_threads(threads)
    try:
        out = attention(q, k_cache, v_cache, pos)
        rows = torch.cat([attention(q[:, t:t + 1], k_cache, v_cache, pos + t) for t in range(T)], 1)
    finally:
        set_threads(1)
    torch.testing.assert_close(out, verify_attention(q, k_cache, v_cache, pos), atol=1e-5, rtol=1e-5)
    if threads == 1:  # and the plain-loop float64 ground truth
        torch.testing.assert_close(out, reference.verify_attention(q, k_cache, v_cache, pos), atol=1e-5, rtol=1e-5)
    assert torch.equal(out, rows)
    if threads == 2:  # the same bits whichever way the work is split
        assert torch.equal(out, attention(q, k_cache, v_cache, pos))


def test_eagle_drafter_on_the_cpu_target_is_lossless(cpu_pair):
    """An EAGLE head reads CpuLlama's hidden_cache, embed, norm and output layer like a Llama's."""
    from tt_specdec.drafters.eagle import EagleDrafter, EagleHead

    target, _ = cpu_pair
    torch.manual_seed(0)
    drafter = EagleDrafter(target, EagleHead.for_target(target))
    prompts = prompts_of([9, 4])
    plain = generate_plain(target, prompts, max_new_tokens=24)
    spec = speculative_generate(target, drafter, prompts, k=3, max_new_tokens=24)
    assert spec.tokens == plain.tokens
