"""The conformance check against the real ttnn 0.81.1 (tools/conformance/), run from the main
test suite: its own Python 3.12 environment (.venv-tt, with ttnn and numpy, no torch) is set up
by tools/conformance/setup.sh (apt-get + pip; quick once done), then check.py runs on every
op's descriptions and kernels, and once per broken fixture (tests/conformance/broken/), each of
which must make its check fail with a message naming the kernel.

When the environment cannot be set up (no apt-get, no package index, no Python 3.12 / 3.10)
these tests FAIL with the setup's message: they never skip.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).resolve().parent / "broken"
EMU_BROKEN = Path(__file__).resolve().parents[1] / "emu" / "broken"
VENV = Path(os.environ.get("TT_SPECDEC_TT_VENV", REPO / ".venv-tt"))


@pytest.fixture(scope="module")
def tt_python() -> Path:
    r = subprocess.run(["bash", str(REPO / "tools" / "conformance" / "setup.sh")], cwd=REPO,
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        pytest.fail(f"tools/conformance/setup.sh failed (exit {r.returncode}); the conformance check needs "
                    f"apt-get (clang-19, riscv64 headers) and pip (ttnn==0.81.1, Python 3.12 or 3.10):\n"
                    f"{r.stderr[-3000:]}", pytrace=False)
    return VENV / "bin" / "python"


def run_check(tt_python: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([str(tt_python), str(REPO / "tools" / "conformance" / "check.py"), *args], cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    sys.stdout.write(r.stdout[-6000:])  # shown by pytest on failure (and with -s)
    return r


def counts(out: str) -> dict[str, tuple[int, ...]]:
    got = {}
    for key, pattern in (("descriptions", r"descriptions accepted: (\d+)/(\d+)"),
                         ("dataflow", r"dataflow kernels syntax-checked: (\d+) \((\d+) kernel builds\)"),
                         ("compute", r"compute calls checked: (\d+) \(in (\d+) compute kernels; (\d+) emulator")):
        m = re.search(pattern, out)
        assert m, f"the check did not print its {key} count:\n{out[-3000:]}"
        got[key] = tuple(int(g) for g in m.groups())
    return got


def ops_with_builders() -> list[str]:
    return [p.parent.name for p in (REPO / "tt_specdec" / "ops").glob("*/program.py")]


def test_every_description_and_kernel_conforms(tt_python):
    r = run_check(tt_python)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"conformance check failed:\n{out[-8000:]}"
    c = counts(r.stdout)
    accepted, total = c["descriptions"]
    assert accepted == total and total >= 3 * len(ops_with_builders()), c  # several shapes per op
    # every reader / writer kernel of an op with a description builder was compiled by clang-19
    dataflow = [p for op in ops_with_builders() for p in (REPO / "tt_specdec" / "ops" / op / "kernels").glob("*.cpp")
                if p.name.startswith(("reader", "writer"))]
    assert c["dataflow"][0] >= len(dataflow) > 0, (c, dataflow)
    assert c["dataflow"][1] >= total, c  # at least one kernel build per description
    calls, kernels, emu_decls = c["compute"]
    assert emu_decls > 0, c
    assert calls > 0 and kernels > 0, c  # the emulator's compute test kernels at least
    assert "conformance: OK, 0 failure(s)" in r.stdout


def test_every_description_conforms_on_a_blackhole_mock(tt_python):
    """Blackhole aligns DRAM pages to 64 bytes: the descriptions take the card's alignment from ttnn."""
    r = run_check(tt_python, "--arch", "blackhole_p150")
    assert r.returncode == 0, f"conformance check (blackhole_p150) failed:\n{(r.stdout + r.stderr)[-8000:]}"
    assert "mock blackhole_p150" in r.stdout
    accepted, total = counts(r.stdout)["descriptions"]
    assert accepted == total and total >= 3 * len(ops_with_builders()), (accepted, total)


