"""The emulated compute engine: tile ops in fp32 on TF32 sources against torch, bf16 packing rounds
to nearest with ties away from zero, and the dst register protocol and the unpacker / packer
formats enforced by one broken kernel per rule."""
import re

import pytest
import torch

from programs import tiles_program
from tt_specdec.runtime import emu


def run(n, a, b, **kw):
    return emu.run(tiles_program(n, a.dtype, **kw), {"a": a, "b": b}).outputs["out"]


def blocks(x):  # [n*32, 32] -> [n, 32, 32]
    return x.view(-1, 32, 32)


def tf32(x):
    """fp32 as SrcA / SrcB hold it: the low 13 mantissa bits dropped."""
    return (x.float().contiguous().view(torch.int32) & ~0x1FFF).view(torch.float32)


def bf16_packer(x):
    """The packer's fp32 -> bf16: round to nearest, ties away from zero (NaN aside)."""
    bits = x.float().contiguous().view(torch.int32)
    return ((bits + 0x8000) & ~0xFFFF).view(torch.float32).bfloat16()


@pytest.mark.parametrize("in_dtype", [torch.bfloat16, torch.float32])
def test_tile_ops_match_torch(in_dtype):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(96, 32, generator=g).to(in_dtype)
    b = (torch.rand(96, 32, generator=g) + 0.5).to(in_dtype)
    af, bf = tf32(a), tf32(b)  # bf16 is exact in TF32; fp32 loses 13 bits
    # add and mul: one fp32 op on the TF32 sources, then the packer's bf16 rounding
    assert torch.equal(run(3, a, b, op=0), bf16_packer(af + bf))
    assert torch.equal(run(3, a, b, op=2), bf16_packer(af * bf))
    # fp32 out: the fp32 result itself
    assert torch.equal(run(3, a, b, op=0, out_dtype=torch.float32), af + bf)
    # exp(a - b[:, col 0]) broadcast over columns, per tile
    want = torch.exp(blocks(af) - blocks(bf)[:, :, :1]).view(96, 32)
    torch.testing.assert_close(run(3, a, b, op=1, out_dtype=torch.float32), want, rtol=1e-6, atol=0)
    # a @ b^T per tile (matmul with transposed in1), fp32 accumulation
    want = (blocks(af) @ blocks(bf).transpose(1, 2)).view(96, 32)
    torch.testing.assert_close(run(3, a, b, op=3, out_dtype=torch.float32), want, rtol=1e-5, atol=1e-5)
    # copy_tile goes through SrcA too
    torch.testing.assert_close(run(3, b, a, op=4, out_dtype=torch.float32), 1 / bf, rtol=1e-7, atol=0)


def test_fp32_sources_are_tf32():
    """1 + 2^-20 is fp32 but not TF32: in SrcA it is 1.0, so a + 0 packs 1.0 to an fp32 CB."""
    a = torch.full((32, 32), 1 + 2**-20)
    out = run(1, a, torch.zeros(32, 32), op=0, out_dtype=torch.float32)
    assert out[0, 0].item() == 1.0


def test_bf16_packing_rounds_to_nearest_ties_away_from_zero():
    # 1 + 2^-8 is halfway between two bf16 values: away from zero wins (1 + 2^-7), on both signs
    a = torch.zeros(32, 32)
    a[0, 0], a[0, 1], a[0, 2] = 1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8)
    out = run(1, a, torch.zeros(32, 32), op=0)
    assert out[0, :3].tolist() == [1 + 2**-7, 1 + 2**-6, -(1 + 2**-7)]


def expect(pattern, **kw):
    a = torch.randn(64, 32).bfloat16()
    with pytest.raises(emu.EmuError) as e:
        run(2, a, a, **kw)
    assert re.search(pattern, str(e.value), re.S), str(e.value)


def test_dst_index_out_of_range():
    expect(r"kernel 'compute_binary' \(compute\): add_tiles: dst index 8 out of range: 8 tiles", idst=8)
    expect(r"add_tiles: dst index 4 out of range: 4 tiles with fp32_dest_acc_en=1", idst=4, fp32_dest_acc_en=True)


def test_math_without_acquire():
    expect(r"kernel 'compute_math_without_acquire' .*add_tiles: dst registers are free \(no tile_regs_acquire\)",
           compute="broken/compute_math_without_acquire.cpp")


