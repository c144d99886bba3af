"""engine="ttnn" (the whole step on a Tenstorrent card) without a card: refused before any weight is copied,
with the reason; `generate --device` says why and exits 2. On a card: tests/device/test_device_decoder.py."""
import pytest

from tt_specdec.api import SpeculativeDecoder, load_pair
from tt_specdec.cli import main
from tt_specdec.runtime import device

pytestmark = pytest.mark.skipif(device.unavailable_reason() is None, reason="a card is present: see tests/device")


def test_engine_ttnn_without_a_card_says_why():
    with pytest.raises(RuntimeError, match="needs a Tenstorrent card and ttnn 0.81.1: "):
        SpeculativeDecoder(load_pair("tiny"), "model", 4, engine="ttnn")


def test_unknown_engine_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"engine: got 'gpu', expected one of \('host', 'ttnn'\)"):
        SpeculativeDecoder(load_pair("tiny"), "model", 4, engine="gpu")


def test_generate_device_without_a_card_exits_2_with_the_reason(capsys):
    assert main(["generate", "x", "--pair", "tiny", "--device", "--k", "2"]) == 2
    assert "tt-specdec generate --device: " in capsys.readouterr().err
