// Off x86-64 only the portable matrix path exists (matrix_path.cpp never offers the others); these keep
// the dispatch in linear.cpp linking.
#include <stdexcept>

#include "linear.hpp"

namespace tt_cpu::kernels {

void linear_avx2(const LinearArgs&, int64_t, int64_t) { throw std::logic_error("avx2 path on a non-x86 build"); }
void linear_avx512_bf16(const LinearArgs&, int64_t, int64_t) { throw std::logic_error("avx512_bf16 on a non-x86 build"); }
void linear_amx(const LinearArgs&, int64_t, int64_t) { throw std::logic_error("amx path on a non-x86 build"); }

}  // namespace tt_cpu::kernels
