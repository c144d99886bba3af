"""The traced device step (speculative/device_step.py) without a card: when a trace is used is decided from the
environment and how the device was opened (runtime/device.py trace_unavailable_reason), and the step's control
flow around a stand-in ttnn that records the trace calls: step 1 runs the body untraced (the compile run), step 2
captures it once and replays it, later steps only replay, the host reads back after each replay; untraced, the
reason is said once. What real ttnn does with it: tests/conformance/test_device_trace.py (mock n150, untraced)
and, on a card, tests/device/."""
from types import SimpleNamespace

import pytest

from tt_specdec.api import SpeculativeDecoder, load_pair
from tt_specdec.cli import main
from tt_specdec.runtime import device as D
from tt_specdec.speculative import device_step
from tt_specdec.speculative.device_step import DeviceStep


class RecordingTtnn:
    """The four trace calls of ttnn, recorded in `calls`; `capturing` is True between begin and end."""

    def __init__(self):
        self.calls, self.capturing = [], False

    def begin_trace_capture(self, dev, *, cq_id):
        self.calls.append(("begin", cq_id))
        self.capturing = True
        return f"trace{len(self.calls)}"

    def end_trace_capture(self, dev, trace_id, *, cq_id):
        self.calls.append(("end", trace_id))
        self.capturing = False

    def execute_trace(self, dev, trace_id, *, cq_id, blocking):
        self.calls.append(("execute", trace_id))

    def release_trace(self, dev, trace_id):
        self.calls.append(("release", trace_id))


def make_step(monkeypatch, reason=None, trace=None, B=2, k=3):
    """A DeviceStep over stand-in decoders whose body and readback are recorded into ttnn's call list."""
    monkeypatch.setattr(D, "trace_unavailable_reason", lambda dev: reason)
    monkeypatch.setattr(device_step, "_said", set())
    ttnn = RecordingTtnn()
    model = SimpleNamespace(B=B, vocab_size=50, ttnn=ttnn, ops=None, dev=object())
    step = DeviceStep(model, SimpleNamespace(**vars(model)), k, trace=trace)
    step.state = "state"  # start() (prefill) is not what these tests look at
    runs = []

    def body():
        ttnn.calls.append(("body", ttnn.capturing))
        runs.append(len(runs))
        return (f"n{len(runs)}", f"out{len(runs)}")  # the tensors this run of the body allocated

    def readback(x):
        ttnn.calls.append(("read", x))
        return [0] * B if x.startswith("n") else [[0] * (k + 1)] * B

    step.body, step.readback = body, readback
    return step, ttnn


def test_step_one_compiles_untraced_step_two_captures_once_then_only_replays(monkeypatch):
    step, ttnn = make_step(monkeypatch)
    assert step.trace_reason is None
    step.step()
    assert ttnn.calls == [("body", False), ("read", "n1"), ("read", "out1")]
    ttnn.calls.clear()
    step.step()
    # captured (the body runs only recorded), replayed, and what the capture allocated is read after the replay
    assert ttnn.calls == [("begin", 0), ("body", True), ("end", "trace1"), ("execute", "trace1"),
                          ("read", "n2"), ("read", "out2")]
    ttnn.calls.clear()
    for _ in range(3):
        step.step()
    assert ttnn.calls == [("execute", "trace1"), ("read", "n2"), ("read", "out2")] * 3
    assert list(step.traces) == [(2, 3)]  # one trace per (B, k)
    step.release()
    assert ttnn.calls[-1] == ("release", "trace1") and step.traces == {}


@pytest.mark.parametrize("reason, trace, said", [("a mock device (why)", None, True), ("trace=False", False, False)])
def test_untraced_every_step_runs_the_body_and_says_why_once(monkeypatch, capsys, reason, trace, said):
    step, ttnn = make_step(monkeypatch, reason if trace is None else None, trace)
    for _ in range(4):
        step.step()
    assert [c for c in ttnn.calls if c[0] != "read"] == [("body", False)] * 4
    err = capsys.readouterr().err
    assert err.count("the device step runs untraced") == (1 if said else 0)
    if said:
        assert reason in err


@pytest.mark.parametrize("trace", [None, True])
def test_a_failed_capture_is_released_and_not_tried_again(monkeypatch, capsys, trace):
    step, ttnn = make_step(monkeypatch, trace=trace)
    body = step.body

    def body_failing_under_capture():
        if ttnn.capturing:
            raise RuntimeError("op X cannot be captured")
        return body()

    step.body = body_failing_under_capture
    step.step()  # the compile run
    ttnn.calls.clear()
    if trace:  # required: the failure is the caller's to see
        with pytest.raises(RuntimeError, match="op X cannot be captured"):
            step.step()
    else:  # this step and every later one run untraced, said once
        for _ in range(3):
            step.step()
        assert "the trace capture failed (RuntimeError: op X cannot be captured)" in capsys.readouterr().err
    assert ttnn.calls[:3] == [("begin", 0), ("end", "trace1"), ("release", "trace1")]
    assert step.traces == {} and "capture failed" in step.trace_reason
    assert [c for c in ttnn.calls[3:] if c[0] != "read"] == ([] if trace else [("body", False)] * 3)


def test_trace_required_where_it_cannot_run_is_refused_with_the_reason(monkeypatch):
    with pytest.raises(ValueError, match=r"trace: got True, but this device cannot replay a trace: slow"):
        make_step(monkeypatch, reason="slow dispatch", trace=True)
    with pytest.raises(ValueError, match=r"trace: got 'yes', expected None"):
        make_step(monkeypatch, trace="yes")


def test_trace_unavailable_reason_from_the_environment_and_the_open_device(monkeypatch):
    dev, other = object(), object()
    monkeypatch.delenv("TT_METAL_MOCK_CLUSTER_DESC_PATH", raising=False)
    monkeypatch.delenv("TT_METAL_SLOW_DISPATCH_MODE", raising=False)
    monkeypatch.setattr(D, "_trace_region", {id(dev): D.TRACE_REGION_SIZE, id(other): 0})
    assert D.trace_unavailable_reason(dev) is None
    assert "trace_region_size=0" in D.trace_unavailable_reason(other)
    assert "trace region is unknown" in D.trace_unavailable_reason(object())
    monkeypatch.setenv("TT_METAL_SLOW_DISPATCH_MODE", "")  # set at all means slow dispatch to tt-metal
    assert "TT_METAL_SLOW_DISPATCH_MODE" in D.trace_unavailable_reason(dev)
    monkeypatch.setenv("TT_METAL_MOCK_CLUSTER_DESC_PATH", "/x/cluster.yaml")
    assert "TT_METAL_MOCK_CLUSTER_DESC_PATH" in D.trace_unavailable_reason(dev)


def test_trace_option_is_refused_off_the_card_engine():
    with pytest.raises(ValueError, match=r"trace: got True with engine 'host', expected None"):
        SpeculativeDecoder(load_pair("tiny"), "model", 2, trace=True)


@pytest.mark.parametrize("argv", [["generate", "x", "--pair", "tiny", "--no-trace", "--k", "2"],
                                  ["bench", "--pair", "tiny", "--no-trace", "--k", "2"]])
def test_cli_no_trace_without_device_is_refused(capsys, argv):
    assert main(argv) == 2
    assert "--no-trace: given without --device" in capsys.readouterr().err
