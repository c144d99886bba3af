// The sampling rows (sampling_rows.hpp): argmax, process_logits' probabilities, top-p and the inverse-CDF draw.
#include "sampling_rows.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "pool.hpp"
#include "simd.hpp"

namespace tt_cpu {

namespace {

inline float sum_exp_minus(const float* p, int64_t n, float mx) {  // sum of exp(p[i] - mx)
    float total = 0.f;
    int64_t j = 0;
#ifdef TT_CPU_AVX2
    __m256 acc = _mm256_setzero_ps(), m8 = _mm256_set1_ps(mx);
    for (; j + 8 <= n; j += 8) acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), m8)));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    total = lane_sum(lanes);
#endif
    for (; j < n; ++j) total += std::exp(p[j] - mx);
    return total;
}

// the first i with p[i] == v (n - 1 when none: a row with NaN has no maximum to find)
inline int64_t first_index_of(const float* p, int64_t n, float v) {
    int64_t i = 0;
#ifdef TT_CPU_AVX2
    __m256 v8 = _mm256_set1_ps(v);
    for (; i + 8 <= n; i += 8) {
        int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + i), v8, _CMP_EQ_OQ));
        if (hit) return i + __builtin_ctz(static_cast<unsigned>(hit));
    }
#endif
    while (i < n - 1 && p[i] != v) ++i;
    return i;
}

}  // namespace

bool argmax_rows(const float* x, int64_t M, int64_t N, int64_t* out, float* prob) {
    bool finite = true;
    for (int64_t m = 0; m < M; ++m) {
        const float* r = x + m * N;
        bool row_finite;
        float mx = max_of<true>(r, N, &row_finite);
        finite = finite && row_finite;
        out[m] = first_index_of(r, N, mx);
        if (prob != nullptr) prob[m] = 1.f / sum_exp_minus(r, N, mx);
    }
    return finite;
}

namespace {

#ifdef TT_CPU_AVX2
// exp(x) for x <= 0 (x < -746 gives 0): x = n ln2 + r, |r| <= ln2/2, exp(r) by its Taylor series to
// r^13, times 2^n applied in two halves so that results below 2^-1022 round as denormals do
inline __m256d exp4d_nonpositive(__m256d x) {
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);  // 1.5 * 2^52: adding it rounds to an integer
    x = _mm256_max_pd(x, _mm256_set1_pd(-746.0));
    __m256d n = _mm256_sub_pd(_mm256_fmadd_pd(x, _mm256_set1_pd(1.4426950408889634), magic), magic);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_factorial[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                                           1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
                                           1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    __m256d y = _mm256_set1_pd(inv_factorial[0]);
    for (int i = 1; i < 14; ++i) y = _mm256_fmadd_pd(y, r, _mm256_set1_pd(inv_factorial[i]));
    __m256d half = _mm256_floor_pd(_mm256_mul_pd(n, _mm256_set1_pd(0.5)));  // n = half + rest, both >= -538
    __m256d rest = _mm256_sub_pd(n, half);
    auto pow2 = [&](__m256d e) {  // 2^e for integral e in [-1022, 1023]: the low bits of e + magic are e
        __m256i bits = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(e, magic)), _mm256_castpd_si256(magic));
        return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(bits, _mm256_set1_epi64x(1023)), 52));
    };
    return _mm256_mul_pd(_mm256_mul_pd(y, pow2(half)), pow2(rest));
}
#endif

