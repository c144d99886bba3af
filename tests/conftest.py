"""Shared fixtures: the tiny byte-level pair loaded once per session, and the near-tie log
that the greedy lossless tests fill and the terminal summary reports."""
import pytest
import torch

from tt_specdec.models import load_tiny_pair

# the tiny models run fastest on one thread, and the 2-core machine is shared
torch.set_num_threads(1)

NEAR_TIES: list[str] = []  # one line per greedy divergence proven to be a numerical near-tie


@pytest.fixture(scope="session")
def tiny_pair():
    """(target, draft) in fp32. Shared: every generate call allocates its own cache."""
    return load_tiny_pair()


@pytest.fixture(scope="session")
def tiny_pair_bf16():
    return load_tiny_pair(torch.bfloat16)


@pytest.fixture(scope="session")
def near_tie_log() -> list[str]:
    return NEAR_TIES


def pytest_terminal_summary(terminalreporter):
    ran_lossless = any("test_lossless" in r.nodeid for r in terminalreporter.stats.get("passed", []))
    if NEAR_TIES or ran_lossless:
        terminalreporter.write_sep("-", f"greedy divergences proven near-ties: {len(NEAR_TIES)}")
        for line in NEAR_TIES:
            terminalreporter.write_line(line)


# ---- `pytest --device`: the op property tests on a Tenstorrent card (tests/device/) ------------

def pytest_addoption(parser):
    parser.addoption("--device", action="store_true", default=False,
                     help="also run the tests marked `device`: the kernels on a Tenstorrent card through "
                          "ttnn.generic_op (needs ttnn 0.81.1: pip install 'tt_specdec[tt]', and a card)")


def pytest_configure(config):
    config.addinivalue_line("markers", "device: runs the kernels on a Tenstorrent card through ttnn.generic_op "
                                       "(selected by --device; skipped with the reason when no card is found)")


def device_skip_reason(config) -> str | None:
    from tt_specdec.runtime import device

    if not config.getoption("--device"):
        return "the card path runs with `pytest --device` (a Tenstorrent card and ttnn 0.81.1)"
    if device.ttnn_version() is None:
        return f"--device: ttnn is not installed; {device.INSTALL_HINT}"
    if not device.card_present():
        return "--device: no Tenstorrent card found (/dev/tenstorrent is missing or empty)"
    return None


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("device") is not None]
    reason = device_skip_reason(config) if marked else None
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))
