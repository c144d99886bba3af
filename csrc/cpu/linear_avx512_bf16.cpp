// The avx512_bf16 matrix path (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16): VDPBF16PS
// multiplies a pair of bf16 activations (rounded once per call, linear.cpp) by a pair of bf16 weights
// in each of 16 fp32 lanes, one lane per output column. Each output element is one chain of VDPBF16PS
// over the k-pairs in order, whatever the register tile: the result does not depend on M.
#include <immintrin.h>

#include <cstring>

#include "linear.hpp"

namespace tt_cpu::kernels {

namespace {

constexpr int PREFETCH_PAIRS = 32;  // k-pairs ahead: 2 KB of a panel's stream

template <int MR, int NP>
__attribute__((always_inline)) inline void block(const LinearArgs& a, int64_t m0, int64_t p) {
    const int64_t pairs = a.kp / 2;
    const uint16_t* wp = a.w + p * a.kp * PANEL;  // panel p: [pairs][16][2]
    __m512 acc[MR][NP];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < pairs; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < NP; ++j)  // every panel's stream: few instructions per byte leave the prefetcher behind
            _mm_prefetch(reinterpret_cast<const char*>(wp + (j * pairs + i + PREFETCH_PAIRS) * 2 * PANEL), _MM_HINT_T0);
        __m512bh wv[NP];
#pragma GCC unroll 16
        for (int j = 0; j < NP; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(wp + (j * pairs + i) * 2 * PANEL);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            int32_t xpair;  // activations k = 2i, 2i+1 of row m0 + r, in every lane
            std::memcpy(&xpair, a.xb + (m0 + r) * a.kp + 2 * i, 4);
            __m512bh xv = (__m512bh)_mm512_set1_epi32(xpair);
#pragma GCC unroll 16
            for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], xv, wv[j]);
        }
    }
    // unrolled: constant acc indices keep the accumulators in registers (linear_avx2.cpp says why)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < NP; ++j) {
            int64_t col = (p + j) * PANEL;
            float* o = a.out + (m0 + r) * a.n + col;
            if (a.n - col >= PANEL) {
                _mm512_storeu_ps(o, acc[r][j]);
            } else {
                alignas(64) float tmp[PANEL];
                _mm512_store_ps(tmp, acc[r][j]);
                for (int64_t c = 0; c < a.n - col; ++c) o[c] = tmp[c];
            }
        }
}

// panels [p0, p1) for rows [m0, m0+MR): NP panels per register tile, then 4, 2, 1 at the group's end
template <int MR, int NP>
void blocks(const LinearArgs& a, int64_t m0, int64_t p0, int64_t p1) {
    int64_t p = p0;
    for (; p + NP <= p1; p += NP) block<MR, NP>(a, m0, p);
    if constexpr (NP > 4) {
        if (p + 4 <= p1) block<MR, 4>(a, m0, p), p += 4;
    }
    if (p + 2 <= p1) block<MR, 2>(a, m0, p), p += 2;
    if (p < p1) block<MR, 1>(a, m0, p);
}

}  // namespace

void linear_avx512_bf16(const LinearArgs& a, int64_t p0, int64_t p1) {
    // 6 rows x 4 panels: 24 accumulators, 4 weight vectors and a broadcast of 32 registers. One or two
    // rows take 8 panels (linear.cpp gives them groups of 8): a VDPBF16PS chain's latency needs 8 or more
    // chains in flight, 4 left a decode at half the speed of a 2-row verify (Zen 4)
    int64_t m = 0;
    for (; m + 6 <= a.M; m += 6) blocks<6, 4>(a, m, p0, p1);
    switch (a.M - m) {
        case 5: blocks<5, 4>(a, m, p0, p1); break;
        case 4: blocks<4, 4>(a, m, p0, p1); break;
        case 3: blocks<3, 4>(a, m, p0, p1); break;
        case 2: blocks<2, 8>(a, m, p0, p1); break;
        case 1: blocks<1, 8>(a, m, p0, p1); break;
        default: break;
    }
}

}  // namespace tt_cpu::kernels
