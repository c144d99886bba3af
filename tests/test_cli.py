import json

import pytest

from tt_specdec.cli import main


def test_generate_streams_the_completion(capsys):
    assert main(["generate", "def f(x):", "--k", "3", "--max-new-tokens", "12"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("def f(x):") and len(out.strip()) > len("def f(x):")
    assert "tok/s" in err and "acceptance" in err


def test_generate_matches_target_alone(capsys):
    main(["generate", "import os", "--k", "0", "--max-new-tokens", "20"])
    plain = capsys.readouterr().out
    main(["generate", "import os", "--k", "5", "--drafter", "ngram", "--max-new-tokens", "20"])
    assert capsys.readouterr().out == plain


def test_bad_argument_is_one_clear_line(capsys):
    assert main(["generate", "x", "--top-p", "1.5"]) == 2
    assert "top_p: got 1.5" in capsys.readouterr().err


def test_bench_writes_json_and_plot(tmp_path, capsys):
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    assert main(["bench", "--k", "1,3", "--num-prompts", "2", "--max-new-tokens", "8",
                 "--json", str(js), "--plot", str(png)]) == 0
    assert "speedup" in capsys.readouterr().out
    rows = json.loads(js.read_text())["results"]
    assert [(r["drafter"], r["k"]) for r in rows] == [("model", 1), ("model", 3), ("ngram", 1), ("ngram", 3)]
    for r in rows:
        assert r["outputs_match"] is True
        assert 0.0 <= r["acceptance_rate"] <= 1.0 and 1.0 <= r["mean_accepted_length"] <= r["k"] + 1
        assert r["speedup"] > 0 and r["plain_tokens_per_s"] > 0 and len(r["acceptance_per_position"]) == r["k"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_info_lists_executors(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "executors" in out


def test_unknown_drafter_rejected():
    with pytest.raises(SystemExit):
        main(["generate", "x", "--drafter", "tree"])


def test_generate_with_k_auto_matches_target_alone(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TT_SPECDEC_CACHE", str(tmp_path))  # the measured cost model lands here
    main(["generate", "class A:", "--k", "0", "--max-new-tokens", "24"])
    plain = capsys.readouterr().out
    assert main(["generate", "class A:", "--k", "auto", "--max-new-tokens", "24"]) == 0
    assert capsys.readouterr().out == plain
    assert (tmp_path / "cost_models.json").exists()
