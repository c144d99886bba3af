"""EAGLE-2 token trees from an EAGLE-3 head (drafters/eagle_tree.py) on the tiny byte-level target and the
briefly trained head of test_eagle3: one child per node is EagleDrafter's chain, token for token; in the
loop, greedy output is the target alone's on the CPU engine and on the torch Llama (batches whose rows grow
different trees, with and without the lookup branch), coupled sampling the target alone's seeded sample;
the registered names build it for SmolLM2's shipped head."""
import pytest
import torch

from test_eagle3 import LAYERS, PROMPTS, cpu_target, head, target  # noqa: F401 - fixtures shared with the chain's tests
from tt_specdec.drafters import Eagle3Drafter, EagleTreeDrafter
from tt_specdec.ops.accept_prefix import check_tree_args
from tt_specdec.sampling import Sampling
from tt_specdec.speculative import generate_plain, speculative_generate

TREE_PROMPTS = PROMPTS + [list(b"def f(x):\n    return x\n\ndef g(x):\n    return f(x)\n\ndef h(x):\n    return ")]


def recording(drafter: EagleTreeDrafter) -> list[torch.Tensor]:
    """Keeps every proposal's parents [B, k+1] in the returned list (the drafter's propose, wrapped)."""
    seen, propose = [], drafter.propose

    def wrapped(*args, **kw):
        proposal = propose(*args, **kw)
        seen.append(proposal.parents)
        return proposal

    drafter.propose = wrapped
    return seen


