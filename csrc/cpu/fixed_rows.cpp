// The integer rows of the sampled accept rule (fixed_rows.hpp): sampling.fixed_params steps 1-10.
#include "fixed_rows.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include <immintrin.h>

#include "pool.hpp"

namespace tt_cpu {

namespace {

constexpr int kXFrac = 24;      // sampling.X_FRAC
constexpr int kAlignBits = 38;  // sampling.ALIGN_BITS

inline uint32_t bits_of(float v) {
    uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return b;
}

// accept_prefix_common.hpp's fp32_key (torch_impl.sort_keys): unsigned keys ordered as the logits, -0 == +0
inline uint32_t key_of(uint32_t b) {
    if ((b & 0x7FFFFFFFu) == 0) b = 0;
    return (b >> 31) ? ~b : (b | 0x80000000u);
}

// |value| = M * 2^e exactly, e = max(E, 1) - 150 (torch_impl.significand, e = -sh)
inline int64_t significand(uint32_t b, int64_t* e) {
    uint32_t E = (b >> 23) & 0xFF;
    *e = static_cast<int64_t>(E ? E : 1) - 150;
    return static_cast<int64_t>((b & 0x7FFFFFu) | (E ? 0x800000u : 0u));
}

struct RowMax {
    int64_t A, e;  // the largest logit as A * 2^e, A signed
};

// torch_impl.fixed_weights for one logit (fp32 bits b) below the row's largest: steps 2-4
inline int64_t weight(uint32_t b, const RowMax& top, int64_t scale, int64_t shift, const int64_t* t1,
                      const int64_t* t2, const int64_t* t3) {
    int64_t e;
    int64_t M = significand(b, &e);
    int64_t A = (b >> 31) ? -M : M;
    int64_t e0 = std::max(e, top.e) - kAlignBits;
    auto aligned = [e0](int64_t a, int64_t ea) {  // a * 2^(ea - e0): a left shift <= 38, or floor of a right one
        int64_t up = std::max<int64_t>(ea - e0, 0), down = std::min<int64_t>(std::max<int64_t>(e0 - ea, 0), 63);
        return static_cast<int64_t>(static_cast<uint64_t>(a) << up) >> down;
    };
    int64_t d = aligned(top.A, top.e) - aligned(A, e);  // [0, 2^63)
    int64_t nb = d ? 64 - __builtin_clzll(static_cast<uint64_t>(d)) : 0;
    int64_t cut = std::max<int64_t>(nb - 32, 0);
    int64_t D = d >> cut, r = shift - kXFrac - (e0 + cut);
    bool vanishing = D > 0 && r <= 0;  // x >= 2^30 / 2^24
    r = std::clamp<int64_t>(r, 1, 64);
    int64_t X = (((D * scale) >> (r - 1)) + 1) >> 1;  // rounded half up (0 for D = 0)
    int64_t xi = X >> kXFrac, f = X & ((int64_t{1} << kXFrac) - 1);
    int64_t m = (t1[f >> 16] * t2[(f >> 8) & 0xFF] + (int64_t{1} << 30)) >> 31;
    m = (m * t3[f & 0xFF] + (int64_t{1} << 30)) >> 31;
    int64_t small = std::min<int64_t>(xi, 31);
    return vanishing || xi >= 32 ? 0 : (m + ((int64_t{1} << small) >> 1)) >> small;
}

// a * 2^(ea - e0) in 8 lanes: a << max(ea - e0, 0) >> min(max(e0 - ea, 0), 63), as weight()'s
__attribute__((target("avx512f,avx512dq,avx512cd"))) inline __m512i aligned8(__m512i a, __m512i ea, __m512i e0) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i up = _mm512_max_epi64(_mm512_sub_epi64(ea, e0), zero);
    __m512i down = _mm512_min_epi64(_mm512_max_epi64(_mm512_sub_epi64(e0, ea), zero), _mm512_set1_epi64(63));
    return _mm512_srav_epi64(_mm512_sllv_epi64(a, up), down);
}

// weight() of 8 logits (bits [8]) whose keys are >= floor, 0 for the others, to w [8]: the same integer steps in
// 64-bit lanes (variable shifts, lzcnt for the bit length, 64-bit products, gathers from the tables)
__attribute__((target("avx512f,avx512dq,avx512cd"))) inline __m512i weight8(
    const uint32_t* bits, const uint32_t* keys, uint32_t floor, const RowMax& top, int64_t scale, int64_t shift,
    const int64_t* t1, const int64_t* t2, const int64_t* t3) {
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1), half = _mm512_set1_epi64(int64_t{1} << 30);
    __m512i b = _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits)));
    __m512i E = _mm512_and_si512(_mm512_srli_epi64(b, 23), _mm512_set1_epi64(0xFF));
    __m512i e = _mm512_sub_epi64(_mm512_max_epi64(E, one), _mm512_set1_epi64(150));
    __mmask8 normal = _mm512_cmpneq_epi64_mask(E, zero), negative = _mm512_test_epi64_mask(b, _mm512_set1_epi64(1u << 31));
    __m512i M = _mm512_mask_or_epi64(_mm512_and_si512(b, _mm512_set1_epi64(0x7FFFFF)), normal,
                                     _mm512_and_si512(b, _mm512_set1_epi64(0x7FFFFF)), _mm512_set1_epi64(0x800000));
    __m512i A = _mm512_mask_sub_epi64(M, negative, zero, M);
    __m512i top_e = _mm512_set1_epi64(top.e), e0 = _mm512_sub_epi64(_mm512_max_epi64(e, top_e), _mm512_set1_epi64(kAlignBits));
    __m512i d = _mm512_sub_epi64(aligned8(_mm512_set1_epi64(top.A), top_e, e0), aligned8(A, e, e0));
    __m512i nb = _mm512_sub_epi64(_mm512_set1_epi64(64), _mm512_lzcnt_epi64(d));  // lzcnt(0) = 64
    __m512i cut = _mm512_max_epi64(_mm512_sub_epi64(nb, _mm512_set1_epi64(32)), zero);
    __m512i D = _mm512_srlv_epi64(d, cut);
    __m512i r = _mm512_sub_epi64(_mm512_set1_epi64(shift - kXFrac), _mm512_add_epi64(e0, cut));
    __mmask8 vanishing = _mm512_cmpgt_epi64_mask(D, zero) & _mm512_cmple_epi64_mask(r, zero);
    r = _mm512_min_epi64(_mm512_max_epi64(r, one), _mm512_set1_epi64(64));
    __m512i X = _mm512_srli_epi64(_mm512_add_epi64(_mm512_srlv_epi64(_mm512_mullo_epi64(D, _mm512_set1_epi64(scale)),
                                                                     _mm512_sub_epi64(r, one)), one), 1);
    __m512i xi = _mm512_srli_epi64(X, kXFrac), f = _mm512_and_si512(X, _mm512_set1_epi64((1 << kXFrac) - 1));
    __m512i byte = _mm512_set1_epi64(0xFF);
    __m512i g1 = _mm512_i64gather_epi64(_mm512_srli_epi64(f, 16), t1, 8);
    __m512i g2 = _mm512_i64gather_epi64(_mm512_and_si512(_mm512_srli_epi64(f, 8), byte), t2, 8);
    __m512i g3 = _mm512_i64gather_epi64(_mm512_and_si512(f, byte), t3, 8);
    __m512i m = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mullo_epi64(g1, g2), half), 31);
    m = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mullo_epi64(m, g3), half), 31);
    __m512i small = _mm512_min_epi64(xi, _mm512_set1_epi64(31));
    __m512i w = _mm512_srlv_epi64(_mm512_add_epi64(m, _mm512_srli_epi64(_mm512_sllv_epi64(one, small), 1)), small);
    __m512i k = _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys)));
    __mmask8 live = _mm512_cmpge_epu64_mask(k, _mm512_set1_epi64(floor)) & ~vanishing &
                    _mm512_cmplt_epi64_mask(xi, _mm512_set1_epi64(32));
    return _mm512_maskz_mov_epi64(live, w);
}