def test_broken_description_is_rejected_naming_its_kernels(tt_python):
    r = run_check(tt_python, "--only-extra", "--description", str(BROKEN / "description_l1_overflow.py"))
    assert r.returncode == 1, r.stdout[-3000:]
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL:")]
    assert len(fails) == 1, fails
    assert "reader_rollback_kv.cpp" in fails[0] and "writer_rollback_kv.cpp" in fails[0], fails
    assert "beyond max L1 size" in fails[0], fails  # ttnn's own message: rejected by ttnn, not by us
    assert "descriptions accepted: 0/1" in r.stdout


def test_broken_dataflow_kernel_fails_the_syntax_check(tt_python):
    r = run_check(tt_python, "--only-extra", "--kernel", f"reader:{BROKEN / 'reader_wrong_api.cpp'}")
    assert r.returncode == 1, r.stdout[-3000:]
    fails = [ln for ln in r.stdout.split("\nFAIL: ")[1:]]
    assert len(fails) == 1, r.stdout[-3000:]
    assert fails[0].startswith("dataflow kernel reader_wrong_api.cpp"), fails
    assert "reader_wrong_api.cpp:11:5: error: no matching function for call to 'noc_async_read'" in fails[0], fails
    assert "descriptions accepted: 1/1" in r.stdout  # the description itself is fine: only the call is wrong


def test_broken_compute_kernel_fails_the_compute_call_check(tt_python):
    r = run_check(tt_python, "--only-extra", "--kernel", f"compute:{BROKEN / 'compute_wrong_call.cpp'}")
    assert r.returncode == 1, r.stdout[-3000:]
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL:")]
    assert len(fails) == 2, fails
    assert fails[0].startswith("FAIL: compute kernel compute_wrong_call.cpp:16: add_tiles called with 4 argument")
    assert fails[1].startswith("FAIL: compute kernel compute_wrong_call.cpp:17: calls exp_tiles, which neither")


def test_call_outside_the_kernels_include_chain_fails(tt_python):
    # the emulator's fixture for the same rule (tests/emu/test_emu_compute.py): one kernel, both checks
    kernel = EMU_BROKEN / "compute_copy_without_include.cpp"
    r = run_check(tt_python, "--only-extra", "--kernel", f"compute:{kernel}")
    assert r.returncode == 1, r.stdout[-3000:]
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL:")]
    assert len(fails) == 2, fails
    for f, (name, line) in zip(fails, (("copy_init", 13), ("copy_tile", 18))):
        assert re.match(f"FAIL: compute kernel compute_copy_without_include.cpp:{line}: {name} is declared in "
                        r"(\S+ / )*api/compute/tile_move_copy.h, which the kernel's #include chain does not reach",
                        f), fails


def test_dataflow_warning_is_an_error_as_in_the_jit(tt_python):
    r = run_check(tt_python, "--only-extra", "--kernel", f"reader:{BROKEN / 'reader_dropped_comparison.cpp'}")
    assert r.returncode == 1, r.stdout[-3000:]
    fails = [ln for ln in r.stdout.split("\nFAIL: ")[1:]]
    assert len(fails) == 1, r.stdout[-3000:]
    assert fails[0].startswith("dataflow kernel reader_dropped_comparison.cpp"), fails
    assert "reader_dropped_comparison.cpp:12:14: error: equality comparison result unused" in fails[0], fails


def test_emulator_header_including_more_than_the_real_one_fails(tt_python):
    r = run_check(tt_python, "--only-extra", "--emu-include", str(BROKEN / "emu_include"))
    assert r.returncode == 1, r.stdout[-3000:]
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL:")]
    assert fails == ["FAIL: emulator header api/compute/compute_kernel_api.h includes api/compute/common.h, which "
                     "ttnn 0.81.1's api/compute/compute_kernel_api.h does not reach: kernels would compile here and "
                     "not on a card",
                     "FAIL: emulator header api/compute/compute_kernel_api.h includes api/compute/tile_move_copy.h, "
                     "which ttnn 0.81.1's api/compute/compute_kernel_api.h does not reach: kernels would compile here "
                     "and not on a card"], fails
