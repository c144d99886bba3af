"""The side-by-side bench (tt_specdec/bench/harness.py): its prompt set, its report, its predicted speedup.

The run tests use the tiny pair (and transformers' LlamaForCausalLM built from the same weights);
the chat-template comparison needs the SmolLM2 tokenizer (tools/setup.sh) and transformers.
"""
import dataclasses
import importlib.util
import json
import pathlib

import pytest
import torch

import tt_specdec
from tt_specdec.drafters import NgramDrafter
from tt_specdec.cli import main
from tt_specdec.bench import harness as bench
from tt_specdec.sampling import Sampling
from tt_specdec.speculative.cost import CostModel, expected_tokens
from tt_specdec.bench.prompts_smollm2 import CATEGORIES, PROMPTS, select
from tt_specdec.speculative.stats import Stats

ROW_FIELDS = {"config", "stack", "drafter", "k", "prompts", "new_tokens", "seconds", "tokens_per_s", "ttft_ms",
              "acceptance_rate", "mean_accepted_length", "acceptance_per_position", "acceptance_per_category",
              "acceptance_source", "speedup", "vs_transformers", "identical_to_target", "predicted_speedup",
              "measured_over_predicted", "cost_model", "steps_by_kind", "shapes", "tree_row_steps"}
REPO = pathlib.Path(__file__).resolve().parents[2]


# -- the prompt set ---------------------------------------------------------------------------

def test_prompt_set_has_four_categories_of_at_least_five():
    assert len(PROMPTS) >= 20
    counts = {c: sum(cat == c for cat, _ in PROMPTS) for c in CATEGORIES}
    assert set(CATEGORIES) == {"chat", "code", "prose", "summarisation"} and min(counts.values()) >= 5
    assert len({text for _, text in PROMPTS}) == len(PROMPTS)


def test_summarisation_prompts_carry_the_text_to_summarise():
    for cat, text in PROMPTS:
        if cat == "summarisation":
            instruction, _, passage = text.partition(":")
            assert "summar" in instruction.lower() and len(passage.split()) >= 30, text


def test_distillation_recipe_holds_out_every_bench_prompt():
    """tools/distill_smollm2.py drops training prompts sharing a word 5-gram with a bench prompt:
    each bench prompt must be seen by that filter."""
    spec = importlib.util.spec_from_file_location("distill_smollm2", REPO / "tools" / "distill_smollm2.py")
    distill = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(distill)
    assert distill.BENCH_PROMPTS is PROMPTS
    assert all(distill.too_close_to_bench(text) for _, text in PROMPTS)


def test_select_goes_round_robin_over_categories():
    first = select(PROMPTS, 4)
    assert [c for c, _ in first] == list(CATEGORIES)
    assert sorted(select(PROMPTS)) == sorted(PROMPTS)
    code = select(PROMPTS, None, ["code"])
    assert code == [p for p in PROMPTS if p[0] == "code"]
    assert bench.prompt_set("smollm2", 5, ["prose", "chat"])[:2] == [select(PROMPTS, None, ["prose"])[0],
                                                                      select(PROMPTS, None, ["chat"])[0]]


@pytest.mark.parametrize("call, message", [
    (lambda: select(PROMPTS, None, ["poetry"]), r"^categories: got \['poetry'\], expected a non-empty subset"),
    (lambda: select(PROMPTS, 0), r"^n: got 0, expected an int >= 1"),
    (lambda: bench.prompt_set("gpt2"), r"^pair: got 'gpt2', expected one of"),
])
def test_bad_prompt_selection_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- the predicted speedup ------------------------------------------------------------------------

COST = CostModel(c=0.1, d0=0.05, v=(1.0, 1.1, 1.2, 1.3, 1.4))


def stats_of(steps: list[tuple[int, int]]) -> Stats:
    """A run's Stats from (drafted k, accepted n) per step, batch 1, the way the loop counts them."""
    k_max = max(k for k, _ in steps)
    s = Stats(k=k_max, accepted_per_position=[0] * k_max, offered_per_position=[0] * k_max, new_tokens=1)
    for k, n in steps:
        s.steps += 1
        s.row_steps += 1
        s.drafted += k
        s.proposals += int(k > 0)
        s.proposed += k
        s.accepted += n
        s.emitted += n + 1
        s.new_tokens += n + 1
        for t in range(k):
            s.offered_per_position[t] += 1
            s.accepted_per_position[t] += int(t < n)
    return s


