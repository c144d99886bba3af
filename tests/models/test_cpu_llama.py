"""The fast CPU decoder (models/cpu_llama.py, csrc/cpu/): same model as the torch Llama with
bf16-rounded weights, and batch-invariant: a T-row verify gives exactly the bits of T one-row
decodes, and a row's logits do not depend on its batch neighbours or the thread count. The decoder
tests run on every matrix path this CPU has (avx2 and portable everywhere on x86-64-v3)."""
import copy

import pytest
import torch

from tt_specdec.drafters import ModelDrafter
from tt_specdec.models import load_tiny_pair
from tt_specdec.models.cpu_llama import CpuLlama, PackedLinear, matrix_paths, set_threads
from tt_specdec.speculative import generate_plain, speculative_generate

PATHS = matrix_paths()
# against the torch Llama (fp32 activations): the fp32-widening paths differ by summation order only
# (one fma chain vs MKL's blocking); the bf16-product paths also round every linear's input to bf16
# (a relative 2^-9 per activation), which moves the tiny model's logits by up to ~4e-2
LOGIT_ATOL = {"portable": 1e-4, "avx2": 1e-4, "avx512_bf16": 8e-2, "amx": 8e-2}
# the engine against its own torch-glue step (same linears, torch attention): an fp32 rounding apart
# in the attention output can move a bf16-rounded activation by one bf16 step
SELF_ATOL = {"portable": 1e-4, "avx2": 1e-4, "avx512_bf16": 1e-2, "amx": 1e-2}


@pytest.fixture(scope="module", params=PATHS)
def cpu_pair(request):
    target, draft = load_tiny_pair()
    return CpuLlama(target, request.param), CpuLlama(draft, request.param)


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
    assert target.matrix_path in PATHS
    torch.testing.assert_close(ours, theirs, atol=LOGIT_ATOL[target.matrix_path], rtol=0)


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
    assert torch.equal(target.logits(target.hidden_cache[:, :12]), logits)
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
    torch.testing.assert_close(glue, engine, atol=SELF_ATOL[target.matrix_path], rtol=0)


def test_torch_ops_tree_path_matches_engine(cpu_pair):
    # forward_tree with ops.verify_attention's tree mask (forward_with_ops): RoPE at pos + depth, KV at slot
    # pos + t, as the engine's tree verify; two rows with different trees after different contexts
    target, _ = cpu_pair
    context = torch.randint(0, 256, (2, 9))
    tokens = torch.randint(0, 256, (2, 7))
    parents = torch.tensor([[-1, 0, 0, 1, 1, 2, 5], [-1, 0, 1, 2, 0, 4, 3]])
    pos = torch.tensor([9, 5])
    results = {}
    for attention in ("cpu", "torch"):
        target.allocate_cache(2, 20)
        target.forward(context, torch.zeros(2, dtype=torch.long))
        target.attention = attention
        try:
            logits = target.forward_tree(tokens, pos, parents)
        finally:
            target.attention = "cpu"
        results[attention] = logits, target.k_cache.clone(), target.v_cache.clone()
    for engine, glue in zip(results["cpu"], results["torch"]):
        torch.testing.assert_close(glue, engine, atol=SELF_ATOL[target.matrix_path], rtol=0)


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


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("N,K", [(1, 8), (17, 3), (100, 64), (640, 576)])
@pytest.mark.parametrize("M", [1, 2, 3, 5, 7, 13])
def test_packed_linear_shapes(N, K, M, path):
    """Edge widths (N not a multiple of the 16-column panel, K not of the 32-wide k-block) and every
    row-block shape (6, 4, 2, 1 rows; 16-row AMX tiles)."""
    w = torch.randn(N, K).bfloat16()
    x = torch.randn(M, K)
    lin = PackedLinear(w, path)
    out = lin(x)
    # the bf16-product paths multiply the activations rounded to bf16; both accumulate in fp32
    xr = x if path in ("avx2", "portable") else x.bfloat16().float()
    torch.testing.assert_close(out, xr @ w.float().T, atol=1e-4 * K ** 0.5, rtol=1e-5)
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


def _tiny_engine():
    """A _cpu.CpuModel of one layer: dim 16, 2 query heads, 1 KV head, head_dim 8, ffn 24, V 10, max_len 12;
    with its linears by name (the same ones add_layer and set_head were given)."""
    from tt_specdec import _cpu

    g = torch.Generator().manual_seed(0)
    lin = {name: _cpu.PackedLinear(torch.randn(n, k, generator=g)) for name, n, k in
           [("qkv", 32, 16), ("wo", 16, 16), ("gate_up", 48, 16), ("down", 16, 24), ("head", 10, 16)]}
    engine = _cpu.CpuModel(16, 2, 1, 8, 24, 1e-5, torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g))
    engine.add_layer(torch.ones(16), torch.ones(16), lin["qkv"], lin["wo"], lin["gate_up"], lin["down"])
    engine.set_head(torch.ones(16), lin["head"])
    return engine, lin