// p[i] = exp((x[i] - max_x) / temperature) for the x[i] >= floor (the others 0: top-k's cut); returns their
// sum (4 lanes added in a fixed order). With `near_top`, also the indices whose p >= near_level. Every
// element goes through the same 4-lane code (a short tail in a padded block), so equal logits give equal
// probabilities wherever they sit: top-p's ties are then broken by index, as the stable sort breaks them.
// The max is subtracted before the scaling: the largest x gets exp(0) = 1 at any temperature (x / T - max_x / T
// left it the rounding error of x / T, NaN past |x / T| ~ 1e18); 1 / T is capped so that 0 * (1 / T) stays 0.
// Rounding is monotone: the order and ties of the x stay as they were.
inline double exp_scores(const float* x, int64_t n, double temperature, float max_x, float floor, double* p,
                         std::vector<int32_t>* near_top = nullptr, double near_level = 0.0) {
    double inv_t = std::min(1.0 / temperature, DBL_MAX), mx = max_x;
#ifdef TT_CPU_AVX2
    __m256d m4 = _mm256_set1_pd(mx), t4 = _mm256_set1_pd(inv_t), acc = _mm256_setzero_pd();
    __m256d near4 = _mm256_set1_pd(near_level);
    __m128 f4 = _mm_set1_ps(floor);
    auto block = [&](const float* xs, double* out, int64_t i, int lanes) {  // `lanes` valid of the 4
        __m128 xv = _mm_loadu_ps(xs);
        __m256d e = exp4d_nonpositive(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(xv), m4), t4));
        __m128 keep = _mm_and_ps(_mm_cmpge_ps(xv, f4), _mm_castsi128_ps(_mm_cmplt_epi32(
            _mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(lanes))));
        e = _mm256_and_pd(e, _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(keep))));
        _mm256_storeu_pd(out, e);
        acc = _mm256_add_pd(acc, e);
        if (near_top != nullptr) {
            int hits = _mm256_movemask_pd(_mm256_cmp_pd(e, near4, _CMP_GE_OQ)) & ((1 << lanes) - 1);
            for (; hits; hits &= hits - 1) near_top->push_back(static_cast<int32_t>(i + __builtin_ctz(hits)));
        }
    };
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) block(x + i, p + i, i, 4);
    if (i < n) {
        float xs[4] = {floor, floor, floor, floor};
        alignas(32) double out[4];
        std::memcpy(xs, x + i, sizeof(float) * static_cast<size_t>(n - i));
        block(xs, out, i, static_cast<int>(n - i));
        std::memcpy(p + i, out, sizeof(double) * static_cast<size_t>(n - i));
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, acc);
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#else
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        total += (p[i] = x[i] >= floor ? std::exp((static_cast<double>(x[i]) - mx) * inv_t) : 0.0);
        if (near_top != nullptr && p[i] >= near_level) near_top->push_back(static_cast<int32_t>(i));
    }
    return total;
#endif
}

// the mass of the p[i] >= level (4 lanes, then the tail)
inline double mass_at_least(const double* p, int64_t n, double level) {
    double total = 0.0;
    int64_t i = 0;
#ifdef TT_CPU_AVX2
    __m256d l4 = _mm256_set1_pd(level), acc = _mm256_setzero_pd();
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(p + i);
        acc = _mm256_add_pd(acc, _mm256_and_pd(v, _mm256_cmp_pd(v, l4, _CMP_GE_OQ)));
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, acc);
    total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
    for (; i < n; ++i) total += p[i] >= level ? p[i] : 0.0;
    return total;
}

// The nucleus of the probabilities e[i] * inv (e: the softmax numerators) from the tokens at and above a
// level: keeps the candidates p >= level that top-p keeps, zeroes the e of those it drops, and returns
// the mass kept. The nucleus is a prefix of the sorted order: with level = max_p 2^-shift holding at
// least top_p + 1e-9 of the mass, every later position's mass before it is >= top_p beyond rounding.
// The candidates are sorted exactly (p descending, index ascending: the stable sort's order) and summed
// in that order, as torch.cumsum sums the full sort.
double nucleus_of(double* e, double inv, double top_p, double level, const std::vector<int32_t>& candidates) {
    thread_local std::vector<std::pair<double, int32_t>> order;  // (p, index)
    order.clear();
    for (int32_t i : candidates)
        if (e[i] * inv >= level) order.emplace_back(e[i] * inv, i);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    double cum = 0.0, kept = 0.0;
    for (const auto& [p, i] : order) {
        cum += p;
        if (cum - p < top_p) kept += p;
        else e[i] = 0.0;  // cum already holds it: later positions see the mass before them as the sort does
    }
    return kept;
}

