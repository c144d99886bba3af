"""kv_write kernels (tt_specdec/ops/kv_write/kernels/) on the emulator against the plain-loop reference:
contiguous and paged caches, bf16 and fp32, rows at any offset (not block aligned, across blocks), finished
rows skipped; only the written rows change."""
import pytest
import torch

from tt_specdec.ops import kv_write
from tt_specdec.ops.kv_write import reference
from tt_specdec.ops.kv_write.program import kv_write_emu

from tests.ops.test_kv_write import make_case


@pytest.mark.parametrize("B, T, Hkv, D, S, block, dtype, seed", [
    (1, 1, 1, 32, 32, None, torch.bfloat16, 0),
    (2, 5, 3, 64, 96, None, torch.float32, 1),
    (3, 5, 2, 64, 128, 32, torch.bfloat16, 2),  # paged, blocks of 32: writes straddle blocks
    (4, 9, 1, 32, 256, 64, torch.float32, 3),
    (2, 32, 2, 32, 128, 64, torch.bfloat16, 4),  # a whole tile row of new rows
])
def test_kv_write_kernels_match_the_reference(B, T, Hkv, D, S, block, dtype, seed):
    k_new, v_new, kc, vc, pos, table = make_case(B, T, Hkv, D, S, seed, block, dtype)
    want_k, want_v = reference.kv_write(k_new, v_new, kc, vc, pos, page_table=table)
    r = kv_write_emu(k_new, v_new, kc, vc, pos, page_table=table)
    assert torch.equal(kc, want_k) and torch.equal(vc, want_v)
    # DRAM traffic: each live row's K and V read and written once (plus positions and the page table)
    live = int((pos >= 0).sum())
    row_bytes = D * kc.element_size()
    assert r.total("dram_bytes_written") == 2 * live * T * Hkv * row_bytes


def test_public_op_dispatches_to_the_emulator():
    k_new, v_new, kc, vc, pos, table = make_case(2, 3, 1, 32, 64, 7, 32, torch.bfloat16)
    want_k, _ = reference.kv_write(k_new, v_new, kc, vc, pos, page_table=table)
    kv_write(k_new, v_new, kc, vc, pos, page_table=table, backend="emu")
    assert torch.equal(kc, want_k)