// the weight pass from i = 0 in blocks of 8 (AVX-512 F, DQ, CD): returns where it stopped
__attribute__((target("avx512f,avx512dq,avx512cd"))) int64_t weights_avx512(
    const float* x, const uint32_t* keys, int64_t V, uint32_t floor, const RowMax& top, int64_t scale, int64_t shift,
    const int64_t* tables, int64_t* w, int64_t* total, int64_t* top_digit, int top_bits) {
    int64_t i = 0, sum = 0;
    const __m512i floor8 = _mm512_set1_epi64(floor);
    for (; i + 8 <= V; i += 8) {
        __m512i k8 = _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i)));
        if (!_mm512_cmpge_epu64_mask(k8, floor8)) {  // a block below the cut or top-k (most of a top-k row)
            _mm512_storeu_si512(w + i, _mm512_setzero_si512());
            continue;
        }
        __m512i w8 = weight8(reinterpret_cast<const uint32_t*>(x + i), keys + i, floor, top, scale, shift, tables,
                             tables + 256, tables + 512);
        _mm512_storeu_si512(w + i, w8);
        sum += _mm512_reduce_add_epi64(w8);
        if (top_digit != nullptr)
            for (int j = 0; j < 8; ++j) top_digit[keys[i + j] >> (32 - top_bits)] += w[i + j];
    }
    *total = sum;
    return i;
}

