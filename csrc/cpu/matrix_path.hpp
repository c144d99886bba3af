// The matrix paths of the CPU engine's linear, chosen at run time from what the CPU has (matrix_path.cpp).
//
// Each path's kernels live in their own file compiled with that path's target flags (CMakeLists.txt), so
// one build runs on every x86-64-v3 machine and uses AMX or AVX-512 BF16 where they exist. A PackedLinear
// is packed for one path and a CpuModel refuses linears of mixed paths: decode and verify of one model
// always run the same kernel, which is what keeps a k-row verify bit-identical to k one-row decodes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tt_cpu {

enum class MatrixPath : int {
    portable = 0,     // scalar fp32 FMA chains on widened bf16 weights: the AVX2 path's bits, any CPU
    avx2 = 1,         // AVX2 FMA on fp32-widened bf16 weights, fp32 activations
    avx512_bf16 = 2,  // VDPBF16PS: bf16 weights x bf16-rounded activations, fp32 accumulation
    amx = 3,          // AMX TDPBF16PS tiles: 16 rows at once, bf16 x bf16, fp32 accumulation
};

const char* path_name(MatrixPath p);
// the path named `name`; throws std::invalid_argument naming the choices
MatrixPath path_from_name(const std::string& name);
// the paths this CPU (and OS) can run, fastest last; AMX only after the kernel granted tile data
std::vector<MatrixPath> supported_paths();
bool supported(MatrixPath p);
// the process's path: TT_SPECDEC_CPU_PATH when set (an error if this CPU cannot run it), else the
// fastest supported; fixed at the first call
MatrixPath default_path();

}  // namespace tt_cpu
