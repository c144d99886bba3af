"""`generate --ops emu`: the whole speculative loop with all three fused ops as their kernels
on the host emulator (both models' verify_attention, accept_prefix, rollback_kv) gives token
for token the torch ops' output on the tiny pair, and the steps reuse the compiled kernels.
Token trees (drafters `tree`, `lookup+tree`) run theirs: verify_attention with the tree mask,
accept_tree, rollback_kv's compaction; greedy and coupled give the target alone's tokens, sampled trees under
the rejection rule the torch ops' (the sampled accept_tree kernel)."""
import importlib.util

import pytest
import torch

from tt_specdec import Sampling, SpeculativeDecoder, chat_prompt, load_pair
from tt_specdec.bench.prompts_smollm2 import PROMPTS as BENCH_PROMPTS, select
from tt_specdec.cli import main
from tt_specdec.drafters import TreeDrafter
from tt_specdec.models.loaders import WEIGHTS
from tt_specdec.ops.accept_prefix import torch_impl as accept_torch
from tt_specdec.ops.rollback_kv import torch_impl as rollback_torch
from tt_specdec.ops.verify_attention import torch_impl as attention_torch
from tt_specdec.runtime import emu

PROMPTS = ["def fib(n):", "The cat sat on"]  # two lengths: per-row positions and padded prefill


@pytest.fixture
def runs(monkeypatch):
    """Per emu.run: (program name, its kernels' compile-time identity, kernels loaded by this run,
    (input name, shape) per input; a list input (the sampling kernels' seeds): its length)."""
    calls = []
    real = emu.run

    def run(prog, inputs, *args, **kwargs):
        before = emu.compile_stats.compiled + emu.compile_stats.disk_hits
        result = real(prog, inputs, *args, **kwargs)
        key = tuple((k.source, k.role, tuple(k.compile_time_args), tuple(sorted(k.defines.items())))
                    for k in prog.kernels)
        loaded = emu.compile_stats.compiled + emu.compile_stats.disk_hits - before
        shapes = tuple((name, tuple(x.shape) if hasattr(x, "shape") else (len(x),)) for name, x in inputs.items())
        calls.append((prog.name, key, loaded, shapes))
        return result

    monkeypatch.setattr(emu, "run", run)
    return calls


def generate_ids(ops: str, k: int, max_new_tokens: int = 12, sampling: Sampling = Sampling(),
                 emu_attention: bool = True, drafter: str = "model", engine: str = "cpu"):
    """emu_attention=False: only accept_prefix and rollback_kv on `ops`; both models keep their own attention."""
    pair = load_pair("tiny", engine=engine)
    dec = SpeculativeDecoder(pair, drafter, k, sampling, ops=ops)
    if not emu_attention:
        for model in (pair.target, pair.draft):
            model.attention = model.native_attention
    return dec.generate_ids([list(p.encode()) for p in PROMPTS], max_new_tokens)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_emu_ops_give_the_torch_ops_tokens(k, runs):
    want = generate_ids("torch", k)
    assert runs == []  # the torch path never touches the emulator
    got = generate_ids("emu", k)
    assert got.tokens == want.tokens
    assert got.stats.accepted == want.stats.accepted and got.stats.steps == want.stats.steps
    assert {run[0] for run in runs} == {"verify_attention", "accept_prefix", "rollback_kv"}
    # every op ran once per step (verify_attention once per layer per forward of either model)
    assert sum(run[0] == "rollback_kv" for run in runs) == got.stats.steps


def test_steps_hit_the_program_cache(runs):
    """Positions, accepted counts and drafts change every step; compile-time args only with
    shapes (T, k), so a program seen before loads no kernel and the distinct programs are few."""
    gen = generate_ids("emu", 3, max_new_tokens=24)
    seen = set()
    for name, key, loaded, _ in runs:
        if key in seen:
            assert loaded == 0, f"{name}: a program seen before loaded {loaded} kernels"
        seen.add(key)
    for op in ("accept_prefix", "rollback_kv"):  # one program per k of the step (the last steps draft fewer)
        op_runs = [(key, shapes) for name, key, _, shapes in runs if name == op]
        assert len({key for key, _ in op_runs}) == len({shapes for _, shapes in op_runs})
    assert sum(run[0] == "rollback_kv" for run in runs) == gen.stats.steps > 6
    assert len(seen) * 4 < len(runs), (len(seen), len(runs))


@pytest.mark.parametrize("sampling", [Sampling(temperature=0.8, coupled=False),  # the sampling kernels
                                      Sampling(temperature=0.8, top_k=5, top_p=0.9, coupled=False)])