def test_predicted_speedup_at_one_k_is_the_cost_models_S():
    # per-token acceptance 1/2 at k = 2: E = 1 + 1/2 + 1/4 = 1.75 tokens per step; four steps accepting
    # 0, 0, 1, 2 drafts emit 1 + 1 + 2 + 3 = 7 = 4 x 1.75. Step cost d0 + 2c + v(3) = 0.05 + 0.2 + 1.2 = 1.45
    stats = stats_of([(2, 0), (2, 0), (2, 1), (2, 2)])
    assert stats.mean_accepted_length == expected_tokens(0.5, 2) == 1.75
    assert bench.predicted_speedup(stats, COST) == pytest.approx(COST.speedup(0.5, 2)) == pytest.approx(1.75 / 1.45)


def test_predicted_speedup_counts_the_loops_own_work():
    cost = dataclasses.replace(COST, o=0.1, o0=0.04, o_plain=0.06)
    stats = stats_of([(2, 0), (2, 0), (2, 1), (2, 2)])
    assert bench.predicted_speedup(stats, cost) == pytest.approx(cost.speedup(0.5, 2)) == pytest.approx(
        1.75 * 1.04 / 1.55)
    plain = stats_of([(2, 0), (0, 0)])  # one verifying step (1.45 + 0.1) and one plain step (1 + 0.06): 2 tokens
    assert bench.predicted_speedup(plain, cost) == pytest.approx(2 * 1.04 / (1.55 + 1.06))


def test_predicted_speedup_weighs_each_step_by_its_own_k():
    # adaptive k: a plain step (cost 1, emits 1), a k=1 step accepting 1 (cost 0.05 + 0.1 + 1.1 = 1.25, emits 2),
    # a k=3 step accepting 0 (cost 0.05 + 0.3 + 1.3 = 1.65, emits 1): 4 tokens in 3.9 target steps
    stats = stats_of([(0, 0), (1, 1), (3, 0)])
    assert bench.steps_per_k(stats) == [1, 1, 0, 1]
    assert bench.predicted_speedup(stats, COST) == pytest.approx(4 / 3.9)


def test_predicted_speedup_needs_v_up_to_the_runs_k():
    with pytest.raises(ValueError, match=r"^cost: got v measured up to k=4, expected up to k=5"):
        bench.predicted_speedup(stats_of([(5, 2)]), COST)


def test_acceptance_per_position_stops_at_the_last_position_offered():
    stats = stats_of([(3, 1), (1, 1)])  # d_1 offered twice, accepted twice; d_2, d_3 offered once, rejected
    stats.accepted_per_position += [0] * 5  # k auto with k_max 8: positions 4..8 never offered
    stats.offered_per_position += [0] * 5
    assert bench.offered_positions(stats) == [1.0, 0.0, 0.0]


def test_measured_over_predicted_is_the_ratio_of_the_rows_figures():
    cfg = [bench.Config(bench.OURS, bench.TARGET, 0, run=None), bench.Config(bench.OURS, "model", 2, None, COST)]
    plain, spec = bench.Tally(), bench.Tally()
    plain.add("chat", bench.Run([1] * 8, 8.0, 0.1, stats_of([(0, 0)] * 7)))  # prefill token + 7 steps
    spec.add("chat", bench.Run([1] * 8, 5.0, 0.1, stats_of([(2, 0), (2, 0), (2, 1), (2, 2)])))  # 1 + 7
    assert plain.stats.new_tokens == spec.stats.new_tokens == 8
    row = bench.rows(cfg, [plain, spec], Sampling())[1]
    assert row["speedup"] == pytest.approx(8 / 5)  # same tokens: the ratio of wall clocks
    assert row["predicted_speedup"] == pytest.approx(COST.speedup(0.5, 2))
    assert row["measured_over_predicted"] == pytest.approx((8 / 5) / COST.speedup(0.5, 2))
    assert row["identical_to_target"] == 1


# -- a whole run on the tiny pair -----------------------------------------------------------------

@pytest.fixture()
def cost_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TT_SPECDEC_CACHE", str(tmp_path))  # the measured cost models land here
    return tmp_path


