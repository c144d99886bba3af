"""The device step's trace on real ttnn 0.81.1 on a mock Wormhole n150 (tools/conformance/step_trace.py, run in
the conformance environment like test_device_step.py): trace cannot run there (ttnn's execute_trace crashes on the
mock), so DeviceStep takes the untraced path, says why once, and gives what DeviceStep(trace=False) gives; its
step body reads and writes nothing on the host (only the two readbacks after it); the program cache is the same
after steps 2, 3 and 4 with misses forbidden. The traced path's control flow: tests/speculative/
test_device_step_trace.py; the trace itself replays only on a card (tests/device/). FAILS, never skips, when the
environment cannot be set up.
"""
from __future__ import annotations

import re
import subprocess
import sys

from tests.conformance.test_conformance import REPO, tt_python  # noqa: F401  (the fixture)


def test_untraced_fallback_on_the_mock_says_why_and_reads_only_the_results(tt_python):  # noqa: F811
    r = subprocess.run([str(tt_python), str(REPO / "tools" / "conformance" / "step_trace.py")], cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    out = r.stdout
    sys.stdout.write(out[-4000:])  # shown with -s and on failure
    assert r.returncode == 0, (out + r.stderr)[-6000:]
    assert re.search(r"^fallback: a mock device \(TT_METAL_MOCK_CLUSTER_DESC_PATH is set\)", out, re.M), out
    assert re.search(r"^trace=True: refused: trace: got True, .*TT_METAL_MOCK_CLUSTER_DESC_PATH", out, re.M), out
    assert "said: 1 time(s) in 4 steps" in out
    steps = re.findall(r"^step (\d): body host reads (\d+), body host writes (\d+); step host reads (\d+), "
                       r"writes (\d+); program cache entries (\d+); (\d+) ops", out, re.M)
    assert [s[0] for s in steps] == ["1", "2", "3", "4"], out
    assert all(s[1:5] == ("0", "0", "2", "0") for s in steps), steps  # reads: num_accepted, output_tokens
    assert len({s[5] for s in steps[1:]}) == 1 and len({s[6] for s in steps}) == 1, steps
    assert "same as trace=False: yes" in out
    assert "trace fallback on a mock n150: OK" in out
