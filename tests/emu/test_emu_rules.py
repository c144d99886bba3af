"""One deliberately broken kernel (tests/emu/broken/) or program per emulator rule: each
must fail with an error naming the core, the kernel and the buffer. If the emulator stops
catching one, its test fails."""
import re
import time

import pytest
import torch

from programs import copy_program
from tt_specdec.runtime import emu
from tt_specdec.runtime import program as P

X = torch.randn(6, 64).bfloat16()  # 6 pages of 128 bytes over 2 cores


def run_broken(**kw):
    return emu.run(copy_program(X.shape, X.dtype, **kw), {"src": X})


def expect(pattern, **kw):
    with pytest.raises(emu.EmuError) as e:
        run_broken(**kw)
    msg = str(e.value)
    assert re.search(pattern, msg, re.S), msg
    return msg


def test_correct_copy_passes():  # the baseline every broken variant departs from
    assert torch.equal(run_broken().outputs["dst"], X)


def test_deadlock_names_every_blocked_kernel_and_its_cb():
    t0 = time.perf_counter()
    msg = expect(r"deadlock", writer="broken/writer_wait_extra.cpp")
    assert time.perf_counter() - t0 < 10
    assert re.search(r"core \(\d, 0\) kernel 'writer_wait_extra' \(writer\) waits in cb_wait_front\(cb 0 \('cb_in'\)",
                     msg), msg


def test_deadlock_on_a_semaphore():
    sems = [P.Semaphore(0, [P.CoreRange((0, 0), (1, 0))], 0)]
    expect(r"deadlock.*writer_semaphore_never_set.*noc_semaphore_wait\(semaphore 0, 1\): value 0",
           writer="broken/writer_semaphore_never_set.cpp", semaphores=sems)


def test_push_more_than_reserved():
    expect(r"core \(\d, 0\) kernel 'reader_push_unreserved' \(reader\): CB overflow: cb_push_back\(cb 0 \('cb_in'\), "
           r"2 pages\) but only 1 pages were reserved", reader="broken/reader_push_unreserved.cpp")


def test_read_past_the_end_of_a_cb():
    expect(r"kernel 'reader_read_past_cb' .*CB overflow: noc_async_read of 128 bytes starts at the end of "
           r"cb 0 \('cb_in'\)", reader="broken/reader_read_past_cb.cpp")


def test_reserve_more_than_the_cb_holds():
    expect(r"kernel 'reader_reserve_too_many' .*cb_reserve_back\(cb 0 \('cb_in'\), 3 pages\) but the CB holds 2",
           reader="broken/reader_reserve_too_many.cpp")


def test_pop_unpushed_pages():
    expect(r"kernel 'writer_pop_unwaited' \(writer\): cb_pop_front\(cb 0 \('cb_in'\), 1 pages\) pops pages not "
           r"waited for", writer="broken/writer_pop_unwaited.cpp")


def test_l1_overflow():
    expect(r"L1 overflow on core \(0, 0\): cb 0 \('cb_in'\)", cb_pages=2, cb_page_size=1024 * 1024)


def test_misaligned_dram_read():
    expect(r"kernel 'reader_misaligned' .*misaligned NoC access: noc_async_read: DRAM address 0x[0-9a-f]+ in bank "
           r"\d+ \(buffer 'src'\) and local L1 offset 0x[0-9a-f]+ \(cb 0 \('cb_in'\) byte 0\) differ modulo 32 "
           r"\(8 vs 0\)", reader="broken/reader_misaligned.cpp")


def test_misaligned_l1_destination():
    expect(r"kernel 'reader_misaligned_l1' .*misaligned NoC access: noc_async_read: .* and local L1 offset "
           r"0x[0-9a-f]+ \(cb 0 \('cb_in'\) byte 4\) differ modulo 32 \(0 vs 4\)",
           reader="broken/reader_misaligned_l1.cpp")


