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
           r"\d+ \(buffer 'src'\) is not 32-byte aligned", reader="broken/reader_misaligned.cpp")


def test_misaligned_l1_destination():
    expect(r"kernel 'reader_misaligned_l1' .*misaligned NoC access: noc_async_read: destination L1 address offset "
           r"0x[0-9a-f]+ is not 16-byte aligned", reader="broken/reader_misaligned_l1.cpp")


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


def test_semaphore_not_created():
    expect(r"kernel 'writer_semaphore_missing' .*get_semaphore\(3\): semaphore 3 is not created on this core",
           writer="broken/writer_semaphore_missing.cpp")


def test_kernel_that_does_not_compile_names_the_file(tmp_path):
    bad = tmp_path / "reader_bad.cpp"
    bad.write_text('#include "api/dataflow/dataflow_api.h"\nvoid kernel_main() { cb_reserve_back(0); }\n')
    with pytest.raises(emu.EmuError, match=r"reader_bad.cpp \(reader\) does not compile"):
        run_broken(reader=str(bad))