def test_emu_sampling_gives_the_torch_ops_tokens(sampling):
    # the sampling kernels on the same logits as torch's accept: the verify kernel's TF32 sources (as on a
    # card) move the logits by a few ulps, enough to move a rejection-sampled draw that lies near a CDF boundary
    assert generate_ids("emu", 3, 8, sampling, emu_attention=False).tokens == \
        generate_ids("torch", 3, 8, sampling).tokens


def test_emu_coupled_sampling_is_the_greedy_kernels_on_perturbed_scores(runs):
    # coupled: the target alone's seeded tokens, through the greedy accept_prefix kernels
    sampling = Sampling(temperature=0.8, top_p=0.9, coupled=True)
    spec = generate_ids("emu", 3, 8, sampling)
    assert spec.tokens == generate_ids("torch", 0, 8, sampling).tokens  # k = 0: generate_plain
    assert spec.stats.accepted > 0
    assert {key[0][0].rsplit("/", 1)[1] for name, key, _, _ in runs if name.startswith("accept_prefix")} == \
        {"reader_accept_prefix.cpp"}


@pytest.fixture
def tree_parents(monkeypatch):
    """parents [B, k+1] of every TreeDrafter proposal (what the loop's tree steps verify)."""
    seen, propose = [], TreeDrafter.propose

    def recording(self, *args, **kwargs):
        proposal = propose(self, *args, **kwargs)
        seen.append(proposal.parents)
        return proposal

    monkeypatch.setattr(TreeDrafter, "propose", recording)
    return seen


def refuse_torch_ops(monkeypatch) -> None:
    """Make a fall-back to the torch ops fail: on "emu" every op of the loop must run its kernels."""
    def refused(*args, **kwargs):
        raise AssertionError("a torch op ran with ops='emu'")

    for module, op in ((accept_torch, "accept_tree"), (accept_torch, "accept_prefix"), (rollback_torch, "rollback_kv"),
                       (attention_torch, "verify_attention")):
        monkeypatch.setattr(module, op, refused)


@pytest.mark.parametrize("drafter,engine", [("tree", "cpu"), ("lookup+tree", "cpu"),
                                            ("lookup+tree", "torch")])  # torch: Llama.run_rows's tree mask
@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.8)], ids=["greedy", "coupled"])
def test_emu_trees_give_the_target_alones_tokens(drafter, engine, sampling, runs, tree_parents, monkeypatch):
    alone = generate_ids("torch", 0, 16, sampling, engine=engine)  # k = 0: generate_plain, its own attention
    torch_ops = generate_ids("torch", 3, 16, sampling, drafter=drafter, engine=engine)
    assert runs == []
    tree_parents.clear()
    with monkeypatch.context() as patched:
        refuse_torch_ops(patched)
        got = generate_ids("emu", 3, 16, sampling, drafter=drafter, engine=engine)
    assert got.tokens == torch_ops.tokens == alone.tokens
    assert got.stats.accepted == torch_ops.stats.accepted > 0 and got.stats.steps == torch_ops.stats.steps
    # trees were verified, and in some step the batch's two rows verified different trees
    assert got.stats.tree_row_steps > 0
    assert any(not torch.equal(parents[0], parents[1]) for parents in tree_parents)
    assert {run[0] for run in runs} == {"verify_attention", "accept_tree", "rollback_kv"}
    tree_steps = sum(got.stats.shape_steps.values())  # steps that verified a tree (the rest: plain steps)
    inputs = [dict(shapes) for _, _, _, shapes in runs]
    n_layers = load_pair("tiny").target.cfg.n_layers
    assert sum(run[0] == "verify_attention" and "tree" in x for run, x in zip(runs, inputs)) == n_layers * tree_steps
    assert sum(run[0] == "rollback_kv" and "accepted_slots" in x for run, x in zip(runs, inputs)) == tree_steps
    assert sum(run[0] == "rollback_kv" for run in runs) == got.stats.steps
    assert sum(run[0] == "accept_tree" for run in runs) >= tree_steps  # one per row group of equal node counts


def smollm2_ready() -> bool:
    return (WEIGHTS / "smollm2_draft.safetensors").is_file() and all(
        importlib.util.find_spec(m) for m in ("gguf", "tokenizers"))


