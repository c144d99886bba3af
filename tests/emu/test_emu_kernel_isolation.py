"""Each JIT-built kernel .so keeps its symbols to itself, as each kernel is its own ELF on the card: the
headers' inline thread_locals (emu_compute::state, whose size depends on DST_ACCUM_MODE) were exported
STB_GNU_UNIQUE, so ld.so bound every kernel to the first loaded one's TLS, and a compute kernel with
fp32_dest_acc_en=False after verify_attention (fp32_dest_acc_en=True) wrote past it into the heap."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from programs import tiles_program
from tt_specdec.runtime import emu

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# verify_attention on emu (DST_ACCUM_MODE true: State holds [4, 1024] floats), then the tiles program
# (DST_ACCUM_MODE false: [8, 1024]) three times; the tiles outputs are saved for the parent to compare.
CHILD = """
import sys, torch
sys.path.insert(0, {here!r})
from programs import tiles_program
from tt_specdec.runtime import emu
from tt_specdec import ops
first = sys.argv[1]
if first == "verify_attention":
    B, T, Hq, Hkv, S, D = 2, 3, 9, 3, 64, 64
    q, k, v = torch.randn(B, T, Hq, D), torch.randn(B, Hkv, S, D), torch.randn(B, Hkv, S, D)
    ops.verify_attention(q, k, v, torch.tensor([5, 9]), backend="emu")
g = torch.Generator().manual_seed(0)
a = torch.randn(96, 32, generator=g).to(torch.bfloat16)
b = (torch.rand(96, 32, generator=g) + 0.5).to(torch.bfloat16)
outs = [emu.run(tiles_program(3, a.dtype, op=0), {{"a": a, "b": b}}).outputs["out"] for _ in range(3)]
torch.save(outs, sys.argv[2])
"""


def run_child(first: str, out: Path) -> list[torch.Tensor]:
    r = subprocess.run([sys.executable, "-c", CHILD.format(here=str(HERE)), first, str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    # an abort ("double free or corruption", "malloc(): ...") is a negative return code here
    assert r.returncode == 0, f"{first} then tiles: rc {r.returncode}\n{r.stderr[-3000:]}"
    return torch.load(out)


def test_compute_kernels_of_both_dst_modes_run_in_one_process(tmp_path):
    after_other_kernels = run_child("verify_attention", tmp_path / "after.pt")
    alone = run_child("tiles_only", tmp_path / "alone.pt")
    for got in after_other_kernels:
        assert torch.equal(got, alone[0])


def test_kernel_so_exports_only_its_entry_point():
    if shutil.which("readelf") is None:
        pytest.fail("readelf (binutils, installed with g++) not found: needed to read the kernel's dynamic symbols")
    a = torch.zeros(32, 32, dtype=torch.bfloat16)
    for fp32_dest_acc_en in (False, True):  # builds this process has not loaded yet are built here
        emu.run(tiles_program(1, a.dtype, op=0, fp32_dest_acc_en=fp32_dest_acc_en), {"a": a, "b": a})
    assert emu._loaded
    for so in emu._loaded.values():
        syms = subprocess.run(["readelf", "-W", "--dyn-syms", so], capture_output=True, text=True, check=True).stdout
        defined = {f[7] for f in (line.split() for line in syms.splitlines())
                   if len(f) == 8 and f[0].endswith(":") and f[6] != "UND" and f[7] != "Name"}
        assert defined == {"emu_kernel_entry"}, f"{so} exports {sorted(defined)}"
