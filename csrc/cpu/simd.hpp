// The vector helpers both halves of tt_specdec._cpu use (the decoder's kernels and the sampling rows):
// AVX2 + FMA when the build machine has them, else a portable path that gives the same bits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TT_CPU_AVX2 1
#endif

namespace tt_cpu {

#ifdef TT_CPU_AVX2
// Cephes' expf: 2^round(x log2 e) times a degree-5 polynomial, about 1 ulp.
inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
#endif

// exp over n floats in place, 8 at a time through one code path (a short tail goes through the
// same vector code in a padded buffer), so an element's result never depends on where it sits.
inline void exp_inplace(float* x, int64_t n) {
#ifdef TT_CPU_AVX2
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        alignas(32) float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::memcpy(tail, x + i, sizeof(float) * (n - i));
        _mm256_store_ps(tail, exp8(_mm256_load_ps(tail)));
        std::memcpy(x + i, tail, sizeof(float) * (n - i));
    }
#else
    for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
#endif
}

// the 8 partial sums of a vectorised reduction added up in one fixed order (hsum8x8 keeps it too)
inline float lane_sum(const float* l) { return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])); }

// the largest of p[0..n): eight lanes, then the tail (max is exact in any order). CheckFinite: also
// whether every value is finite (a sum of x - x stays 0 unless some x is inf or NaN)
template <bool CheckFinite = false>
inline float max_of(const float* p, int64_t n, bool* finite = nullptr) {
    float mx = -INFINITY, bad = 0.f;
    int64_t j = 0;
#ifdef TT_CPU_AVX2
    __m256 m8 = _mm256_set1_ps(-INFINITY), bad8 = _mm256_setzero_ps();
    __m256 m8b = m8, bad8b = bad8;  // two chains: one add's latency per 8 values would bound the loop
    for (; j + 16 <= n; j += 16) {
        __m256 v = _mm256_loadu_ps(p + j), w = _mm256_loadu_ps(p + j + 8);
        m8 = _mm256_max_ps(m8, v);
        m8b = _mm256_max_ps(m8b, w);
        if (CheckFinite) {
            bad8 = _mm256_add_ps(bad8, _mm256_sub_ps(v, v));
            bad8b = _mm256_add_ps(bad8b, _mm256_sub_ps(w, w));
        }
    }
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(p + j);
        m8 = _mm256_max_ps(m8, v);
        if (CheckFinite) bad8 = _mm256_add_ps(bad8, _mm256_sub_ps(v, v));
    }
    m8 = _mm256_max_ps(m8, m8b);
    bad8 = _mm256_add_ps(bad8, bad8b);
    alignas(32) float lanes[8], bads[8];
    _mm256_store_ps(lanes, m8);
    _mm256_store_ps(bads, bad8);
    for (int l = 0; l < 8; ++l) mx = std::max(mx, lanes[l]), bad += bads[l];
#endif
    for (; j < n; ++j) mx = std::max(mx, p[j]), bad += CheckFinite ? p[j] - p[j] : 0.f;
    if (CheckFinite) *finite = bad == 0.f;
    return mx;
}

// sum of a[d] * b[d] over D: 8-lane partial sums (one FMA chain each) added up by lane_sum; any D not
// a multiple of 8 is one scalar FMA chain
inline float dot(const float* a, const float* b, int64_t D) {
#ifdef TT_CPU_AVX2
    if (D % 8 == 0) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t d = 0; d < D; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc);
        alignas(32) float lanes[8];
        _mm256_store_ps(lanes, acc);
        return lane_sum(lanes);
    }
#endif
    float s = 0.f;
    for (int64_t d = 0; d < D; ++d) s = std::fma(a[d], b[d], s);
    return s;
}

}  // namespace tt_cpu
