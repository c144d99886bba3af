import argparse

import pytest
import torch

import tt_specdec
import tt_specdec.api
from tt_specdec.drafters import NgramDrafter
from tt_specdec import Pair
from tt_specdec.cli import main
from tt_specdec.models import ByteTokenizer

TINY = ["--pair", "tiny"]


@pytest.fixture()
def cost_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TT_SPECDEC_CACHE", str(tmp_path))  # the measured cost model lands here
    return tmp_path


def test_generate_streams_the_completion(capsys):
    assert main(["generate", "def f(x):", *TINY, "--k", "3", "--max-new-tokens", "12"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("def f(x):") and len(out.strip()) > len("def f(x):")
    assert "tok/s" in err and "acceptance" in err


def test_generate_matches_target_alone(capsys):
    main(["generate", "import os", *TINY, "--k", "0", "--max-new-tokens", "20"])
    plain = capsys.readouterr().out
    main(["generate", "import os", *TINY, "--k", "5", "--drafter", "ngram", "--max-new-tokens", "20"])
    assert capsys.readouterr().out == plain


def test_generate_coupled_sampling_matches_target_alone_with_the_same_seed(capsys):
    sampled = ["--temperature", "0.8", "--top-p", "0.9", "--seed", "4", "--coupled", "--max-new-tokens", "20"]
    main(["generate", "import os", *TINY, "--k", "0", *sampled])
    plain = capsys.readouterr().out
    main(["generate", "import os", *TINY, "--k", "3", "--drafter", "ngram", *sampled])
    assert capsys.readouterr().out == plain


def test_bad_argument_is_one_clear_line(capsys):
    assert main(["generate", "x", "--top-p", "1.5"]) == 2  # fails before the default pair is loaded
    assert "top_p: got 1.5" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["generate", "x", *TINY, "--threads", "0"], "--threads: got 0, expected an int >= 1"),
    (["bench", *TINY, "--prompts", "-1"], "--prompts: got -1, expected N >= 1"),
    (["bench", *TINY, "--categories", "chat"], "categories: got ['chat'], expected a non-empty subset of ['code']"),
    (["bench", *TINY, "--k", "0"], "ks: got [0], expected a non-empty list of ints in 1..31 or 'auto'"),
])
def test_bad_cli_arguments_are_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    assert f"tt-specdec: error: {message}" in capsys.readouterr().err


