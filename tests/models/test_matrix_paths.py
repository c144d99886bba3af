"""The CPU engine's matrix paths (csrc/cpu/matrix_path.cpp, linear_<path>.cpp): chosen at run time from
cpuid, one per model, forced with TT_SPECDEC_CPU_PATH; each path batch-invariant on its own. The
decoder-level tests of every path this CPU has are in test_cpu_llama.py (its fixtures run per path)."""
import os
import subprocess
import sys

import pytest
import torch

from tt_specdec import _cpu
from tt_specdec.models.cpu_llama import PackedLinear, matrix_path, matrix_paths

PATHS = matrix_paths()
ALL = ("portable", "avx2", "avx512_bf16", "amx")


def test_paths_detected_in_order_and_the_default_is_one_of_them():
    assert PATHS[0] == "portable" and all(p in ALL for p in PATHS)
    assert [ALL.index(p) for p in PATHS] == sorted(ALL.index(p) for p in PATHS)
    if os.environ.get("TT_SPECDEC_CPU_PATH"):
        assert matrix_path() == os.environ["TT_SPECDEC_CPU_PATH"]
    else:
        assert matrix_path() == PATHS[-1], "the fastest path by default"


def test_x86_64_v3_machines_have_avx2():
    if os.uname().machine == "x86_64":  # the module itself is built for x86-64-v3
        assert "avx2" in PATHS


def run_python(code: str, path: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TT_SPECDEC_CPU_PATH", None)
    if path is not None:
        env["TT_SPECDEC_CPU_PATH"] = path
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("path", PATHS)
def test_env_var_forces_the_process_path(path):
    code = ("from tt_specdec.models import load_tiny_pair\n"
            "from tt_specdec.models.cpu_llama import CpuLlama, matrix_path\n"
            "m = CpuLlama(load_tiny_pair()[0])\n"
            "print(matrix_path(), m.matrix_path, m.engine.path, m.head.packed.path)")
    r = run_python(code, path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [path] * 4


@pytest.mark.parametrize("path,message", [
    ("avx9", "TT_SPECDEC_CPU_PATH: got 'avx9', expected one of portable, avx2, avx512_bf16, amx"),
    *[(p, f"TT_SPECDEC_CPU_PATH: got '{p}', which this CPU cannot run") for p in ALL if p not in PATHS]])
def test_env_var_naming_a_path_this_cpu_lacks_is_refused(path, message):
    r = run_python("from tt_specdec.models.cpu_llama import matrix_path\nprint(matrix_path())", path)
    assert r.returncode != 0 and f"ValueError: {message}" in r.stderr


def test_packed_linear_refuses_a_path_this_cpu_lacks_or_an_unknown_name():
    with pytest.raises(ValueError, match="path: got 'avx9', expected one of portable, avx2, avx512_bf16, amx"):
        PackedLinear(torch.zeros(4, 4), "avx9")
    for p in ALL:
        if p not in PATHS:
            with pytest.raises(ValueError, match=f"path: got '{p}', which this CPU cannot run"):
                PackedLinear(torch.zeros(4, 4), p)


def test_portable_and_avx2_give_the_same_bits():
    if "avx2" not in PATHS:
        pytest.skip("no AVX2 on this CPU")
    g = torch.Generator().manual_seed(1)
    w, x = torch.randn(77, 130, generator=g), torch.randn(9, 130, generator=g)
    assert torch.equal(PackedLinear(w, "portable")(x), PackedLinear(w, "avx2")(x))


@pytest.mark.parametrize("path", PATHS)
def test_a_row_has_the_same_bits_at_every_row_count_and_place(path):
    """M = 1..33 crosses every register tile (6-row chunks, their tails, 16-row AMX tiles): row r of an
    M-row call equals the same row alone."""
    g = torch.Generator().manual_seed(2)
    w, x = torch.randn(200, 96, generator=g), torch.randn(33, 96, generator=g) * 3
    lin = PackedLinear(w, path)
    alone = torch.cat([lin(x[m:m + 1]) for m in range(33)])
    for M in range(1, 34):
        for start in sorted({0, 33 - M}):
            assert torch.equal(lin(x[start:start + M]), alone[start:start + M]), (M, start)


def test_a_model_refuses_linears_of_another_path():
    if len(PATHS) < 2:
        pytest.skip("one path on this CPU")
    a, b = PATHS[-1], PATHS[-2]
    g = torch.Generator().manual_seed(0)
    lin = {name: _cpu.PackedLinear(torch.randn(n, k, generator=g), a) for name, n, k in
           [("qkv", 32, 16), ("wo", 16, 16), ("gate_up", 48, 16), ("down", 16, 24)]}
    engine = _cpu.CpuModel(16, 2, 1, 8, 24, 1e-5, torch.randn(12, 8), torch.randn(12, 8), b)
    with pytest.raises(ValueError, match=f"qkv: got a PackedLinear on path {a}, expected the model's path {b}"):
        engine.add_layer(torch.ones(16), torch.ones(16), lin["qkv"], lin["wo"], lin["gate_up"], lin["down"])


@pytest.mark.skipif("amx" not in PATHS, reason="this CPU has no AMX-BF16 (or the kernel refused tile data)")
def test_amx_verify_rows_are_bit_identical_to_decodes_on_the_tiny_target():
    from tt_specdec.models import load_tiny_pair
    from tt_specdec.models.cpu_llama import CpuLlama

    target = CpuLlama(load_tiny_pair()[0], "amx")
    tokens = torch.randint(0, 256, (1, 60))
    target.allocate_cache(1, 64)
    target.forward(tokens[:, :20], torch.zeros(1, dtype=torch.long))
    verify = target.forward(tokens[:, 20:52], torch.tensor([20]))  # 32 rows: two AMX tiles
    decode = torch.cat([target.forward(tokens[:, 20 + t:21 + t], torch.tensor([20 + t])) for t in range(32)], 1)
    assert torch.equal(verify, decode)