def test_pack_without_wait():
    expect(r"kernel 'compute_pack_without_wait' .*pack_tile: dst registers are committed \(no tile_regs_wait yet\)",
           compute="broken/compute_pack_without_wait.cpp")


def test_pack_into_unreserved_pages():
    expect(r"kernel 'compute_pack_unreserved' .*pack_tile: tile 0 of cb 16 \('cb_out'\) but only 0 pages were "
           r"reserved", compute="broken/compute_pack_unreserved.cpp")


def test_unpack_past_the_waited_pages():
    expect(r"kernel 'compute_unpack_unwaited' .*add_tiles: tile 1 of cb 0 \('cb_a'\) but only 1 pages were waited",
           compute="broken/compute_unpack_unwaited.cpp")


def test_return_holding_dst():
    expect(r"kernel 'compute_no_release' .*returned holding the dst registers",
           compute="broken/compute_no_release.cpp")


def test_sfpu_op_without_its_init():
    expect(r"core \(0, 0\) kernel 'compute_exp_without_init' \(compute\): exp_tile without exp_tile_init: the "
           r"latest SFPU init is none", compute="broken/compute_exp_without_init.cpp")


def test_binary_op_after_another_ops_init():
    # tile 0 passes (add_init is the latest unpack/math init); tile 1 runs after matmul_init
    expect(r"kernel 'compute_add_after_matmul_init' \(compute\): add_tiles without add_init: the latest "
           r"unpack/math init is matmul_init", compute="broken/compute_add_after_matmul_init.cpp")


def test_unpack_into_a_source_configured_for_another_format():
    expect(r"kernel 'compute_unpack_wrong_format' \(compute\): add_tiles: cb 0 \(format 5, Float16_b\) unpacked "
           r"into SrcA configured for format 0 \(Float32, from cb 16\): call reconfig_data_format_srca",
           compute="broken/compute_unpack_wrong_format.cpp", out_dtype=torch.float32)
    a = torch.randn(64, 32).bfloat16()
    out = run(2, a, a, compute="kernels/compute_reconfigured.cpp", out_dtype=torch.float32)
    assert torch.equal(out, a.float() + a.float())


def test_pack_into_a_cb_of_another_format():
    expect(r"kernel 'compute_pack_wrong_format' \(compute\): pack_tile: cb 16 \(format 0, Float32\) but the packer "
           r"is configured for format 5 \(Float16_b, from cb 0\): call pack_reconfig_data_format",
           compute="broken/compute_pack_wrong_format.cpp", out_dtype=torch.float32)


def test_pack_a_dst_tile_nothing_wrote():
    expect(r"kernel 'compute_pack_unwritten_dst' \(compute\): pack_tile: dst tile 1 was not written since "
           r"tile_regs_acquire: its contents are undefined", compute="broken/compute_pack_unwritten_dst.cpp")


def test_call_without_its_header_does_not_compile():
    with pytest.raises(emu.EmuError, match=r"(?s)compute_copy_without_include.cpp \(compute\) does not compile.*"
                                           r".copy_init. was not declared"):
        run(2, torch.zeros(64, 32), torch.zeros(64, 32), compute="broken/compute_copy_without_include.cpp")


def test_matmul_unpacks_in1_into_srca():
    """The operand -> register mapping of matmul (in1 -> SrcA, in0 -> SrcB), seen with a bf16 and an
    fp32 operand: Regular order configures the registers the other way round."""
    a, b = torch.randn(64, 32).bfloat16(), torch.randn(64, 32)
    kw = dict(out_dtype=torch.float32, b_dtype=torch.float32)
    with pytest.raises(emu.EmuError, match=r"kernel 'compute_matmul_regular_order' \(compute\): matmul_tiles: cb 0 "
                                           r"\(format 5, Float16_b\) unpacked into SrcB configured for format 0 "
                                           r"\(Float32, from cb 1\)"):
        run(2, a, b, compute="broken/compute_matmul_regular_order.cpp", **kw)
    out = run(2, a, b, compute="kernels/compute_matmul_reverse.cpp", **kw)
    want = (blocks(a.float()) @ blocks(tf32(b)).transpose(1, 2)).view(64, 32)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
