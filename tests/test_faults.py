"""Fault injection: every cache corrupted every way, every long phase interrupted, processes racing on the
cost cache. Nothing stays broken (the next call rebuilds, with one line naming the file) and nothing is
lost (no other entry dropped, no temporary file left behind).

Small stand-ins keep it fast: a tiny synthetic GGUF (weights and tokenizer) for the SmolLM2 caches, a
fake measurement for the cost cache, the tiny pair for the CLI runs."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from tt_specdec.runtime import cachefile
from tt_specdec.speculative import measure as measure_mod
from tt_specdec.speculative.cost import CostModel

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = CostModel(c=0.1, d0=0.05, v=(1.0, 1.1, 1.2), o=0.01, o0=0.02, o_plain=0.03)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TT_SPECDEC_CACHE", str(tmp_path))
    return tmp_path


def leftovers(folder: pathlib.Path) -> list[str]:
    """Temporary files or build folders anywhere under `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp")
                  or p.name.startswith(".build-"))


# the six ways a cache file goes bad; each takes a valid file at `path` (or none) and spoils it
def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def garbage(path):
    path.write_bytes(np.random.default_rng(0).bytes(max(path.stat().st_size, 64)))


def empty(path):
    path.write_bytes(b"")


def wrong_type(path):
    path.write_text(json.dumps(["a", "list", 1]))


def directory(path):
    path.unlink()
    (path / "inside").mkdir(parents=True)


CORRUPTIONS = {"truncated": truncated, "garbage": garbage, "empty": empty, "wrong type": wrong_type,
               "directory": directory}


# ---- cost_models.json ------------------------------------------------------------------------------

class Target:  # what describe() reads: a class name, a config, a dtype
    cfg = "fake"
    weight_dtype = "float32"


class Drafter:
    pass


@pytest.fixture()
def fake_measure(monkeypatch):
    calls = []
    monkeypatch.setattr(measure_mod, "measure", lambda *a, **kw: calls.append(kw) or MODEL)
    monkeypatch.setattr(measure_mod, "run_queue_wait", lambda: 0.0, raising=False)  # an idle machine unless told
    return calls


def foreign(path):  # valid JSON, another tool's (or an older version's) file
    path.write_text(json.dumps({"0123456789abcdef": {"c": 0.1, "d0": 0.0, "v": [1.0]}}))


@pytest.mark.parametrize("how", [*CORRUPTIONS, "foreign"])
def test_a_bad_cost_cache_is_rebuilt_with_a_notice(how, cache, fake_measure, capsys):
    path = cache / "cost_models.json"
    measure_mod.measured(Target(), Drafter(), batch_size=2)  # another entry, which a corruption loses
    capsys.readouterr()
    {**CORRUPTIONS, "foreign": foreign}[how](path)
    assert measure_mod.measured(Target(), Drafter()) == MODEL
    err = capsys.readouterr().err
    assert f"cache file {path} is invalid" in err and "rebuilding it" in err
    assert len(fake_measure) == 2
    # healed: a valid file, read silently from now on
    assert measure_mod.measured(Target(), Drafter()) == MODEL
    assert capsys.readouterr().err == "" and len(fake_measure) == 2
    assert path.is_file() and not leftovers(cache)


def test_a_bad_entry_is_measured_again_and_the_others_kept(cache, fake_measure, capsys):
    path = cache / "cost_models.json"
    measure_mod.measured(Target(), Drafter(), batch_size=1)
    measure_mod.measured(Target(), Drafter(), batch_size=2)
    doc = json.loads(path.read_text())
    first = sorted(doc["data"])[0]
    doc["data"][first]["model"]["c"] = float("nan")
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    for b in (1, 2):
        measure_mod.measured(Target(), Drafter(), batch_size=b)
    err = capsys.readouterr().err
    assert f"cache file {path} is invalid (entry {first}:" in err
    assert len(fake_measure) == 3, "only the bad entry is measured again"
    assert len(json.loads(path.read_text())["data"]) == 2


def test_a_measurement_on_busy_cores_is_not_cached_for_good(cache, fake_measure, monkeypatch, capsys):
    """Contention = run-queue wait / wall time while measuring. Above CONTENDED the entry is provisional:
    the next runs measure again, MAX_TRIES in all, keeping the least contended."""
    waits = iter([0.0, 10.0, 0.0, 10.0, 0.0, 10.0])  # 10 s of waiting per measurement: busy
    monkeypatch.setattr(measure_mod, "run_queue_wait", lambda: next(waits))
    for _ in range(measure_mod.MAX_TRIES):
        measure_mod.measured(Target(), Drafter())
    assert len(fake_measure) == measure_mod.MAX_TRIES
    assert "again: the last was taken on busy cores" in capsys.readouterr().err
    measure_mod.measured(Target(), Drafter())
    assert len(fake_measure) == measure_mod.MAX_TRIES, "after MAX_TRIES the least contended one stays"
    entry, = json.loads((cache / "cost_models.json").read_text())["data"].values()
    assert entry["tries"] == measure_mod.MAX_TRIES and entry["contention"] > measure_mod.CONTENDED


def test_a_measurement_on_idle_cores_is_cached_at_once(cache, fake_measure):
    measure_mod.measured(Target(), Drafter())
    measure_mod.measured(Target(), Drafter())
    assert len(fake_measure) == 1


def test_interrupted_cost_measurement_writes_nothing_and_the_next_run_measures(cache, fake_measure, monkeypatch):
    measure_mod.measured(Target(), Drafter(), batch_size=2)
    before = (cache / "cost_models.json").read_bytes()

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(measure_mod, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        measure_mod.measured(Target(), Drafter())
    assert (cache / "cost_models.json").read_bytes() == before and not leftovers(cache)
    monkeypatch.setattr(measure_mod, "measure", lambda *a, **kw: MODEL)
    assert measure_mod.measured(Target(), Drafter()) == MODEL  # the lock was released


def test_interrupted_write_leaves_the_old_file_and_no_temporary(cache):
    path = cache / "x.json"
    cachefile.write_json(path, "k", 1, {"a": 1})

    def half_then_interrupt(tmp):
        tmp.write_text('{"kind": "k", "vers')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cachefile.atomic_write(path, half_then_interrupt)
    assert cachefile.read_json(path, "k", 1) == {"a": 1} and not leftovers(cache)


RACER = textwrap.dedent("""
    import sys, time
    from tt_specdec.speculative import measure as m
    from tt_specdec.speculative.cost import CostModel

    class Target:
        cfg, weight_dtype = "fake", "float32"

    class Drafter:
        pass

    def slow(*a, **kw):
        time.sleep(0.01)  # wide enough for the two processes' read-modify-writes to interleave
        return CostModel(c=0.1, d0=0.0, v=(1.0, 1.2))

    m.measure, m.run_queue_wait = slow, lambda: 0.0
    first = int(sys.argv[1])
    for b in range(first, first + 8):
        m.measured(Target(), Drafter(), batch_size=b)
""")

READER = textwrap.dedent("""
    import sys, time
    from tt_specdec.speculative import measure as m
    from tt_specdec.runtime import cachefile
    path, bad, reads, done = m.cache_path(), 0, 0, sys.argv[1]
    import os
    while not os.path.exists(done):  # until the writers are done
        try:
            cachefile.read_json(path, m.COST_KIND, m.COST_VERSION)
            reads += 1
            time.sleep(0.0005)  # leave the writers a core
        except cachefile.Invalid:
            bad += 1
    print(reads, bad)
""")


def test_two_processes_writing_the_cost_cache_lose_nothing(cache):
    env = {**os.environ, "TT_SPECDEC_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    done = cache / "done"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(done)], env=env, stdout=subprocess.PIPE, text=True)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(first)], env=env, stderr=subprocess.DEVNULL)
              for first in (1, 101)]
    assert [p.wait(timeout=60) for p in racers] == [0, 0]
    done.touch()
    reads, bad = map(int, reader.communicate(timeout=60)[0].split())
    table = measure_mod.read_cost_table(cache / "cost_models.json")
    assert len(table) == 16, "each process's 8 entries are all there"
    assert bad == 0 and reads > 0, "a concurrent reader never sees half a file"
    assert not [p for p in leftovers(cache) if p != "done"]


# ---- the SmolLM2 weights cache (models/gguf.py), on a tiny synthetic GGUF --------------------------

def write_tiny_gguf(path: pathlib.Path, seed: int = 0, V: int = 300, d: int = 32, ffn: int = 64,
                    extra: dict | None = None) -> pathlib.Path:
    """A one-layer llama GGUF (fp32 tensors) with a small byte-level tokenizer: SmolLM2's layout, tiny;
    `extra` tensors {name: array} added as they are."""
    gguf = pytest.importorskip("gguf")
    from tt_specdec.models.hf_tokenizer import byte_alphabet

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(d)
    w.add_block_count(1)
    w.add_feed_forward_length(ffn)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(V)
    tokens = [byte_alphabet()[b] for b in range(256)] + ["he", "<|end|>"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_merges(["h e"])
    w.add_token_types([1] * 257 + [3])
    w.add_eos_token_id(257)
    shapes = {"token_embd.weight": (V, d), "output_norm.weight": (d,), "output.weight": (V, d),
              "blk.0.attn_norm.weight": (d,), "blk.0.attn_q.weight": (d, d), "blk.0.attn_k.weight": (d // 2, d),
              "blk.0.attn_v.weight": (d // 2, d), "blk.0.attn_output.weight": (d, d), "blk.0.ffn_norm.weight": (d,),
              "blk.0.ffn_gate.weight": (ffn, d), "blk.0.ffn_up.weight": (ffn, d), "blk.0.ffn_down.weight": (d, ffn)}
    for name, shape in shapes.items():
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))
    for name, value in (extra or {}).items():
        w.add_tensor(name, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory):
    """(a GGUF, another GGUF of the same name with other weights)."""
    folder = tmp_path_factory.mktemp("gguf")
    (folder / "other").mkdir()
    return write_tiny_gguf(folder / "tiny.gguf"), write_tiny_gguf(folder / "other" / "tiny.gguf", seed=1)


def weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(model, reference) -> bool:
    return all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


def flip_data_bytes(path):
    """Same size, the header intact, a few tensor bytes changed: what only a checksum catches."""
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) - 64, len(raw) - 32):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def foreign_safetensors(path):
    """A valid weights file with a valid config, another model's: the shipped tiny draft."""
    from tt_specdec.models.loaders import WEIGHTS

    path.write_bytes((WEIGHTS / "tiny_draft.safetensors").read_bytes())


@pytest.mark.parametrize("how", [*CORRUPTIONS, "same-size corruption", "foreign", "from another GGUF"])
def test_a_bad_weights_cache_is_rebuilt_with_a_notice(how, ggufs, cache, capsys):
    from tt_specdec.models.gguf import load_gguf_llama

    src, other = ggufs
    reference = weights(load_gguf_llama(src, cache=False))
    load_gguf_llama(src)
    (cached,) = cache.glob("tiny*.safetensors")  # whatever the naming
    if how == "from another GGUF":
        load_gguf_llama(other)  # the same name: the other GGUF's cache replaces this one's
    else:
        {**CORRUPTIONS, "same-size corruption": flip_data_bytes, "foreign": foreign_safetensors}[how](cached)
    capsys.readouterr()
    assert same_weights(load_gguf_llama(src), reference)
    err = capsys.readouterr().err
    assert f"cache file {cached} is invalid" in err and err.count("\n") == 1
    assert same_weights(load_gguf_llama(src), reference) and capsys.readouterr().err == ""
    assert not leftovers(cache)


def test_interrupted_weights_rebuild_leaves_no_temporary_and_heals(ggufs, cache, monkeypatch):
    from tt_specdec.models import gguf as gguf_mod

    src, _ = ggufs
    real_save = gguf_mod.save_file

    def save_half_then_interrupt(state, name, metadata=None):
        pathlib.Path(name).write_bytes(b"\0" * 1000)  # part of the file written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_mod, "save_file", save_half_then_interrupt)
    for _ in range(3):
        with pytest.raises(KeyboardInterrupt):
            gguf_mod.load_gguf_llama(src)
    assert not leftovers(cache) and not list(cache.glob("tiny*.safetensors"))
    # a temporary file that a killed process (SIGKILL: no cleanup) left an hour ago is swept by the next build
    stale = cache / ".tiny-v2.safetensors.1234.tmp"
    stale.write_bytes(b"\0" * 100)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    monkeypatch.setattr(gguf_mod, "save_file", real_save)
    reference = weights(gguf_mod.load_gguf_llama(src, cache=False))
    assert same_weights(gguf_mod.load_gguf_llama(src), reference)
    assert not leftovers(cache)


@pytest.mark.parametrize("how", [*CORRUPTIONS, "foreign", "from another GGUF"])
def test_a_bad_tokenizer_cache_is_rebuilt_with_a_notice(how, ggufs, cache, capsys):
    from tt_specdec.models.hf_tokenizer import HFTokenizer

    src, other = ggufs
    text = "hello there<|end|>"
    expected = HFTokenizer.from_gguf(src, cache=False).encode(text)
    HFTokenizer.from_gguf(src)
    (cached,) = cache.glob("tiny*tokenizer*.json")
    if how == "from another GGUF":
        HFTokenizer.from_gguf(other)
    elif how == "foreign":
        cached.write_text(json.dumps({"backend": "{}", "eos_token_id": 0}))
    else:
        CORRUPTIONS[how](cached)
    capsys.readouterr()
    assert HFTokenizer.from_gguf(src).encode(text) == expected
    err = capsys.readouterr().err
    assert f"cache file {cached} is invalid" in err and err.count("\n") == 1
    assert HFTokenizer.from_gguf(src).encode(text) == expected and capsys.readouterr().err == ""


# ---- the emulator's compiled kernels (runtime/emu.py) ----------------------------------------------

EMU_RUN = textwrap.dedent("""
    import torch
    from tt_specdec.ops import rollback_kv
    print(rollback_kv(torch.tensor([3, 7]), torch.tensor([5, 9]), torch.tensor([1, -1]),
                      torch.tensor([[4, 6, -1], [-1, -1, -1]]), backend="emu").pos.tolist())
""")


def run_rollback_on_emu(cache: pathlib.Path) -> subprocess.CompletedProcess:
    """rollback_kv's kernels on the emulator in a new process (a process keeps the .so files it loaded mapped:
    changing one under it is not a fault a cache can heal, and not one that happens between runs)."""
    env = {**os.environ, "TT_SPECDEC_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", EMU_RUN], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def compiled_kernels(tmp_path_factory):
    """rollback_kv's kernels compiled once into a cache of their own (a compile costs seconds)."""
    pytest.importorskip("tt_specdec._emu")
    cache = tmp_path_factory.mktemp("kernels")
    r = run_rollback_on_emu(cache)
    assert r.stdout.strip() == "[5, 7]", r.stderr[-2000:]
    return cache / "kernels"


@pytest.fixture()
def kernel_build(compiled_kernels, cache):
    """A copy of the compiled kernels in this test's cache: (the emu module, their build folders)."""
    import shutil

    from tt_specdec.runtime import emu

    shutil.copytree(compiled_kernels, cache / "kernels")
    return emu, sorted(p for p in (cache / "kernels").iterdir() if p.is_dir())


def test_a_truncated_kernel_so_is_rebuilt(kernel_build, cache):
    emu, builds = kernel_build
    so = builds[0] / "kernel.so"
    truncated(so)
    stale = cache / "kernels" / ".build-killed"  # a build folder a killed process left an hour ago
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    r = run_rollback_on_emu(cache)
    assert r.stdout.strip() == "[5, 7]"
    assert f"cache file {so} is invalid" in r.stderr and r.stderr.count("\n") == 1
    assert emu._invalid_build(builds[0]) is None and not leftovers(cache)


@pytest.mark.parametrize("how", [*CORRUPTIONS, "foreign", "no build.json"])
def test_every_bad_kernel_build_is_detected(how, kernel_build):
    """Each way is caught before the .so is loaded (rebuilding each costs a compile: one is timed above)."""
    emu, builds = kernel_build
    so = builds[0] / "kernel.so"
    if how == "foreign":
        so.write_bytes((builds[1] / "kernel.so").read_bytes())  # a valid .so, another kernel's
    elif how == "no build.json":
        (builds[0] / "build.json").unlink()
    else:
        CORRUPTIONS[how](so)
    assert emu._invalid_build(builds[0]) is not None


# ---- the CLI: interrupted generation and measurement ----------------------------------------------

def cli(args: list[str], cache: pathlib.Path) -> subprocess.Popen:
    env = {**os.environ, "TT_SPECDEC_CACHE": str(cache), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tt_specdec.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def interrupt_when(proc: subprocess.Popen, stream, marker: str) -> tuple[str, str]:
    """Send SIGINT once `marker` appears on the stream (stdout or stderr); the outputs after it."""
    seen = ""
    while marker not in seen:
        ch = stream.read(1)
        assert ch, f"the process ended before {marker!r}: {seen[-500:]}"
        seen += ch
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return seen + out if stream is proc.stdout else out, seen + err if stream is proc.stderr else err


def test_ctrl_c_during_generation_is_one_line(cache):
    proc = cli(["generate", "def f(x):", "--pair", "tiny", "--k", "2", "--max-new-tokens", "400", "--raw"], cache)
    _, err = interrupt_when(proc, proc.stdout, "def f(x):")
    assert proc.returncode == 130
    assert err.strip() == "tt-specdec: interrupted" and "Traceback" not in err


def test_ctrl_c_during_cost_measurement_leaves_a_working_cache(cache):
    proc = cli(["generate", "x", "--pair", "tiny", "--k", "auto", "--max-new-tokens", "4"], cache)
    _, err = interrupt_when(proc, proc.stderr, "measuring the cost model")
    assert proc.returncode == 130 and "Traceback" not in err and err.strip().endswith("tt-specdec: interrupted")
    assert not (cache / "cost_models.json").exists() and not leftovers(cache)
