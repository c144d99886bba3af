"""Broken fixture: a description ttnn must reject. rollback_kv's program with its state
circular buffer grown to 3 MiB per core, more than a Wormhole core's 1464 KiB of L1.
tools/conformance/check.py --description <this file> must fail naming the kernels."""
from tt_specdec.ops.rollback_kv.program import rollback_kv_program


def programs():
    prog = rollback_kv_program(4, 4)
    state = next(cb for cb in prog.circular_buffers if cb.name == "state")
    state.page_size = 1 << 20  # 3 pages: 3 MiB
    return [("rollback_kv_program(B=4, k=4) with a 3 MiB circular buffer", prog)]
