"""The whole speculative step on real ttnn 0.81.1, on a mock Wormhole n150 (tools/conformance/step.py), run
from the main test suite in the conformance environment (.venv-tt: Python 3.12, ttnn, numpy, no torch; set up by
tools/conformance/setup.sh, as for test_conformance.py). Both pairs (SmolLM2-135M with its draft; Llama-3.2-1B ->
Llama-3.1-8B shapes), B = 1 and 8, k = 4, placeholder weights: every op accepted, steps 2 and 3 with program-cache
misses forbidden, each op's peak per core below the usable L1, the host reading back only the accepted counts and
tokens. Two broken fixtures must fail with ttnn's own error. Like the conformance tests these FAIL, never skip,
when the environment cannot be set up.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conformance.test_conformance import REPO, tt_python  # noqa: F401  (the fixture)

K = 4


def run_step(tt_python, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([str(tt_python), str(REPO / "tools" / "conformance" / "step.py"), *args], cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    sys.stdout.write(r.stdout[-8000:])  # the per-step figures, shown with -s and on failure
    return r


def test_speculative_step_of_both_pairs_runs_on_a_mock_n150(tt_python):  # noqa: F811
    r = run_step(tt_python)
    out = r.stdout
    assert r.returncode == 0, (out + r.stderr)[-8000:]
    assert "speculative step on a mock n150: OK, 0 failure(s)" in out
    for pair in ("smollm2", "llama3"):
        for B in (1, 8):
            block = [b for b in re.split(r"^ok: ", out, flags=re.M)
                     if b.startswith(f"{pair} ") and f" B={B} k={K}" in b.split("\n")[0]]
            assert len(block) == 1, f"{pair} B={B} missing:\n{out[-4000:]}"
            lines = block[0]
            steps = re.findall(r"step (\d) \(([^)]*)\): (\d+) ops, host readback (\d+) B", lines)
            assert [s[0] for s in steps] == ["1", "2", "3", "4"], lines
            assert "misses forbidden" in steps[1][1] and "misses forbidden" in steps[2][1]
            assert len({s[2] for s in steps}) == 1, steps  # the same ops every step
            # only num_accepted [B] and output_tokens [B, k+1], int32
            assert [int(s[3]) for s in steps[:3]] == [4 * B + 4 * B * (K + 1)] * 3, steps
            peaks = re.findall(r"^\s+(\w+)\s+([\d,]+) B \(CB", lines, re.M)
            names = {p[0] for p in peaks}
            assert {"verify_attention", "kv_write", "accept_prefix", "rollback_kv", "linear", "rms_norm"} <= names
            assert all(int(p[1].replace(",", "")) < 1_463_968 for p in peaks), peaks


@pytest.mark.parametrize("fixture, message", [
    ("memory_config", "for height sharded"),  # a height-sharded L1 output without a shard spec: ttnn refuses it
    ("l1_budget", "beyond max L1 size"),  # an oversized circular buffer: ttnn's allocator refuses it
])
def test_broken_step_fails_with_ttnns_own_error(tt_python, fixture, message):  # noqa: F811
    r = run_step(tt_python, "--break", fixture, "--pair", "smollm2", "--batch", "1")
    assert r.returncode == 1, r.stdout[-3000:]
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL:")]
    assert len(fails) == 1, fails
    assert message in fails[0], fails
