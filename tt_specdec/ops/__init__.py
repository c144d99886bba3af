"""The fused ops of speculative decoding (verify_attention, accept_prefix, rollback_kv, and kv_write, the
step's new K/V rows into the cache at any offset), one folder each (tt_specdec/ops/<op>/).

Each public function validates its arguments once and dispatches on what it is given
(tt_specdec.ops.dispatch): torch tensors run the op's vectorized torch version
(`torch_impl.py`), backend="emu" its TT-Metal kernels (`kernels/`, described by
`program.py`) on the host emulator, ttnn tensors or backend="device" the same kernels on
a card. `reference.py` beside each holds the plain-loop ground truth the tests compare with.
"""
from tt_specdec.ops.accept_prefix import PLACEHOLDER, accept_prefix
from tt_specdec.ops.kv_write import kv_write
from tt_specdec.ops.rollback_kv import Rollback, rollback_kv
from tt_specdec.ops.verify_attention import verify_attention

__all__ = ["PLACEHOLDER", "Rollback", "accept_prefix", "kv_write", "rollback_kv", "verify_attention"]
