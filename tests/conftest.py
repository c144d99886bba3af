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