bool has_avx512() {
    static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                            __builtin_cpu_supports("avx512cd");
    return yes;
}

// torch_impl.weight_cut_key: a key below which every weight is 0 (floats on one value, as the host computes them)
inline uint32_t weight_cut_key(uint32_t max_bits, int64_t scale, int64_t shift) {
    double c = shift > -900 ? std::ldexp(static_cast<double>(scale), static_cast<int>(-std::max<int64_t>(shift, -2000)))
                            : INFINITY;
    float s_max;
    std::memcpy(&s_max, &max_bits, sizeof s_max);
    float cut = c > 0 ? static_cast<float>(static_cast<double>(s_max) - 33.5 / c) : -INFINITY;
    cut = std::nextafter(std::nextafter(cut, -INFINITY), -INFINITY);
    return key_of(bits_of(cut));
}

// The k-th largest of keys [V] (with repeats), k < V: a min-heap of the k largest for a small k (most keys fail
// one compare with its least), else nth_element on a copy
uint32_t kth_largest(const std::vector<uint32_t>& keys, int64_t k) {
    thread_local std::vector<uint32_t> heap;
    if (k > 1024) {
        heap.assign(keys.begin(), keys.end());
        std::nth_element(heap.begin(), heap.begin() + (k - 1), heap.end(), std::greater<uint32_t>());
        return heap[static_cast<size_t>(k - 1)];
    }
    heap.assign(keys.begin(), keys.begin() + k);
    std::make_heap(heap.begin(), heap.end(), std::greater<uint32_t>());
    for (size_t i = static_cast<size_t>(k); i < keys.size(); ++i)
        if (keys[i] > heap.front()) {
            std::pop_heap(heap.begin(), heap.end(), std::greater<uint32_t>());
            heap.back() = keys[i];
            std::push_heap(heap.begin(), heap.end(), std::greater<uint32_t>());
        }
    return heap.front();
}

}  // namespace

bool fixed_rows_avx512() { return has_avx512(); }

namespace {

constexpr int kTopBits = 11;  // the radix select's first digit: the key's top 11 bits

// Top-p on one row's weights w [V] (keys [V]): keeps, in key-descending then index-ascending order, a token while
// the w before it sums to < target, zeroing the others' w; returns the kept sum. The kept set is a prefix of that
// order (w >= 0), so it is found by a radix select of its last key K instead of a sort: the first digit's sums
// (top [2^11], summed in the weight pass), then 11 and 10 bits over the few tokens left; keys above K kept,
// K's ties in index order.
int64_t nucleus_fixed(const uint32_t* keys, int64_t* w, int64_t V, const int64_t* top, int64_t target) {
    int64_t above = 0;  // the w of the keys above the chosen digits
    uint32_t b = (1u << kTopBits) - 1;
    for (; above + top[b] < target; --b) above += top[b];  // target <= the row's sum: stops
    uint32_t prefix = b << (32 - kTopBits);
    thread_local std::vector<int32_t> cand;
    cand.clear();
    for (int64_t i = 0; i < V; ++i)
        if ((keys[i] >> (32 - kTopBits)) == b && w[i]) cand.push_back(static_cast<int32_t>(i));
    for (auto [shift, bits] : {std::pair{10, 11}, std::pair{0, 10}}) {
        int64_t sums[2048] = {};
        uint32_t mask = (1u << bits) - 1;
        for (int32_t i : cand) sums[(keys[i] >> shift) & mask] += w[i];
        for (b = mask; above + sums[b] < target; --b) above += sums[b];
        prefix |= b << shift;
        cand.erase(std::remove_if(cand.begin(), cand.end(), [&](int32_t i) { return ((keys[i] >> shift) & mask) != b; }),
                   cand.end());
    }
    int64_t tie_w = w[cand.front()], kept_ties = 0;
    while (kept_ties < static_cast<int64_t>(cand.size()) && above + kept_ties * tie_w < target) ++kept_ties;
    int64_t z = 0, ties_seen = 0;
    for (int64_t i = 0; i < V; ++i) {
        bool keep = keys[i] > prefix || (keys[i] == prefix && w[i] && ties_seen++ < kept_ties);
        w[i] = keep ? w[i] : 0;
        z += w[i];
    }
    return z;
}

}  // namespace