// Top-p on e[0..V) * inv (max_p: the largest), written to p[0..V) = the renormalised probabilities (e and p
// may be the same array). `near_top`: the indices with e >= 2^-14 (1 - 2^-40) of the largest e, if known:
// the usual nucleus lies among them; otherwise (or if it does not) a mass pass per level over the row,
// down to level 0 (every token: the full sort) within 1e-9 of top_p = 1.
void nucleus_inplace(double* e, double inv, double* p, int64_t V, double top_p, double max_p,
                     const std::vector<int32_t>* near_top) {
    double level = -1.0;
    thread_local std::vector<int32_t> candidates;
    if (near_top != nullptr) {
        for (int shift : {2, 6, 14}) {
            double at = std::ldexp(max_p, -shift), mass = 0.0;
            for (int32_t i : *near_top) mass += e[i] * inv >= at ? e[i] * inv : 0.0;
            if (mass >= top_p + 1e-9) {
                level = at;
                break;
            }
        }
    }
    if (level >= 0.0) {
        candidates.assign(near_top->begin(), near_top->end());
    } else {  // scan the row: p = e * inv first, level by level
        for (int64_t i = 0; i < V; ++i) p[i] = e[i] * inv;
        e = p, inv = 1.0, level = 0.0;
        for (int shift : {2, 6, 14, 30, 62, 126, 254})
            if (mass_at_least(p, V, std::ldexp(max_p, -shift)) >= top_p + 1e-9) {
                level = std::ldexp(max_p, -shift);
                break;
            }
        candidates.clear();
        for (int64_t i = 0; i < V; ++i)
            if (p[i] >= level) candidates.push_back(static_cast<int32_t>(i));
    }
    double inv_kept = 1.0 / nucleus_of(e, inv, top_p, level, candidates);
    for (int64_t i = 0; i < V; ++i) {
        double q = e[i] * inv;
        p[i] = q >= level ? q * inv_kept : 0.0;
    }
}

}  // namespace

bool probs_rows(const float* x, int64_t R, int64_t V, double temperature, int64_t top_k, double top_p, double* out) {
    std::atomic<bool> finite{true};
    pool().run(R, [&](int64_t r) {
        const float* xr = x + r * V;
        double* p = out + r * V;
        bool row_finite;
        float max_x = max_of<true>(xr, V, &row_finite);
        if (!row_finite) {
            finite = false;
            return;
        }
        float floor = -INFINITY;  // top-k: the k-th largest logit (x / temperature keeps the order of the x)
        if (top_k > 0 && top_k < V) {
            thread_local std::vector<float> scratch;
            scratch.assign(xr, xr + V);
            std::nth_element(scratch.begin(), scratch.begin() + (top_k - 1), scratch.end(), std::greater<float>());
            floor = scratch[static_cast<size_t>(top_k - 1)];
        }
        thread_local std::vector<int32_t> near_top;
        near_top.clear();
        bool top_p_on = top_p < 1.0;
        double inv = 1.0 / exp_scores(xr, V, temperature, max_x, floor, p,
                                      top_p_on ? &near_top : nullptr, std::ldexp(1.0 - std::ldexp(1.0, -40), -14));
        if (top_p_on) nucleus_inplace(p, inv, p, V, top_p, inv, &near_top);  // the largest e is exp(0) = 1
        else
            for (int64_t i = 0; i < V; ++i) p[i] *= inv;
    });
    return finite;
}

void nucleus_rows(double* probs, int64_t R, int64_t V, double top_p) {
    for (int64_t r = 0; r < R; ++r) {
        double* p = probs + r * V;
        nucleus_inplace(p, 1.0, p, V, top_p, *std::max_element(p, p + V), nullptr);
    }
}

void sample_rows(const double* probs, int64_t R, int64_t V, const double* u, int64_t* out) {
    for (int64_t r = 0; r < R; ++r) {
        const double* p = probs + r * V;
        double total = 0.0;
        for (int64_t i = 0; i < V; ++i)
            if (p[i] != 0.0) total += p[i];
        double threshold = u[r] * total, cum = 0.0;
        int64_t i = 0;
        for (; i < V - 1; ++i) {
            if (p[i] != 0.0) cum += p[i];
            if (cum > threshold) break;
        }
        out[r] = i;
    }
}

}  // namespace tt_cpu