@pytest.mark.skipif(not smollm2_ready(), reason="needs smollm2_draft.safetensors, gguf, tokenizers (tools/setup.sh)")
def test_emu_trees_on_smollm2_are_the_target_alone_on_the_same_kernels():
    """The real pair, two bench prompts in one batch: the tree step on the kernels gives the tokens of the
    target alone running the same attention kernel. Not compared with the CPU engine's own attention: the
    kernel's TF32 sources move SmolLM2's logits by up to ~0.2, and the second prompt's first token is a
    near-tie there (33.506 vs 33.495), which the chain on "emu" flips too."""
    pair = load_pair("smollm2")
    tok = pair.tokenizer
    prompts = [tok.encode(chat_prompt(tok, text)) for _, text in select(BENCH_PROMPTS, 2)]
    for drafter, sampling in (("tree", Sampling()), ("lookup+tree", Sampling(temperature=0.8))):
        alone = SpeculativeDecoder(pair, drafter, 0, sampling, ops="emu").generate_ids(prompts, 12)
        got = SpeculativeDecoder(pair, drafter, 3, sampling, ops="emu").generate_ids(prompts, 12)
        assert got.tokens == alone.tokens
        assert got.stats.accepted > 0 and got.stats.tree_row_steps > 0


@pytest.mark.parametrize("drafter", ["tree", "lookup+tree"])
@pytest.mark.parametrize("sampling", [Sampling(temperature=0.8, coupled=False),
                                      Sampling(temperature=0.8, top_k=5, top_p=0.9, coupled=False)])
def test_emu_sampled_trees_give_the_torch_ops_tokens(drafter, sampling, runs, monkeypatch):
    """The rejection rule over a tree (coupled=False) on the sampled accept_tree kernel: the torch ops' tokens
    when both models keep their own attention (as the chain's sampling test: the verify kernel's TF32 sources
    would move a draw near a CDF boundary)."""
    want = generate_ids("torch", 3, 12, sampling, emu_attention=False, drafter=drafter)
    with monkeypatch.context() as patched:
        refuse_torch_ops(patched)
        got = generate_ids("emu", 3, 12, sampling, emu_attention=False, drafter=drafter)
    assert got.tokens == want.tokens
    assert got.stats.accepted == want.stats.accepted > 0 and got.stats.tree_row_steps > 0
    assert "accept_tree_sampling" in {run[0] for run in runs}


def test_sampled_trees_on_the_emulator_run_from_the_cli(capsys):
    args = ["generate", "ab", "--pair", "tiny", "--drafter", "tree", "--k", "3", "--max-new-tokens", "4",
            "--temperature", "0.8", "--no-coupled"]
    assert main([*args, "--ops", "emu"]) == 0
    emu_out = capsys.readouterr().out
    assert main(args) == 0
    assert emu_out and emu_out == capsys.readouterr().out  # the CPU engine's attention either way: the same text


def test_missing_kernel_features_are_named():
    pair = load_pair("tiny")
    with pytest.raises(ValueError, match="k: got 'auto', expected an int with ops='emu'"):
        SpeculativeDecoder(pair, "model", "auto", ops="emu")
    with pytest.raises(ValueError, match="ops: got 'cuda'"):
        SpeculativeDecoder(pair, "model", 2, ops="cuda")
    SpeculativeDecoder(pair, "model", 2, ops="emu")
    assert pair.target.attention == pair.draft.attention == "emu"
    SpeculativeDecoder(pair, "model", 2)  # ops="torch" puts the models back on their own fast path
    assert pair.target.attention == pair.draft.attention == "cpu"  # the C++ engine (models/cpu_llama.py)
    torch_pair = load_pair("tiny", engine="torch")
    SpeculativeDecoder(torch_pair, "model", 2)
    assert torch_pair.target.attention == torch_pair.draft.attention == "torch"


@pytest.mark.parametrize("drafter,k", [("model", "2"), ("tree", "3")])
def test_cli_generate_ops_emu(capsys, drafter, k):
    greedy = ["--drafter", drafter, "--k", k, "--max-new-tokens", "4"]
    assert main(["generate", "ab", "--pair", "tiny", "--ops", "emu", *greedy]) == 0
    emu_text = capsys.readouterr().out
    assert main(["generate", "ab", "--pair", "tiny", *greedy]) == 0
    assert emu_text == capsys.readouterr().out
    sampled = [*greedy, "--temperature", "1", "--top-p", "0.9"]  # coupled (Sampling's default)
    assert main(["generate", "ab", "--pair", "tiny", "--ops", "emu", *sampled]) == 0
    emu_text = capsys.readouterr().out
    assert main(["generate", "ab", "--pair", "tiny", *sampled]) == 0
    assert emu_text == capsys.readouterr().out
