"""The dataflow kernels built for rv32im (clang-19, the JIT's flags) and run on the Unicorn CPU emulator
(bench/rv32_machine.py): issue 14's bound of 20 instructions per logit on the greedy argmax, and the
integer sampling writer on a RISC-V giving the torch op's tokens. Skipped without clang-19, the riscv64
binutils / headers or `unicorn` (not a dependency of the package: pip install unicorn)."""
import shutil
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def rv32():
    missing = [tool for tool in ("clang-19", "riscv64-unknown-elf-ld", "riscv64-unknown-elf-gcc", "llvm-nm-19")
               if shutil.which(tool) is None]
    if missing or not Path("/usr/riscv64-linux-gnu/include/c++/12").is_dir():
        pytest.skip(f"rv32 toolchain missing ({missing or 'riscv64 headers'}): tools/conformance/setup.sh and "
                    "Debian's gcc-riscv64-unknown-elf install it")
    pytest.importorskip("unicorn", reason="the Unicorn CPU emulator is not installed (pip install unicorn)")
    sys.path.insert(0, str(BENCH))
    import rv32_argmax
    import rv32_sampling
    return rv32_argmax, rv32_sampling


@pytest.mark.parametrize("kind", ["chain_writer", "tree_writer"])
@pytest.mark.parametrize("V,dtype", [(49152, torch.bfloat16), (128256, torch.float32)])
def test_greedy_argmax_at_most_20_instructions_per_logit(rv32, kind, V, dtype):
    r = rv32[0].measure(kind, V, dtype)
    assert r["instructions_per_element"] <= 20, r


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (50, 0.9)])
def test_sampling_writer_on_rv32_gives_the_torch_ops_tokens(rv32, dtype, top_k, top_p):
    # measure raises when the kernel's num_accepted / output_tokens differ from the torch op's
    r = rv32[1].measure(4096, dtype, 0.7, top_k, top_p)
    want = {"START", "MASS", "RESIDUAL", "SAMPLE"} | ({"TOP_K", "TOP_P"} if top_k else set())
    assert set(r["rounds"]) == want, r["rounds"]
    assert r["rows"].keys() >= {"accepted"} and r["rows"].keys() & {"rejected", "bonus"}, r["rows"]