def test_bench_json_has_every_field_for_every_configuration(cost_cache, tmp_path, capsys):
    pytest.importorskip("transformers")
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    assert main(["bench", "--pair", "tiny", "--k", "1,auto", "--prompts", "2", "--max-new-tokens", "8",
                 "--json", str(js), "--plot", str(png)]) == 0
    out, err = capsys.readouterr()
    assert "prompt 2/2" in err and "configuration" in out and "acceptance per category" in out
    report = json.loads(js.read_text())
    rows = report["results"]
    assert [r["config"] for r in rows] == [
        "ours target", "ours model k=1", "ours model k=auto", "ours ngram k=1", "ours ngram k=auto",
        "ours tree k=1", "ours tree k=auto", "ours lookup+tree k=1", "ours lookup+tree k=auto", "ours lookup+model k=1", "ours lookup+model k=auto", "transformers target", "transformers model k=1", "transformers model k=auto", "transformers ngram k=1"]
    for r in rows:
        assert set(r) == ROW_FIELDS, r["config"]
        assert r["prompts"] == 2 and r["new_tokens"] == 16 and r["tokens_per_s"] > 0 and r["ttft_ms"] > 0
    by = {r["config"]: r for r in rows}
    for stack in ("ours", "transformers"):
        base = by[f"{stack} target"]
        assert base["speedup"] == 1.0 and base["identical_to_target"] is None
        for r in rows:
            if r["stack"] == stack:
                assert r["speedup"] == pytest.approx(r["tokens_per_s"] / base["tokens_per_s"])
    for r in rows:
        if r["stack"] == "ours" and r["drafter"] != "target":
            assert r["identical_to_target"] == 2  # lossless
            k_max = 1 if r["k"] == 1 else 31 if r["drafter"].endswith("tree") else 8  # trees: the 32-row tile
            assert 1 <= r["mean_accepted_length"] and len(r["acceptance_per_position"]) <= k_max
            if r["drafter"].endswith("tree") and r["acceptance_rate"] is not None:  # shapes: k drafts, w children
                assert sum(r["shapes"].values()) <= r["prompts"] * 8 and 0 <= r["tree_row_steps"]
                assert all(int(shape.split()[0][2:]) <= k_max for shape in r["shapes"])
            else:
                assert r["shapes"] is None and r["tree_row_steps"] is None
            assert r["predicted_speedup"] > 0 and set(r["cost_model"]) == {"c", "d0", "v", "o", "o0", "o_plain"}
            assert r["measured_over_predicted"] == pytest.approx(r["speedup"] / r["predicted_speedup"])
            kinds = r["steps_by_kind"]  # shares of the row-steps, and what each kind emitted per step
            assert set(kinds) <= {"plain", "drafted", "copied"} and all(v["tokens_per_step"] >= 1 for v in kinds.values())
            assert sum(v["share"] for v in kinds.values()) == pytest.approx(1.0)
            assert sum(v["share"] * v["tokens_per_step"] for v in kinds.values()) == pytest.approx(r["mean_accepted_length"])
            assert "copied" not in kinds or r["drafter"].startswith("lookup+")
            if r["acceptance_rate"] is None:  # only when the cost model chose plain steps throughout
                assert r["k"] == "auto" and r["acceptance_per_category"] is None
            else:
                assert 0 <= r["acceptance_rate"] <= 1 and set(r["acceptance_per_category"]) == {"code"}
                assert len(r["acceptance_per_position"]) >= 1
    assert by["ours model k=1"]["vs_transformers"] == pytest.approx(
        by["ours model k=1"]["tokens_per_s"] / by["transformers model k=1"]["tokens_per_s"])
    assert by["ours ngram k=auto"]["vs_transformers"] is None  # transformers' prompt lookup has no auto
    assert by["transformers ngram k=1"]["acceptance_rate"] is None  # it does not say what it drafted
    assert by["transformers model k=1"]["identical_to_target"] == 2
    meta = report["meta"]
    assert meta["pair"] == "tiny" and meta["max_new_tokens"] == 8 and meta["prompts"] == 2
    assert meta["targets_identical"] == 2  # transformers' Llama on our weights decodes the same tokens
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_runs_without_transformers_and_with_a_registered_drafter(cost_cache, monkeypatch, capsys):
    monkeypatch.setitem(tt_specdec.DRAFTERS, "echo", lambda pair: NgramDrafter(max_ngram=2))
    assert main(["bench", "--pair", "tiny", "--k", "2", "--prompts", "1", "--max-new-tokens", "6",
                 "--no-transformers"]) == 0
    table = capsys.readouterr().out
    assert "ours echo k=2" in table and "ours model k=2" in table and "transformers" not in table.split("\n\n")[0]


