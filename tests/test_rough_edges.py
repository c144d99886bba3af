"""Issue 15's rough edges of the API and the CLI: each bad input is one error naming the argument, what it
got and what was expected, raised before anything loads, measures or runs."""
import re

import pytest

from tt_specdec import cli
from tt_specdec.api import SpeculativeDecoder, load_pair
from tt_specdec.bench import harness
from tt_specdec.speculative import loop

TINY = ["--pair", "tiny"]


@pytest.fixture(scope="module")
def pair():
    return load_pair("tiny")


@pytest.fixture()
def no_measuring(monkeypatch):
    """A check that comes after the cost model's measurement would cost minutes: fail the test instead."""
    import tt_specdec.api as api

    def refuse(*a, **kw):
        raise AssertionError("measured before the arguments were checked")

    monkeypatch.setattr(api, "measured", refuse)


@pytest.mark.parametrize("kwargs, kind, message", [
    (dict(k="4"), ValueError, "k: got '4', expected an int in 0..31 (0 = the target alone) or 'auto'"),
    (dict(k=4.0), ValueError, "k: got 4.0, expected an int in 0..31"),
    (dict(k="auto", k_max=100), ValueError, "k_max: got 100, expected an int in 1..31"),
    (dict(k="auto", k_max=0), ValueError, "k_max: got 0, expected an int in 1..31"),
    (dict(k=2, eos_token_id=10 ** 6), ValueError, "eos_token_id: got 1000000, expected None or a token id in 0..255"),
    (dict(k=2, eos_token_id=-5), ValueError, "eos_token_id: got -5, expected None or a token id in 0..255"),
])
def test_decoder_arguments_are_named(pair, no_measuring, kwargs, kind, message):
    with pytest.raises(kind, match="^" + re.escape(message)):
        SpeculativeDecoder(pair, "model", **kwargs).generate("ab", 4)


@pytest.mark.parametrize("seed, kind, message", [
    (2 ** 70, ValueError, "seed: got 1180591620717411303424, expected an int in 0..2**63-1"),
    (-1, ValueError, "seed: got -1, expected an int in 0..2**63-1"),
    (1.5, TypeError, "seed: got 1.5 (float), expected an int"),
])
def test_seed_is_checked_before_anything_runs(pair, no_measuring, seed, kind, message):
    dec = SpeculativeDecoder(pair, "model", k="auto")
    with pytest.raises(kind, match="^" + re.escape(message)):
        dec.generate("ab", 4, seed=seed)
    with pytest.raises(kind, match="^" + re.escape(message)):
        loop.speculative_generate(pair.target, dec.drafter, [[97, 98]], k=2, max_new_tokens=4, seed=seed)


def test_loop_refuses_an_eos_outside_the_vocabulary(pair):
    with pytest.raises(ValueError, match=r"^eos_token_id: got 256, expected None or a token id in 0\.\.255"):
        loop.generate_plain(pair.target, [[97]], max_new_tokens=2, eos_token_id=256)


def test_prompt_must_be_utf8_text(pair):
    dec = SpeculativeDecoder(pair, "model", k=2)
    with pytest.raises(TypeError, match=r"^prompt: got bytes, expected str"):
        dec.generate(b"\xff\xfe", 4)
    with pytest.raises(ValueError, match=r"^prompt: got text that is not valid UTF-8"):
        dec.generate("ok \udcff", 4)


@pytest.mark.parametrize("argv, message", [
    # undecodable bytes in argv arrive as lone surrogates (PEP 383)
    (["generate", "\udcff\udcfe", *TINY], "prompt: got text that is not valid UTF-8"),
    (["generate", "x", *TINY, "--seed", str(2 ** 70)], "--seed: got 1180591620717411303424, expected an int in 0..2**63-1"),
    (["bench", *TINY, "--k", "1000"], "ks: got [1000], expected a non-empty list of ints in 1..31 or 'auto'"),
    (["bench", *TINY, "--json", "/nonexistent/x.json"],
     "--json: got '/nonexistent/x.json', whose folder /nonexistent does not exist"),
    (["bench", *TINY, "--plot", "/nonexistent/x.png"], "--plot: got '/nonexistent/x.png', whose folder"),
])
def test_cli_refuses_before_loading_or_running(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load", lambda args: pytest.fail("loaded the models before checking the arguments"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tt-specdec: error: {message}") and err.count("\n") == 1


def test_bench_json_naming_a_folder_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load", lambda args: pytest.fail("loaded the models before checking the arguments"))
    assert cli.main(["bench", *TINY, "--json", str(tmp_path)]) == 2
    assert f"--json: got '{tmp_path}', a directory" in capsys.readouterr().err


def test_bench_writes_json_where_it_was_checked(tmp_path):
    harness.check_output_path("--json", str(tmp_path / "x.json"))  # a new file in an existing folder: fine


def test_threads_beyond_the_cores_are_capped_with_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(cli, "available_cores", lambda: 2)
    assert cli.main(["generate", "ab", *TINY, "--k", "2", "--max-new-tokens", "3", "--threads", "64"]) == 0
    err = capsys.readouterr().err
    assert "tt-specdec: warning: --threads 64 is more than the 2 cores this process may use; using 2" in err
    from tt_specdec.models.cpu_llama import _cpu

    assert _cpu().threads() == 2
    cli.main(["generate", "ab", *TINY, "--k", "2", "--max-new-tokens", "1", "--threads", "1"])  # as the suite runs


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_generate", interrupted)
    assert cli.main(["generate", "ab", *TINY]) == 130
    assert capsys.readouterr().err == "\ntt-specdec: interrupted\n"