def test_dram_read_into_l1_16_mod_32():
    """The review's finding: an L1 slot 16-byte aligned but at 16 mod 32 cannot take a DRAM read
    from a page start on Wormhole (hw/inc/internal/debug/sanitize.h; NOC_DRAM_READ_ALIGNMENT_BYTES 32)."""
    expect(r"kernel 'reader_dram_read_16_mod_32' \(reader\): misaligned NoC access: noc_async_read: DRAM address "
           r"0x[0-9a-f]+ in bank \d+ \(buffer 'src'\) and local L1 offset 0x[0-9a-f]+ \(cb 0 \('cb_in'\) byte 16\) "
           r"differ modulo 32 \(0 vs 16\)", reader="broken/reader_dram_read_16_mod_32.cpp")


def test_misaligned_l1_to_l1_write():
    expect(r"kernel 'writer_l1_to_l1_misaligned' \(writer\): misaligned NoC access: noc_async_write: L1 offset "
           r"0x[0-9a-f]+ on core \(\d, 0\) \(cb 0 \('cb_in'\) byte \d+\) and local L1 offset 0x[0-9a-f]+ "
           r"\(cb 0 \('cb_in'\) byte \d+\) differ modulo 16 \(8 vs 0\)", writer="broken/writer_l1_to_l1_misaligned.cpp")


def test_cb_bases_are_aligned_like_the_allocator():
    """A 16-byte CB placed first must not leave the next CB at 16 mod 32: the allocator aligns every
    CB base to the DRAM alignment (tt-metal impl/program/program.cpp, allocate_circular_buffers)."""
    prog = copy_program(X.shape, X.dtype)
    prog.circular_buffers.insert(0, P.CircularBuffer(5, [P.CoreRange((0, 0), (1, 0))], 1, 16, P.data_format(X.dtype),
                                                     "small"))
    assert torch.equal(emu.run(prog, {"src": X}).outputs["dst"], X)


def test_missing_runtime_arg():
    expect(r"core \(\d, 0\) kernel 'reader_copy' \(reader\): missing runtime arg 2: 2 runtime args were set",
           drop_runtime_arg=True)


def test_push_before_the_read_barrier():
    expect(r"kernel 'reader_no_barrier' .*cb_push_back\(cb 0 \('cb_in'\)\) with 1 noc_async_read\(s\) still in "
           r"flight", reader="broken/reader_no_barrier.cpp")


def test_pop_before_the_write_barrier():
    expect(r"kernel 'writer_no_barrier' .*cb_pop_front\(cb 0 \('cb_in'\), 1 pages\) frees pages a noc_async_write is "
           r"still reading", writer="broken/writer_no_barrier.cpp")


def test_return_with_a_write_in_flight():
    expect(r"kernel 'writer_no_final_barrier' .*returned with 0 noc_async_read\(s\) and 1 noc_async_write\(s\) "
           r"still in flight", writer="broken/writer_no_final_barrier.cpp")


def test_return_with_a_non_posted_atomic_unflushed():
    sems = [P.Semaphore(0, [P.CoreRange((0, 0), (1, 0))], 0)]
    expect(r"kernel 'writer_atomic_no_barrier' \(writer\): kernel returned with 1 non-posted atomic\(s\) "
           r"\(noc_semaphore_inc\) not flushed: missing noc_async_atomic_barrier",
           writer="broken/writer_atomic_no_barrier.cpp", semaphores=sems)
    ok = run_broken(writer="kernels/writer_atomic_barrier.cpp", semaphores=sems)  # the same with the barrier
    assert torch.equal(ok.outputs["dst"], X)


def test_semaphore_not_created():
    expect(r"kernel 'writer_semaphore_missing' .*get_semaphore\(3\): semaphore 3 is not created on this core",
           writer="broken/writer_semaphore_missing.cpp")