def test_default_drafters_are_those_the_pair_can_build(monkeypatch, capsys):
    def no_weights(pair):
        raise ValueError("drafter: got 'missing', but no weights")

    monkeypatch.setitem(tt_specdec.DRAFTERS, "missing", no_weights)
    monkeypatch.setitem(tt_specdec.DRAFTERS, "echo", lambda pair: NgramDrafter(max_ngram=2))
    assert "eagle" in tt_specdec.DRAFTERS
    # tiny: the EAGLE head (if shipped) is SmolLM2's width, and "missing" refuses
    built = bench.available_drafters(tt_specdec.load_pair("tiny"))
    assert list(built) == ["model", "ngram", "tree", "lookup+tree", "lookup+model", "echo"]
    assert isinstance(built["echo"], NgramDrafter) and built["echo"].max_ngram == 2
    err = capsys.readouterr().err
    assert "drafter=missing left out: drafter: got 'missing', but no weights" in err and "drafter=eagle left out" in err
    assert "drafter=lookup+eagle left out" in err


def test_hf_llama_gives_our_logits():
    transformers = pytest.importorskip("transformers")
    target = tt_specdec.load_pair("tiny").target
    hf = bench.hf_llama(target, transformers)
    ids = torch.tensor([list(b"def fibonacci(n):\n    return")])
    target.allocate_cache(1, ids.shape[1])
    ours = target.forward(ids, torch.zeros(1, dtype=torch.long))
    with torch.inference_mode():
        theirs = hf(ids).logits.float()
        target.model.allocate_cache(1, ids.shape[1])
        same_weights = target.model.forward(ids, torch.zeros(1, dtype=torch.long))  # the engine's torch module
    torch.testing.assert_close(same_weights, theirs, atol=1e-4, rtol=0)
    # the engine's bf16-product paths round each linear's input to bf16: a slightly different model
    fp32_activations = target.matrix_path in ("avx2", "portable")
    torch.testing.assert_close(ours, theirs, atol=1e-4 if fp32_activations else 8e-2, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ks=[]), r"^ks: got \[\], expected a non-empty list"),
    (dict(ks=[0]), r"^ks: got \[0\], expected a non-empty list of ints in 1\.\.31 or 'auto'"),
    (dict(prompts=[]), r"^prompts: got none"),
])
def test_bad_bench_arguments_are_named(kwargs, message):
    call = dict(drafters=["ngram"], ks=[1], prompts=bench.prompt_set("tiny", 1)) | kwargs
    with pytest.raises(ValueError, match=message):
        bench.bench("tiny", tt_specdec.load_pair("tiny"), **call)


# -- the chat template ------------------------------------------------------------------------------

def test_chat_prompt_is_transformers_apply_chat_template_on_the_same_gguf():
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from tt_specdec.models.gguf import smollm2_gguf_path
    from tt_specdec.models.hf_tokenizer import load_smollm2_tokenizer

    try:
        path = smollm2_gguf_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    tok = load_smollm2_tokenizer()
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for _, text in select(PROMPTS, 4):
        ours = tt_specdec.chat_prompt(tok, text)
        theirs = hf_tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                            add_generation_prompt=True)
        assert ours == theirs and text in ours and ours != text


def test_plot_with_k_auto_only_draws_one_bar_per_configuration(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"config": f"ours {d} k=auto", "stack": "ours", "drafter": d, "k": "auto", "speedup": s,
             "acceptance_per_position": [0.5, 0.2], "acceptance_per_category": {"chat": 0.3}}
            for d, s in (("eagle", 1.1), ("lookup+eagle", 1.3))]
    target = {"config": "ours target", "stack": "ours", "drafter": "target", "k": 0, "speedup": 1.0}
    png = tmp_path / "auto.png"
    bench.plot({"meta": {"categories": ["chat"]}, "results": [target] + rows}, str(png))
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("coupled", [True, False])
def test_sampled_bench_compares_outputs_where_they_must_be_equal(tmp_path, capsys, coupled):
    # coupled sampling is token for token the target alone's for the same seed; the rejection rule is not
    js = tmp_path / "b.json"
    argv = ["bench", "--pair", "tiny", "--k", "2", "--drafter", "model", "--drafter", "tree", "--prompts", "2",
            "--max-new-tokens", "12", "--temperature", "0.7", "--top-p", "0.9", "--json", str(js)]
    assert main(argv + ([] if coupled else ["--no-coupled"])) == 0
    capsys.readouterr()
    by = {r["config"]: r for r in json.loads(js.read_text())["results"]}
    for name in ("ours model k=2", "ours tree k=2"):
        assert by[name]["identical_to_target"] == (2 if coupled else None)
    assert by["transformers model k=2"]["identical_to_target"] is None  # its own sampler, not ours
