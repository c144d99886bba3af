// The portable matrix path: one scalar fused multiply-add chain per output element over k in order, on
// fp32-widened bf16 weights; the same bits as linear_avx2.cpp (whose lanes run the same chains).
// Compiled without ISA flags: a CPU without AVX2 (or another architecture) runs it.
#include <cmath>
#include <cstring>

#include "linear.hpp"

namespace tt_cpu::kernels {

namespace {
inline float from_bf16(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
}  // namespace

void linear_portable(const LinearArgs& a, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
        const uint16_t* wp = a.w + p * a.k * PANEL;
        for (int c = 0; c < PANEL; ++c) {
            int64_t col = p * PANEL + c;
            if (col >= a.n) break;
            int slot = c < 8 ? 2 * c : 2 * (c - 8) + 1;
            for (int64_t m = 0; m < a.M; ++m) {
                const float* xr = a.x + m * a.k;
                float acc = 0.f;
                for (int64_t kk = 0; kk < a.k; ++kk) acc = std::fma(xr[kk], from_bf16(wp[kk * PANEL + slot]), acc);
                a.out[m * a.n + col] = acc;
            }
        }
    }
}

}  // namespace tt_cpu::kernels