def _decoder_calls():
    """(name, call, message) for each argument the C++ decoder's calls refuse at the boundary (csrc/cpu/calls.cpp)."""
    from tt_specdec import _cpu

    engine, lin = _tiny_engine()

    def caches(layers=1, S=12):  # [layers, B, Hkv, S, D]
        return torch.zeros(layers, 2, 1, S, 8), torch.zeros(layers, 2, 1, S, 8)

    x, logits = torch.zeros(2, 3, 16), torch.zeros(2, 3, 10)
    q, kv = torch.zeros(2, 3, 4, 8), torch.zeros(2, 2, 10, 8)
    linear = _cpu.PackedLinear(torch.zeros(4, 6))
    return [
        ("weight dtype", lambda: _cpu.PackedLinear(torch.zeros(4, 6, dtype=torch.float16)),
         r"weight: got dtype torch.float16, expected torch.float32 or torch.bfloat16"),
        ("weight strides", lambda: _cpu.PackedLinear(torch.zeros(6, 4).t()),
         r"weight: got strides \[1, 4\], expected contiguous strides \[6, 1\]"),
        ("weight rank", lambda: _cpu.PackedLinear(torch.zeros(6)), r"weight: got shape \[6\], expected \[N, K\]"),
        ("weight raw pointer", lambda: _cpu.PackedLinear(torch.zeros(4, 6).data_ptr()),
         r"weight: got int, expected a torch.Tensor"),
        ("linear x width", lambda: linear.forward(torch.zeros(2, 5), torch.zeros(2, 4)),
         r"x: got shape \[2, 5\], expected \[M, K\] = \[\*, 6\]"),
        ("linear out rows", lambda: linear.forward(torch.zeros(2, 6), torch.zeros(3, 4)),
         r"out: got shape \[3, 4\], expected \[M, N\] = \[2, 4\]"),
        ("linear out strides", lambda: linear.forward(torch.zeros(2, 6), torch.zeros(4, 2).t()),
         r"out: got strides \[1, 2\], expected contiguous strides \[4, 1\]"),
        ("attention out dtype", lambda: _cpu.attention(q, kv, kv, q.double(), [0, 0], 1.0),
         r"out: got dtype torch.float64, expected torch.float32"),
        ("attention q device", lambda: _cpu.attention(q.to("meta"), kv, kv, q, [0, 0], 1.0),
         r"q: got device meta, expected cpu"),
        ("attention pos count", lambda: _cpu.attention(q, kv, kv, q, [0], 1.0),
         r"q: got shape \[2, 3, 4, 8\], expected \[B, T, Hq, D\] = \[1, \*, \*, \*\]"),
        ("attention head dim", lambda: _cpu.attention(q, torch.zeros(2, 2, 10, 4), kv, q, [0, 0], 1.0),
         r"k_cache: got shape \[2, 2, 10, 4\], expected \[B, Hkv, S, D\] = \[2, \*, \*, 8\]"),
        ("attention GQA groups", lambda: _cpu.attention(q, torch.zeros(2, 3, 10, 8), torch.zeros(2, 3, 10, 8), q,
                                                        [0, 0], 1.0),
         r"k_cache: got Hkv = 3, expected a divisor of q's Hq = 4"),
        ("attention v_cache", lambda: _cpu.attention(q, kv, torch.zeros(2, 2, 9, 8), q, [0, 0], 1.0),
         r"v_cache: got shape \[2, 2, 9, 8\], expected \[B, Hkv, S, D\] = \[2, 2, 10, 8\]"),
        ("attention pos past the cache", lambda: _cpu.attention(q, kv, kv, q, [0, 8], 1.0),
         r"pos: got 8 with T=3, expected 0 <= pos and pos \+ T <= 10"),
        ("model rope width", lambda: _cpu.CpuModel(16, 2, 1, 8, 24, 1e-5, torch.zeros(12, 6), torch.zeros(12, 6)),
         r"cos: got shape \[12, 6\], expected \[max_len, head_dim\] = \[\*, 8\]"),
        ("model kv heads", lambda: _cpu.CpuModel(16, 3, 2, 8, 24, 1e-5, torch.zeros(12, 8), torch.zeros(12, 8)),
         r"n_kv_heads: got 2, expected a divisor of n_heads = 3"),
        ("layer norm length", lambda: engine.add_layer(torch.ones(15), torch.ones(16), lin["qkv"], lin["wo"],
                                                       lin["gate_up"], lin["down"]),
         r"attn_norm: got shape \[15\], expected \[dim\] = \[16\]"),
        ("layer linears swapped", lambda: engine.add_layer(torch.ones(16), torch.ones(16), lin["wo"], lin["qkv"],
                                                           lin["gate_up"], lin["down"]),
         r"qkv: got a PackedLinear \[n, k\] = \[16, 16\], expected .* = \[32, 16\]"),
        ("layer linear None", lambda: engine.add_layer(torch.ones(16), torch.ones(16), lin["qkv"], lin["wo"],
                                                       lin["gate_up"], None),
         r"down: got None, expected a PackedLinear"),
        ("head width", lambda: engine.set_head(torch.ones(16), lin["down"]),
         r"head: got a PackedLinear \[n, k\] = \[16, 24\], expected \[V, dim\] = \[16, 16\]"),
        ("forward cache layers", lambda: engine.forward(x, *caches(layers=2), [0, 0], logits),
         r"k_cache: got shape \[2, 2, 1, 12, 8\], expected \[layers, B, Hkv, S, D\] = \[1, 2, 1, \*, 8\]"),
        ("forward logits width", lambda: engine.forward(x, *caches(), [0, 0], torch.zeros(2, 3, 9)),
         r"logits: got shape \[2, 3, 9\], expected \[B, T, V\] = \[2, 3, 10\]"),
        ("forward pos past the rope table", lambda: engine.forward(x, *caches(S=20), [0, 10], logits),
         r"pos: got 10 with T=3, expected 0 <= pos and pos \+ T <= 12"),
        ("forward x as rows", lambda: engine.forward(x.view(6, 16), *caches(), [0, 0], logits),
         r"x: got shape \[6, 16\], expected \[B, T, dim\] = \[2, \*, 16\]"),
        ("logits rows", lambda: engine.logits(torch.zeros(3, 16), torch.zeros(2, 10)),
         r"out: got shape \[2, 10\], expected \[M, V\] = \[3, 10\]"),
    ]


