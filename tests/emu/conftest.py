import pytest

pytest.importorskip("tt_specdec._emu", reason="the emulator module is not built (pip install -e .)")