def test_info_lists_executors(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "executors" in out
    from tt_specdec.models.cpu_llama import matrix_path
    assert f"matrix path {matrix_path()};" in out, "info names the CPU engine's matrix path"


def test_unknown_drafter_rejected():
    with pytest.raises(SystemExit):
        main(["generate", "x", "--drafter", "forest"])


def test_generate_with_k_auto_matches_target_alone(capsys, cost_cache):
    main(["generate", "class A:", *TINY, "--k", "0", "--max-new-tokens", "24"])
    plain = capsys.readouterr().out
    assert main(["generate", "class A:", *TINY, "--k", "auto", "--max-new-tokens", "24"]) == 0
    assert capsys.readouterr().out == plain
    assert (cost_cache / "cost_models.json").exists()


class ChatByteTokenizer(ByteTokenizer):
    """The tiny pair's bytes with a chat template, and a space as end of turn (so a reply stops early)."""
    chat_template = "<u>{{ messages[0]['content'] }}</u>"
    eos_token_id = ord(" ")

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return f"<u>{messages[0]['content']}</u>"


@pytest.fixture()
def default_pair_calls(monkeypatch, cost_cache):
    """load_pair and SpeculativeDecoder as the CLI calls them, on the tiny models with a chat tokenizer."""
    tiny, calls = tt_specdec.load_pair("tiny"), {}

    def load_pair(name, dtype=torch.float32, engine="cpu"):
        calls["load_pair"] = (name, dtype, engine)
        return Pair(tiny.target, tiny.draft, ChatByteTokenizer())

    def decoder(*args, **kwargs):
        calls["decoder"] = real(*args, **kwargs)
        return calls["decoder"]

    real = tt_specdec.SpeculativeDecoder
    monkeypatch.setattr(tt_specdec.api, "load_pair", load_pair)
    monkeypatch.setattr(tt_specdec.api, "SpeculativeDecoder", decoder)
    return calls


def test_generate_defaults_smollm2_cpu_engine_chat_template_k_auto_stop_at_eos(default_pair_calls, capsys,
                                                                                monkeypatch):
    assert tt_specdec.DEFAULT_DRAFTER == {"smollm2": "lookup+eagle3", "tiny": "model"}
    # the tiny models stand in for SmolLM2 here, and have no EAGLE head: the same kind of drafter on their draft
    monkeypatch.setitem(tt_specdec.DEFAULT_DRAFTER, "smollm2", "lookup+model")
    assert main(["generate", "def", "--max-new-tokens", "48"]) == 0
    answer = capsys.readouterr().out
    assert default_pair_calls["load_pair"] == ("smollm2", torch.float32, "cpu")
    dec = default_pair_calls["decoder"]
    assert dec.auto and dec.k == 8 and type(dec.drafter).__name__ == "LookupFirstDrafter"
    assert type(dec.drafter.fallback).__name__ == "ModelDrafter"
    assert answer.endswith(" ") and answer.count(" ") == 1  # stopped at the first end-of-turn token
    assert main(["generate", "<u>def</u>", "--raw", "--max-new-tokens", "48"]) == 0
    assert capsys.readouterr().out == "<u>def</u>" + answer  # --raw: the same text, untemplated, echoed


def test_generate_pair_tiny_has_no_chat_template(capsys):
    assert main(["generate", "def g():", *TINY, "--k", "2", "--max-new-tokens", "8"]) == 0
    templated = capsys.readouterr().out
    assert main(["generate", "def g():", *TINY, "--k", "2", "--max-new-tokens", "8", "--raw"]) == 0
    assert capsys.readouterr().out == templated


def test_bench_defaults(monkeypatch):
    seen = {}

    def fake_bench(pair_name, pair, **kwargs):  # what cmd_bench asks for, without running it
        seen.update(kwargs, name=pair_name)
        return {"meta": {}, "results": []}

    monkeypatch.setattr("tt_specdec.bench.harness.bench", fake_bench)
    monkeypatch.setattr("tt_specdec.bench.harness.format_table", lambda report: "")
    monkeypatch.setattr("tt_specdec.cli.load", lambda args: tt_specdec.load_pair("tiny"))
    assert main(["bench"]) == 0
    assert seen["name"] == "smollm2" and seen["ks"] == [1, 2, 4, "auto"] and seen["max_new_tokens"] == 128
    # built once each; tiny has no EAGLE head
    assert list(seen["drafters"]) == ["model", "ngram", "tree", "lookup+tree", "lookup+model"] and seen["chat"] and seen["compare"]
    assert len(seen["prompts"]) == 24 and seen["sampling"].greedy


def test_registered_drafter_is_a_cli_choice(monkeypatch, capsys):
    monkeypatch.setitem(tt_specdec.DRAFTERS, "echo", lambda pair: NgramDrafter(max_ngram=2))
    assert main(["generate", "x = 1", *TINY, "--drafter", "echo", "--k", "2", "--max-new-tokens", "6"]) == 0
    with pytest.raises(ValueError, match=r"^factory: got 3, expected a callable"):
        tt_specdec.register_drafter("three", 3)
    assert "three" not in tt_specdec.DRAFTERS


def test_threads_size_the_cpu_decoders_pool_and_leave_torch_at_one():
    """torch only does small ops around the CPU engine: with its own threads it spun against the
    pool's (measured: --threads 2 gave 21 tok/s, 1 thread 30.6; with this, 2 threads 34.1)."""
    from tt_specdec.cli import load
    from tt_specdec.models.cpu_llama import set_threads

    args = argparse.Namespace(threads=2, engine="cpu", dtype=None, pair="tiny")
    try:
        pair = load(args)
        assert pair.target.threads == 2 and torch.get_num_threads() == 1
    finally:
        set_threads(1)
        torch.set_num_threads(1)