@pytest.mark.parametrize("case", range(len(_decoder_calls())), ids=[c[0] for c in _decoder_calls()])
def test_decoder_calls_refuse_a_wrong_tensor_naming_it(case):
    """Every tensor the C++ decoder would read or write through a raw pointer is checked first (dtype, shape,
    contiguous CPU memory), FlashInfer-style: a ValueError naming the argument, what it got and what it expected."""
    _, call, message = _decoder_calls()[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_a_refused_forward_writes_nothing():
    engine, _ = _tiny_engine()
    x, k_cache, v_cache = torch.randn(2, 3, 16), torch.zeros(1, 2, 1, 12, 8), torch.zeros(1, 2, 1, 12, 8)
    before = x.clone()
    with pytest.raises(ValueError, match="logits"):
        engine.forward(x, k_cache, v_cache, [0, 0], torch.zeros(2, 3, 9))
    assert torch.equal(x, before) and not k_cache.any() and not v_cache.any()
    logits = torch.zeros(2, 3, 10)
    engine.forward(x, k_cache, v_cache, [0, 0], logits)  # the same call with the right logits runs
    assert k_cache.any() and logits.abs().sum() > 0


def test_tree_verify_rows_have_the_bits_of_decoding_their_paths(cpu_pair):
    """Exact mode for token trees: each tree row's logits equal decoding its root-to-node path one token at
    a time on a chain cache, and rollback's compaction of a path leaves the cache a chain decode writes."""
    from tt_specdec.ops import rollback_kv

    target, _ = cpu_pair
    g = torch.Generator().manual_seed(5)
    context = torch.randint(0, 256, (1, 30), generator=g)
    parents = torch.tensor([[-1, 0, 0, 1, 1, 2, 3, 5, 7]])  # depth up to 4, branches at 0, 1
    tokens = torch.randint(0, 256, (1, 9), generator=g)
    pos = torch.tensor([30])
    target.allocate_cache(1, 48)
    target.forward(context, torch.zeros(1, dtype=torch.long))
    tree = target.forward_tree(tokens, pos, parents)
    tree_k, tree_v = target.k_cache.clone(), target.v_cache.clone()
    for node in (0, 4, 6, 8):
        path = [node]
        while parents[0, path[-1]] >= 0:
            path.append(int(parents[0, path[-1]]))
        path = path[::-1]
        chain = torch.cat([target.forward(tokens[:, [a]], pos + d) for d, a in enumerate(path)], 1)
        assert torch.equal(chain[0, -1], tree[0, node]), node
    path = [0, 2, 5, 7, 8]  # compact it as accept_tree's slots would, then compare with its chain decode's KV
    target.k_cache.copy_(tree_k), target.v_cache.copy_(tree_v)
    out = torch.tensor([[int(tokens[0, a]) for a in path[1:]] + [0] * 5])
    rollback_kv(pos, tokens[:, 0], torch.tensor([4]), out, accepted_slots=torch.tensor([path + [5, 6, 7, 8]]),
                k_cache=target.k_cache, v_cache=target.v_cache)
    compacted = target.k_cache[:, :, :, 30:35].clone(), target.v_cache[:, :, :, 30:35].clone()
    target.forward(tokens[:, path], pos)  # the path as a chain verify: bits of decoding it
    assert torch.equal(compacted[0], target.k_cache[:, :, :, 30:35])
    assert torch.equal(compacted[1], target.v_cache[:, :, :, 30:35])
