"""The three fused ops of speculative decoding.

Each public function dispatches on what it is given: torch tensors run the
vectorized torch implementation here; `tt_specdec.ops.reference` holds the
plain-loop ground truth the tests compare against.
"""
from tt_specdec.ops.accept_prefix import PLACEHOLDER, accept_prefix
from tt_specdec.ops.rollback_kv import Rollback, rollback_kv
from tt_specdec.ops.verify_attention import verify_attention

__all__ = ["PLACEHOLDER", "Rollback", "accept_prefix", "rollback_kv", "verify_attention"]
