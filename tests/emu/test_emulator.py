"""The emulator runs correct kernels exactly and counts their traffic."""
import torch

from programs import copy_program
from tt_specdec.runtime import emu
from tt_specdec.runtime import program as P


def test_copy_roundtrip_bf16_and_fp32():
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(7, 48).to(dtype)
        r = emu.run(copy_program(x.shape, dtype, cores=3), {"src": x})
        assert torch.equal(r.outputs["dst"], x)
        nbytes = x.numel() * x.element_size()
        assert r.total("dram_bytes_read") == nbytes
        assert r.total("dram_bytes_written") == nbytes
        assert r.bytes_by_kernel("dram_bytes_read") == {"reader_copy": nbytes, "writer_copy": 0}


def test_tilize_matches_ttnn_face_order():
    x = torch.arange(64 * 32, dtype=torch.float32).reshape(64, 32)
    t = P.tilize(x)  # [2 tiles, 1024]
    assert t.shape == (2, 1024)
    assert torch.equal(t[0, :16], x[0, :16])  # face 0 row 0
    assert torch.equal(t[0, 256:272], x[0, 16:32])  # face 1 row 0
    assert torch.equal(t[0, 512:528], x[16, :16])  # face 2 row 0
    assert torch.equal(t[1, :16], x[32, :16])  # second tile row
    y = torch.randn(3, 40, 70)
    assert torch.equal(P.untilize(P.tilize(y), 40, 70), y)


def test_tile_layout_tensor_roundtrip():
    x = torch.randn(64, 96).bfloat16()
    src = P.Tensor("src", (64, 96), torch.bfloat16, layout="tile")
    assert src.num_pages == 6 and src.page_size == 2048
    prog = copy_program((64, 96), torch.bfloat16, cores=2)
    for t in prog.tensors:
        t.layout = "tile"
    for k in prog.kernels:  # page size and accessor args follow the tile layout
        k.compile_time_args = [0, 2048, *P.tensor_accessor_args(src)]
    prog.circular_buffers[0].page_size = 2048
    for k in prog.kernels:
        for c, args in k.runtime_args.items():
            args[1:] = [3 * c[0], 3]
    assert torch.equal(emu.run(prog, {"src": x}).outputs["dst"], x)