bool fixed_probs_rows(const float* x, int64_t R, int64_t V, int64_t scale, int64_t shift, int64_t top_k,
                      int64_t top_p_fixed, const int64_t* tables, int64_t* w, int64_t* z, bool avx512) {
    std::atomic<bool> finite{true};
    pool().run(R, [&](int64_t r) {
        const float* xr = x + r * V;
        int64_t* wr = w + r * V;
        thread_local std::vector<uint32_t> keys;
        keys.resize(static_cast<size_t>(V));
        uint32_t max_key = 0, bad = 0;
        uint32_t* kr = keys.data();
        for (int64_t i = 0; i < V; ++i) {  // a plain reduction: the compiler vectorizes it
            uint32_t b = bits_of(xr[i]);
            bad |= (b & 0x7F800000u) == 0x7F800000u;
            kr[i] = key_of(b);
            max_key = std::max(max_key, kr[i]);
        }
        if (bad) {
            finite = false;
            return;
        }
        int64_t at_max = std::find(kr, kr + V, max_key) - kr;  // the first maximum, as numpy's argmax
        uint32_t max_bits = bits_of(xr[at_max]);
        RowMax top;
        top.A = significand(max_bits, &top.e);
        if (max_bits >> 31) top.A = -top.A;
        uint32_t floor = weight_cut_key(max_bits, scale, shift);
        if (top_k > 0 && top_k < V) floor = std::max(floor, kth_largest(keys, top_k));  // top-k: ties kept
        const int64_t *t1 = tables, *t2 = tables + 256, *t3 = tables + 512;
        int64_t total = 0, top_digit[1 << kTopBits] = {}, i = 0;
        if (avx512 && has_avx512())
            i = weights_avx512(xr, keys.data(), V, floor, top, scale, shift, tables, wr, &total,
                               top_p_fixed ? top_digit : nullptr, kTopBits);
        for (; i < V; ++i) {
            uint32_t k = keys[static_cast<size_t>(i)];
            int64_t wi = k >= floor ? weight(bits_of(xr[i]), top, scale, shift, t1, t2, t3) : 0;
            wr[i] = wi;
            total += wi;
            top_digit[k >> (32 - kTopBits)] += wi;
        }
        if (top_p_fixed) {  // T = ceil(top_p_fixed * total / 2^32), total = z1 * 2^32 + z0: each product below 2^64
            uint64_t p = static_cast<uint64_t>(top_p_fixed), z0 = static_cast<uint64_t>(total) & 0xFFFFFFFFu;
            int64_t target = top_p_fixed * (total >> 32) + static_cast<int64_t>((p * z0 + 0xFFFFFFFFu) >> 32);
            total = nucleus_fixed(keys.data(), wr, V, top_digit, target);
        }
        z[r] = total;
    });
    return finite;
}

void residual_rows(const int64_t* pw, const int64_t* z, const float* q, int64_t R, int64_t V, int64_t* out) {
    for (int64_t r = 0; r < R; ++r) {
        int64_t zh = z[r] >> 24, zl = z[r] & 0xFFFFFF;
        for (int64_t i = r * V; i < (r + 1) * V; ++i) {
            int64_t e;
            int64_t M = significand(bits_of(q[i]), &e);  // q = M * 2^e, sh = -e
            if (-e <= 23) {  // q >= 1: floor(q z) >= z covers every weight
                out[i] = 0;
                continue;
            }
            int64_t qz = (M * zh + ((M * zl) >> 24)) >> std::min<int64_t>(-e - 24, 63);
            out[i] = std::max<int64_t>(pw[i] - qz, 0);
        }
    }
}

void sample_fixed_rows(const int64_t* w, int64_t R, int64_t V, const int64_t* u, int64_t* out) {
    for (int64_t r = 0; r < R; ++r) {
        const int64_t* wr = w + r * V;
        int64_t total = 0;
        for (int64_t i = 0; i < V; ++i) total += wr[i];
        int64_t threshold = u[r] * (total >> 24) + ((u[r] * (total & 0xFFFFFF)) >> 24), cum = 0, i = 0;
        for (; i < V - 1; ++i)
            if ((cum += wr[i]) > threshold) break;
        out[r] = i;
    }
}

}  // namespace tt_cpu