def prefilled(model, prompts: list[list[int]], cache_len: int = 128,
              layers: tuple[int, ...] = LAYERS) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's cache after the prompts but their last token (what a step's drafter sees): context [B, S],
    length [B]."""
    B, longest = len(prompts), max(map(len, prompts))
    context = torch.zeros(B, cache_len, dtype=torch.long)
    for b, p in enumerate(prompts):
        context[b, :len(p)] = torch.tensor(p)
    length = torch.tensor([len(p) for p in prompts])
    model.allocate_cache(B, cache_len, keep_hidden=layers)
    model.prefill(context[:, :longest - 1], length - 1)
    return context, length


@pytest.mark.parametrize("k,width,lookup,eos", [(3, 4, False, None), (8, 3, True, ord("\n")), (20, 2, True, None)])
def test_tree_greedy_is_the_target_alone_on_the_cpu_engine(cpu_target, head, k, width, lookup, eos):  # noqa: F811
    drafter = EagleTreeDrafter(cpu_target, head, top_children=width, lookup=lookup)
    assert drafter.engine is not None
    seen = recording(drafter)
    spec = speculative_generate(cpu_target, drafter, TREE_PROMPTS, k=k, max_new_tokens=40, eos_token_id=eos)
    assert spec.tokens == generate_plain(cpu_target, TREE_PROMPTS, max_new_tokens=40, eos_token_id=eos).tokens
    assert spec.stats.accepted > 0 and spec.stats.tree_row_steps > 0
    assert any(any(not torch.equal(p[0], p[b]) for b in range(1, len(p))) for p in seen), "rows grew different trees"


def test_tree_greedy_on_the_torch_llama(target, head):  # noqa: F811
    drafter = EagleTreeDrafter(target, head, top_children=3, lookup=True)
    assert drafter.engine is None
    spec = speculative_generate(target, drafter, TREE_PROMPTS, k=6, max_new_tokens=32)
    assert spec.tokens == generate_plain(target, TREE_PROMPTS, max_new_tokens=32).tokens
    assert spec.stats.accepted > 0 and spec.stats.tree_row_steps > 0


@pytest.mark.parametrize("lookup", [False, True], ids=["eagle3-tree", "lookup+eagle3-tree"])
def test_coupled_sampling_equals_the_target_alone_on_the_cpu_engine(cpu_target, head, lookup):  # noqa: F811
    sampling = Sampling(0.8, 0, 0.9, coupled=True)
    drafter = EagleTreeDrafter(cpu_target, head, top_children=3, lookup=lookup)
    spec = speculative_generate(cpu_target, drafter, TREE_PROMPTS, k=6, max_new_tokens=32, sampling=sampling, seed=7)
    plain = generate_plain(cpu_target, TREE_PROMPTS, max_new_tokens=32, sampling=sampling, seed=7)
    assert spec.tokens == plain.tokens
    assert spec.stats.accepted > 0, "no draft accepted: the equality would hold trivially"


def test_loop_leaves_the_hidden_states_of_decoding(cpu_target, head):  # noqa: F811
    """After tree steps and their compaction, every position the target processed holds the kept hidden
    states one forward over the output writes (the CPU engine: the bits of decoding it token by token)."""
    drafter = EagleTreeDrafter(cpu_target, head, top_children=4, lookup=True)
    spec = speculative_generate(cpu_target, drafter, TREE_PROMPTS, k=10, max_new_tokens=30)
    assert spec.stats.tree_row_steps > 0 and spec.stats.accepted > spec.stats.steps
    kept = cpu_target.hidden_cache.clone()  # [B, S, 3·dim]
    for b, prompt in enumerate(TREE_PROMPTS):
        seq = torch.tensor([prompt + spec.tokens[b][:-1]])  # the last token is not in the cache yet
        cpu_target.allocate_cache(1, kept.shape[1], keep_hidden=LAYERS)
        cpu_target.forward(seq, torch.tensor([0]))
        n = seq.shape[1]
        assert torch.equal(kept[b, :n], cpu_target.hidden_cache[0, :n]), f"row {b}"


@pytest.mark.parametrize("attention", ["torch", "emu"])
def test_tree_on_the_ops_path_keeps_the_hidden_states(cpu_target, head, attention):  # noqa: F811
    """The CPU engine's target with its attention from ops.verify_attention (the tree mask; "emu": the
    kernel on the emulator, the accept and rollback ops too): the target alone's tokens on that path, and the
    kept hidden states forward_tree wrote there (then compacted) are those of one forward over the output."""
    cpu_target.attention = attention
    try:
        drafter = EagleTreeDrafter(cpu_target, head, top_children=3, lookup=True)
        prompts = TREE_PROMPTS[:2]
        spec = speculative_generate(cpu_target, drafter, prompts, k=6, max_new_tokens=16, ops=attention)
        kept = cpu_target.hidden_cache.clone()  # [B, S, 3·dim]
        assert spec.tokens == generate_plain(cpu_target, prompts, max_new_tokens=16).tokens
        assert spec.stats.tree_row_steps > 0 and spec.stats.accepted > 0
        for b, prompt in enumerate(prompts):
            seq = torch.tensor([prompt + spec.tokens[b][:-1]])
            cpu_target.allocate_cache(1, kept.shape[1], keep_hidden=LAYERS)
            cpu_target.forward(seq, torch.tensor([0]))
            n = seq.shape[1]
            torch.testing.assert_close(kept[b, :n], cpu_target.hidden_cache[0, :n], atol=1e-4, rtol=1e-4)
    finally:
        cpu_target.attention = cpu_target.native_attention


def test_bad_width_is_refused(cpu_target, head):  # noqa: F811
    with pytest.raises(ValueError, match="top_children: got 0"):
        EagleTreeDrafter(cpu_target, head, top_children=0)


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct on the CPU engine, and three bench prompts as chat token ids."""
    from test_eagle3 import _smollm2_ready

    if not _smollm2_ready():
        pytest.skip("needs smollm2_eagle3.safetensors, gguf, tokenizers (tools/setup.sh)")
    import tt_specdec
    from tt_specdec.bench.prompts_smollm2 import PROMPTS as BENCH_PROMPTS

    pair = tt_specdec.load_pair("smollm2", torch.float32)
    tok = pair.tokenizer
    prompts = [tok.encode(tok.apply_chat_template([{"role": "user", "content": BENCH_PROMPTS[i][1]}]))
               for i in (0, 6, 12)]
    return pair, prompts


