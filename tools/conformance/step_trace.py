"""The device step's trace fallback on real ttnn 0.81.1, on a mock Wormhole n150 (no card; step.py's set-up).

Trace capture cannot run on the mock (ttnn's execute_trace crashes there), so DeviceStep must see that from the
environment, say why once, and run the same ops untraced. For the SmolLM2 pair (placeholder weights), k = 4:
- DeviceStep(trace=None) takes the untraced path with the mock as its reason, said once on stderr over all steps;
  DeviceStep(trace=True) is refused with that reason;
- every op of its step body is counted for host reads (ttnn.to_torch, from_device, copy_device_to_host_tensor,
  Tensor.cpu / to_torch / item) and host writes (ttnn.Tensor made on the device, from_torch, to_device,
  copy_host_to_device_tensor, Tensor.to): none inside the body, only the two readbacks after it;
- the program cache holds the same entries after steps 2, 3 and 4, run with misses forbidden;
- its accepted counts, tokens and ops per step equal those of DeviceStep(trace=False) on fresh decoders.
Prints one line per step and a verdict; exit 1 on any failure. Run with the conformance venv (.venv-tt).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
K = 4
STEPS = 4
# device -> host copies (to_list after cpu() converts a host tensor: not a read of the device)
READS = {"ttnn": ("to_torch", "from_device", "copy_device_to_host_tensor"), "Tensor": ("cpu", "to_torch", "item")}
WRITES = {"ttnn": ("from_torch", "to_device", "copy_host_to_device_tensor"), "Tensor": ("to",)}


@contextlib.contextmanager
def host_io(ttnn):
    """Counts the host reads and writes (Counter: "read" / "write") made through ttnn while active."""
    counts = Counter()
    saved = []

    def counting(owner, name, kind):
        fn = getattr(owner, name)
        saved.append((owner, name, fn))

        def wrapper(*a, **kw):
            counts[kind] += 1
            return fn(*a, **kw)
        setattr(owner, name, wrapper)

    real = ttnn.Tensor
    for kind, table in (("read", READS), ("write", WRITES)):
        for where, names in table.items():
            for name in names:
                counting(real if where == "Tensor" else ttnn, name, kind)

    class Made(type):  # ttnn.Tensor(data, dtype, device, layout): a host write when given a device
        def __instancecheck__(cls, obj):
            return isinstance(obj, real)

        def __call__(cls, *a, **kw):
            if len(a) > 2 or "device" in kw:
                counts["write"] += 1
            return real(*a, **kw)

        def __getattr__(cls, name):
            return getattr(real, name)

    ttnn.Tensor = Made("Tensor", (), {})
    try:
        yield counts
    finally:
        ttnn.Tensor = real
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def run(ttnn, dev, B: int, trace) -> dict:
    from step import PAIRS, PROMPT_LENGTHS

    from tt_specdec.models.ttnn_llama import CONFIGS, OpLog, TtLlama
    from tt_specdec.speculative.device_step import DeviceStep

    target_name, draft_name = PAIRS["smollm2"]
    ops = OpLog()
    kv = dict(max_seq_len=256, block_size=64, ops=ops)
    step = DeviceStep(TtLlama.placeholder(CONFIGS[target_name], dev, batch_size=B, **kv),
                      TtLlama.placeholder(CONFIGS[draft_name], dev, batch_size=B, **kv), K, trace=trace)
    prompts = [[(7 * b + i) % 1000 + 1 for i in range(PROMPT_LENGTHS[b % len(PROMPT_LENGTHS)])] for b in range(B)]
    try:
        DeviceStep(step.target, step.draft, K, trace=True)
        refused = "not refused"
    except ValueError as e:
        refused = f"refused: {e}"
    step.start(prompts)
    body, in_body = step.body, Counter()

    def counted_body():
        with host_io(ttnn) as c:
            out = body()
        in_body.update(c)
        return out
    step.body = counted_body
    rows, err = [], io.StringIO()
    with contextlib.redirect_stderr(err):
        for i in range(1, STEPS + 1):
            if i == 2:
                dev.set_program_cache_misses_allowed(False)
            ops.reset()
            in_body.clear()
            with host_io(ttnn) as total:
                n, out = step.step()
            rows.append(dict(i=i, body_reads=in_body["read"], body_writes=in_body["write"],
                             reads=total["read"], writes=total["write"], entries=dev.num_program_cache_entries(),
                             ops=ops.total(), n=n, out=out))
    dev.set_program_cache_misses_allowed(True)
    return dict(reason=step.trace_reason, rows=rows, stderr=err.getvalue(), refused=refused)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tt_specdec_trace_"))
    failures = []
    try:
        sys.path.insert(0, str(HERE))
        import step
        ttnn = step.open_mock(work)
        from tt_specdec.runtime import device as D
        dev = D.device()
        auto = run(ttnn, dev, args.batch, None)
        plain = run(ttnn, dev, args.batch, False)
        print(f"fallback: {auto['reason']}")
        print(f"trace=True: {auto['refused']}")
        said = auto["stderr"].count("the device step runs untraced")
        print(f"said: {said} time(s) in {STEPS} steps")
        for r in auto["rows"]:
            print(f"step {r['i']}: body host reads {r['body_reads']}, body host writes {r['body_writes']}; "
                  f"step host reads {r['reads']}, writes {r['writes']}; program cache entries {r['entries']}; "
                  f"{r['ops']} ops")
        same = all((a["n"], a["out"], a["ops"]) == (p["n"], p["out"], p["ops"])
                   for a, p in zip(auto["rows"], plain["rows"]))
        print(f"same as trace=False: {'yes' if same else 'no'}")
        if "TT_METAL_MOCK_CLUSTER_DESC_PATH" not in (auto["reason"] or "") or said != 1:
            failures.append("the fallback reason was not the mock, said once")
        if not auto["refused"].startswith("refused: trace: got True"):
            failures.append("DeviceStep(trace=True) was not refused on the mock")
        if any(r["body_reads"] or r["body_writes"] for r in auto["rows"]):
            failures.append("host I/O inside the step body")
        if any(r["reads"] != 2 or r["writes"] for r in auto["rows"]):
            failures.append("a step read or wrote more than num_accepted and output_tokens")
        if len({r["entries"] for r in auto["rows"][1:]}) != 1:
            failures.append("the program cache changed after step 2")
        if not same:
            failures.append("the untraced fallback differs from trace=False")
        D.close_device()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print(f"FAIL: {f}")
    print(f"trace fallback on a mock n150: {'FAILED' if failures else 'OK'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