def test_warnings_are_errors_as_in_the_jit():
    """-Wall -Werror (tt_metal/jit_build/build.cpp): a signed/unsigned comparison fails the build."""
    with pytest.raises(emu.EmuError, match=r"(?s)reader_sign_compare.cpp \(reader\) does not compile.*"
                                           r"-Werror=sign-compare"):
        run_broken(reader="broken/reader_sign_compare.cpp")


def test_kernel_that_does_not_compile_names_the_file(tmp_path):
    bad = tmp_path / "reader_bad.cpp"
    bad.write_text('#include "api/dataflow/dataflow_api.h"\nvoid kernel_main() { cb_reserve_back(0); }\n')
    with pytest.raises(emu.EmuError, match=r"reader_bad.cpp \(reader\) does not compile"):
        run_broken(reader=str(bad))


# ---- the review's findings (issue 14), as the op kernels meet them ---------------------------------


def test_review_rollback_at_batch_1_under_the_alignment_rule():
    """B = 1: `last` and `num_accepted` were read into 16-byte slots of one CB page, at 16 mod 32."""
    from tt_specdec.ops.rollback_kv import reference
    from tt_specdec.ops.rollback_kv.program import rollback_kv_emu
    pos, last, n = torch.tensor([7]), torch.tensor([3]), torch.tensor([2])
    out = torch.tensor([[5, 6, 9, -1, -1]])
    got, _ = rollback_kv_emu(pos, last, n, out)
    want = reference.rollback_kv(pos, last, n, out)
    assert torch.equal(got.pos, want.pos) and torch.equal(got.last, want.last)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_review_sampling_at_small_k_under_the_alignment_rule(k):
    """k <= 4: the seeds and num_draft slots of the sampling reader landed at 16 mod 32."""
    from tt_specdec.ops.accept_prefix import reference
    from tt_specdec.ops.accept_prefix.program import accept_prefix_sampling_emu
    g = torch.Generator().manual_seed(k)
    B, V = 2, 100
    logits = torch.randn(B, k + 1, V, generator=g) * 2
    q = torch.softmax(torch.randn(B, k, V, generator=g), -1)
    drafts = torch.multinomial(q.reshape(-1, V), 1, generator=g).view(B, k)
    num_draft = torch.tensor([k, k - 1])
    n, out, _ = accept_prefix_sampling_emu(logits, drafts, draft_probs=q, num_draft=num_draft, temperature=1.0,
                                           seed=torch.tensor([3, 4]))
    ref_n, ref_out = reference.accept_prefix(logits, drafts, draft_probs=q, num_draft=num_draft, temperature=1.0,
                                             seed=torch.tensor([3, 4]))
    assert torch.equal(n, ref_n) and torch.equal(out, ref_out)


def _verify_case(dtype, B=1, T=3, Hq=4, Hkv=2, S=100, D=64, pos=(60,), seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, Hq, D, generator=g).to(dtype)
    k = torch.randn(B, Hkv, S, D, generator=g).to(dtype)
    v = torch.randn(B, Hkv, S, D, generator=g).to(dtype)
    return q, k, v, torch.tensor(pos)


def _verify_error(dtype, **kw):
    from tt_specdec.ops.verify_attention import reference
    from tt_specdec.ops.verify_attention.program import verify_attention_emu
    q, k, v, pos = _verify_case(dtype, **kw)
    out, _ = verify_attention_emu(q, k, v, pos)
    ref = reference.verify_attention(q, k, v, pos).double()
    return ((out.double() - ref).abs() / (ref.abs() + 1)).max().item()


def test_review_verify_attention_bf16_under_format_tracking():
    """bf16 q/k/v beside fp32 intermediates: every change of format needs reconfig_data_format* /
    pack_reconfig_data_format, or a card unpacks and packs garbage. Error within bf16's output rounding."""
    assert _verify_error(torch.bfloat16) <= 2**-7


def test_review_verify_attention_fp32_under_tf32():
    """fp32 operands of the matrix unit are TF32 on a card: the tolerance is what TF32 sources give
    (10 mantissa bits: ~5e-4 per operand), not fp32's 1e-5."""
    assert _verify_error(torch.float32) <= 4e-3


