"""The card path's behaviour on a machine without a card or without ttnn (every developer's and
CI's machine here): it says what is missing instead of failing obscurely. With a card these
assertions switch to what the card reports."""
import subprocess
import sys

import pytest
import torch

from tt_specdec import ops
from tt_specdec.cli import main
from tt_specdec.runtime import device


def test_importing_tt_specdec_does_not_import_ttnn():
    code = ("import sys, tt_specdec, tt_specdec.ops, tt_specdec.runtime.device, tt_specdec.cli, tt_specdec.bench.card; "
            "print('ttnn' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


@pytest.mark.skipif(device.ttnn_version() is not None, reason="ttnn is installed here")
def test_device_backend_without_ttnn_says_what_needs_it():
    with pytest.raises(ImportError, match=r"needs ttnn: pip install 'tt_specdec\[tt\]' \(ttnn==0.81.1"):
        ops.accept_prefix(torch.randn(1, 3, 40), torch.tensor([[1, 2]]), backend="device")


def test_info_reports_ttnn_card_and_checks(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    version = device.ttnn_version()
    assert f"ttnn      {version or 'not installed'}" in out
    assert ("card      found" in out) == device.card_present()
    assert "conformance  real ttnn 0.81.1 accepts every program description" in out
    if device.unavailable_reason():
        assert f"card         does not apply here: {device.unavailable_reason()}" in out
    else:
        assert "card         applies: pytest --device" in out


@pytest.mark.skipif(device.unavailable_reason() is None, reason="a card is present: tests/device runs the bench")
def test_bench_device_skips_with_the_reason(capsys):
    assert main(["bench", "--device", "--k", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"tt-specdec bench --device: skipped: {device.unavailable_reason()}"