@pytest.mark.parametrize("engine", ["cpu", "torch"])
def test_one_child_per_node_is_the_eagle_chain(smollm2, engine):
    """Width 1 proposes EagleDrafter's greedy chain, token for token, for rows at different lengths; on the
    CPU engine (exact: the same bits) and with the head in torch (as on a target without the engine)."""
    from tt_specdec.drafters.eagle3 import SMOLLM2_EAGLE3, load_head3

    pair, prompts = smollm2
    model = pair.target
    head = load_head3(SMOLLM2_EAGLE3, model.max_seq_len)
    answers = generate_plain(model, prompts, max_new_tokens=12).tokens  # the rows' contexts: prompt + answer
    context, length = prefilled(model, [p + a for p, a in zip(prompts, answers)], cache_len=256,
                                layers=head.feature_layers)
    model.attention = engine  # read once, by the drafters' constructors: "torch" keeps the head off the engine
    try:
        chain, tree = Eagle3Drafter(model, head), EagleTreeDrafter(model, head, top_children=4)
    finally:
        model.attention = model.native_attention
    assert (chain.engine is None) == (tree.engine is None) == (engine == "torch")
    chain.stop_reach = 0.0  # all k drafts, however unsure
    seeds = torch.zeros(len(prompts), dtype=torch.long)
    chain.reset(*context.shape)
    expected = chain.propose(context, length, 8, Sampling(), seeds)
    tree.reset(*context.shape)
    got = tree.propose(context, length, 8, Sampling(), seeds, width=1)
    assert got.parents.tolist() == [list(range(-1, 8))] * len(prompts)
    assert got.tokens.tolist() == expected.tokens.tolist()
    assert len(set(map(tuple, got.tokens.tolist()))) == len(prompts), "rows drafted alike: a weak comparison"
    wide = tree.propose(context, length, 8, Sampling(), seeds)  # on the same state: trees of width 4
    for b in range(len(prompts)):
        nodes = torch.cat([context[b, length[b] - 1].view(1, 1), wide.tokens[b:b + 1]], 1)
        check_tree_args(torch.zeros(1, 9, model.vocab_size), nodes, wide.parents[b:b + 1])
    assert any(len(set(p[1:])) < 8 for p in wide.parents.tolist()), "width 4 branched somewhere"
    assert wide.tokens[:, 0].tolist() == expected.tokens[:, 0].tolist(), "the best first child is the chain's"


def test_registered_names_build_tree_drafters_for_smollm2(smollm2):
    from tt_specdec.api import DRAFTERS

    pair, prompts = smollm2
    eos = pair.tokenizer.eos_token_id
    plain = generate_plain(pair.target, prompts, max_new_tokens=16, eos_token_id=eos).tokens
    for name, lookup in (("eagle3-tree", False), ("lookup+eagle3-tree", True)):
        drafter = DRAFTERS[name](pair)
        assert isinstance(drafter, EagleTreeDrafter) and (drafter.lookup is not None) == lookup
        assert drafter.head.feature_layers == (2, 15, 27)
        spec = speculative_generate(pair.target, drafter, prompts, k=8, max_new_tokens=16, eos_token_id=eos)
        assert spec.tokens == plain
        assert spec.stats.accepted > 0 and spec.stats.tree_row_steps > 0


def test_batched_trees_are_each_rows_tree_alone(smollm2):
    """The head's shared calls (rows re-fed and padded to one width) change no row's tree, and the first j
    nodes of a proposal are the j-draft proposal (what TreePolicy relies on)."""
    from tt_specdec.api import DRAFTERS

    pair, prompts = smollm2
    model, k = pair.target, 12
    context, length = prefilled(model, prompts, cache_len=256, layers=(2, 15, 27))
    together = DRAFTERS["lookup+eagle3-tree"](pair)
    together.reset(*context.shape)
    proposal = together.propose(context, length, k, Sampling(), torch.zeros(len(prompts), dtype=torch.long))
    assert proposal.steps < k, "lookup copies took nodes without head steps"
    hidden = model.hidden_cache.clone()
    for b, p in enumerate(prompts):
        row_ctx, row_len = prefilled(model, [p], cache_len=256, layers=(2, 15, 27))
        assert torch.equal(model.hidden_cache[0, :len(p) - 1], hidden[b, :len(p) - 1])  # the features it reads
        for j in (k, 5):
            alone = DRAFTERS["lookup+eagle3-tree"](pair)
            alone.reset(*row_ctx.shape)
            mine = alone.propose(row_ctx, row_len, j, Sampling(), torch.zeros(1, dtype=torch.long))
            assert torch.equal(mine.tokens[0], proposal.tokens[b, :j]), (b, j)
            assert torch.equal(mine.parents[0], proposal.parents[b, :j + 1]), (b, j)
    assert len({tuple(p) for p in proposal.parents.tolist()}) > 1, "the rows' trees differ"