def test_greedy_argmax_nan_rule_is_torchs():
    """Integer-key argmax (no float compares on a data-movement core) with ttnn argmax_common.hpp's NaN
    rule, which is torch.argmax's: a NaN outranks every number, the first NaN wins; -0 equals +0."""
    from tt_specdec.ops.accept_prefix.program import accept_prefix_emu
    for dtype in (torch.bfloat16, torch.float32):
        logits = torch.zeros(1, 2, 100, dtype=dtype)
        logits[0, 0, 5] = 3.0
        logits[0, 0, 40] = float("nan")
        logits[0, 0, 70] = float("nan")
        logits[0, 1, 3] = -0.0  # row 1: all zeros, some negative: the first index wins
        logits[0, 1, 0] = -0.0
        n, out, _ = accept_prefix_emu(logits, torch.tensor([[40]]), max_cores=3)
        assert int(torch.argmax(logits[0, 0].float())) == 40
        assert int(n) == 1 and out[0].tolist() == [40, 0], (dtype, n, out)


def test_num_draft_past_k_is_clamped():
    """reader_accept_prefix loops to num_draft: a value past k (a bad tensor) must stop at k, not walk
    past the logits rows; the result is k's."""
    from tt_specdec.ops.accept_prefix.program import accept_prefix_emu
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 64, generator=g)
    drafts = logits.argmax(-1)[:, :3].clone()
    want = accept_prefix_emu(logits, drafts, num_draft=torch.tensor([3, 3]))[:2]
    got = accept_prefix_emu(logits, drafts, num_draft=torch.tensor([3, 1000]))[:2]
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def _rv32_survey():
    import shutil
    from pathlib import Path
    if shutil.which("clang-19") is None or not Path("/usr/riscv64-linux-gnu/include/c++/12").is_dir():
        pytest.skip("clang-19 and the riscv64 headers are not installed (tools/conformance/setup.sh installs them)")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import rv32_dataflow
    return {r["kernel"]: r["soft_float"] for r in rv32_dataflow.survey()}


@pytest.fixture(scope="module")
def rv32_survey():
    return _rv32_survey()


@pytest.mark.parametrize("kernel", ["reader_accept_prefix.cpp", "writer_accept_prefix.cpp",
                                    "reader_accept_tree.cpp", "writer_accept_tree.cpp",
                                    "reader_accept_prefix_sampling.cpp", "writer_accept_prefix_sampling.cpp",
                                    "writer_accept_tree_sampling.cpp",
                                    "reader_rollback_kv.cpp",
                                    "writer_rollback_kv.cpp", "reader_rollback_kv_compact.cpp",
                                    "writer_rollback_kv_compact.cpp", "reader_verify_attention.cpp",
                                    "writer_verify_attention.cpp"])
def test_no_soft_float_on_the_data_movement_cores(rv32_survey, kernel):
    """Built for rv32im (no FPU) with the JIT's flags: no float / double routine is called. The greedy
    writer called __gtsf2 / __ltsf2 per logit before its integer keys."""
    assert rv32_survey[kernel] == [], rv32_survey[kernel]


def test_sampling_writer_source_has_no_float_or_double():
    """Without clang too: no float or double in the sampling writers or their headers (their builds are surveyed
    above)."""
    from pathlib import Path
    kernels = Path(__file__).resolve().parents[2] / "tt_specdec/ops/accept_prefix/kernels"
    for name in ("writer_accept_prefix_sampling.cpp", "writer_accept_tree_sampling.cpp", "accept_prefix_common.hpp",
                 "accept_prefix_sampling.hpp"):
        code = re.sub(r"//[^\n]*|/\*.*?\*/", "", (kernels / name).read_text(), flags=re.S)
        found = re.findall(r"\b(?:float|double|long double|_Float\d+|__bf16)\b|std::exp|<cmath>|<math\.h>", code)
        assert found == [], (name, found)
