"""`generate --ops emu`: the whole speculative loop with all three fused ops as their kernels
on the host emulator (both models' verify_attention, accept_prefix, rollback_kv) gives token
for token the torch ops' output on the tiny pair, and the steps reuse the compiled kernels."""
import pytest
import torch

from tt_specdec import Sampling, SpeculativeDecoder, load_pair
from tt_specdec.cli import main
from tt_specdec.runtime import emu

PROMPTS = ["def fib(n):", "The cat sat on"]  # two lengths: per-row positions and padded prefill


@pytest.fixture
def runs(monkeypatch):
    """Per emu.run: (program name, its kernels' compile-time identity, kernels loaded by this run,
    input shapes)."""
    calls = []
    real = emu.run

    def run(prog, inputs, *args, **kwargs):
        before = emu.compile_stats.compiled + emu.compile_stats.disk_hits
        result = real(prog, inputs, *args, **kwargs)
        key = tuple((k.source, k.role, tuple(k.compile_time_args), tuple(sorted(k.defines.items())))
                    for k in prog.kernels)
        loaded = emu.compile_stats.compiled + emu.compile_stats.disk_hits - before
        calls.append((prog.name, key, loaded, tuple(tuple(x.shape) for x in inputs.values())))
        return result

    monkeypatch.setattr(emu, "run", run)
    return calls


def generate_ids(ops: str, k: int, max_new_tokens: int = 12, sampling: Sampling = Sampling(),
                 emu_attention: bool = True):
    """emu_attention=False: only accept_prefix and rollback_kv on `ops`; both models keep their own attention."""
    pair = load_pair("tiny")
    dec = SpeculativeDecoder(pair, "model", k, sampling, ops=ops)
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


def test_cli_generate_ops_emu(capsys):
    assert main(["generate", "ab", "--pair", "tiny", "--ops", "emu", "--k", "2", "--max-new-tokens", "4"]) == 0
    emu_text = capsys.readouterr().out
    assert main(["generate", "ab", "--pair", "tiny", "--k", "2", "--max-new-tokens", "4"]) == 0
    assert emu_text == capsys.readouterr().out
    sampled = ["--k", "2", "--max-new-tokens", "4", "--temperature", "1", "--top-p", "0.9"]
    assert main(["generate", "ab", "--pair", "tiny", "--ops", "emu", *sampled]) == 0
    emu_text = capsys.readouterr().out
    assert main(["generate", "ab", "--pair", "tiny", *sampled]) == 0
    assert emu_text == capsys.readouterr().out
