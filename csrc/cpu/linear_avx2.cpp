// The avx2 matrix path (compiled with -mavx2 -mfma): fp32-widened bf16 weights, fp32 activations, one
// FMA chain per output element over k in order. A register tile is MR rows x NP panels; every tile
// shape runs the same chain per element, so the result does not depend on M.
#include <immintrin.h>

#include "linear.hpp"

namespace tt_cpu::kernels {

namespace {

constexpr int PREFETCH_K = 64;  // k-steps ahead: 2 KB of a panel's stream

// the register tile: MR rows x NP panels of fp32 accumulators, one FMA chain per element
template <int MR, int NP>
__attribute__((always_inline)) inline void block(const LinearArgs& a, int64_t m0, int64_t p) {
    const int64_t k = a.k;
    const uint16_t* wp = a.w + p * k * PANEL;
    __m256 acc[MR][2 * NP];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < 2 * NP; ++j) acc[r][j] = _mm256_setzero_ps();
    const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    for (int64_t kk = 0; kk < k; ++kk) {
        // the weight stream runs ahead of the FMAs: ask for it 2 KB early. A one-row tile (decode) leaves
        // the other panels to the hardware prefetcher; a multi-row tile has the FMAs to hide one request
        // per panel
#pragma GCC unroll 16
        for (int j = 0; j < (MR >= 2 ? NP : 1); ++j)
            _mm_prefetch(reinterpret_cast<const char*>(wp + (j * k + kk + PREFETCH_K) * PANEL), _MM_HINT_T0);
        __m256 wv[2 * NP];
#pragma GCC unroll 16
        for (int j = 0; j < NP; ++j) {
            __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + (j * k + kk) * PANEL));
            wv[2 * j] = _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16));         // columns 0..7
            wv[2 * j + 1] = _mm256_castsi256_ps(_mm256_and_si256(raw, hi_mask));  // columns 8..15
        }
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            __m256 xv = _mm256_broadcast_ss(a.x + (m0 + r) * k + kk);
#pragma GCC unroll 16
            for (int j = 0; j < 2 * NP; ++j) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
        }
    }
    // unrolled, so that every acc index is a constant: a loop index would put acc in memory, and GCC then
    // stores every accumulator to the stack on each k-step (M >= 5 ran at half the FMA rate)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < NP; ++j) {
            int64_t col = (p + j) * PANEL;
            float* o = a.out + (m0 + r) * a.n + col;
            alignas(32) float tmp[PANEL];
            _mm256_store_ps(tmp, acc[r][2 * j]);
            _mm256_store_ps(tmp + 8, acc[r][2 * j + 1]);
            int64_t valid = a.n - col < PANEL ? a.n - col : PANEL;
            for (int64_t c = 0; c < valid; ++c) o[c] = tmp[c];
        }
}

// panels [p0, p1) for rows [m0, m0+MR), NP panels per register tile (fewer at the group's end)
template <int MR, int NP>
void blocks(const LinearArgs& a, int64_t m0, int64_t p0, int64_t p1) {
    int64_t p = p0;
    for (; p + NP <= p1; p += NP) block<MR, NP>(a, m0, p);
    for (; p < p1; ++p) block<MR, 1>(a, m0, p);
}

}  // namespace

void linear_avx2(const LinearArgs& a, int64_t p0, int64_t p1) {
    // all rows of a 6-row chunk in one pass over the panel group, so each weight is widened once per
    // 6 rows; 8-12 accumulators keep both FMA pipes busy
    int64_t m = 0;
    for (; m + 6 <= a.M; m += 6) blocks<6, 1>(a, m, p0, p1);
    switch (a.M - m) {
        case 5: blocks<5, 1>(a, m, p0, p1); break;
        case 4: blocks<4, 1>(a, m, p0, p1); break;
        case 3: blocks<3, 1>(a, m, p0, p1); break;
        case 2: blocks<2, 2>(a, m, p0, p1); break;
        case 1: blocks<1, 4>(a, m, p0, p1); break;
        default: break;
    }
}

}  // namespace tt_cpu::kernels
