// tt_specdec._cpu: batch-invariant host kernels for the CPU decoder (models/cpu_llama.py).
//
// Every output element is computed by the same sequence of fp32 operations whatever the
// number of rows M in the call, the row's place among them, or the thread that runs it:
// a linear accumulates one fused multiply-add chain over k = 0..K-1 in order, attention
// walks its keys in order. So a k+1-row verify and a 1-row decode give bit-identical
// logits (the "exact mode" of issue 5) without giving up the weight reuse of a multi-row
// product: a weight panel is read from memory once and applied to all M rows.
//
// Weights are stored as bf16 (half the bytes of fp32: decode is memory-bound), widened to
// fp32 in registers; activations and accumulation are fp32.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TT_CPU_AVX2 1
#endif

namespace py = pybind11;

namespace {

// ---- a tiny thread pool: tasks are claimed, not assigned ---------------------------------------
// The caller and the workers take task indices from one atomic counter, so a worker that is
// descheduled (a busy machine) just takes fewer tasks and the caller never waits for it to wake;
// a task's result does not depend on who runs it. Workers spin briefly between calls, then sleep.
class Pool {
public:
    void set_threads(int n) {
        stop_workers();
        n_threads_ = n < 1 ? 1 : n;
        quit_ = false;
        for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker(); });
    }
    int threads() const { return n_threads_; }
    ~Pool() { stop_workers(); }

    // fn(i) for i in 0..n-1, spread over the threads; returns when all n are done
    void run(int64_t n, const std::function<void(int64_t)>& fn) {
        if (n_threads_ == 1 || n <= 1) {
            for (int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        uint64_t gen = (claim_.load() >> 32) + 1;
        task_fn_.store(&fn, std::memory_order_relaxed);
        tasks_.store(n, std::memory_order_relaxed);
        done_.store(0);
        claim_.store(gen << 32, std::memory_order_release);  // publishes task_fn_, tasks_
        {
            std::lock_guard<std::mutex> lock(mu_);  // wakes sleeping workers; spinning ones see claim_
        }
        cv_.notify_all();
        work(gen);
        while (done_.load(std::memory_order_acquire) != n) pause();
    }

private:
    static void pause() {
#ifdef TT_CPU_AVX2
        _mm_pause();
#endif
    }
    // claim and run tasks of generation `gen` until none are left (or a newer job started)
    void work(uint64_t gen) {
        for (;;) {
            uint64_t c = claim_.load(std::memory_order_acquire);
            if ((c >> 32) != gen || static_cast<int64_t>(c & 0xffffffffu) >= tasks_.load(std::memory_order_relaxed)) return;
            if (claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) {
                (*task_fn_.load(std::memory_order_relaxed))(static_cast<int64_t>(c & 0xffffffffu));  // the caller waits for it: fn stays valid
                done_.fetch_add(1, std::memory_order_acq_rel);
            }
        }
    }
    void worker() {
        uint64_t seen = claim_.load() >> 32;
        for (;;) {
            // spin a little (the next call usually follows within microseconds), then sleep
            for (int spin = 0; spin < 20000 && (claim_.load(std::memory_order_acquire) >> 32) == seen && !quit_; ++spin)
                pause();
            if ((claim_.load(std::memory_order_acquire) >> 32) == seen) {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait_for(lock, std::chrono::milliseconds(50),
                             [&] { return (claim_.load() >> 32) != seen || quit_; });
            }
            if (quit_) return;
            seen = claim_.load(std::memory_order_acquire) >> 32;
            work(seen);
        }
    }
    void stop_workers() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
    }
    int n_threads_ = 1;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<uint64_t> claim_{0};  // generation << 32 | next task index
    std::atomic<int64_t> done_{0};    // tasks of the current generation finished
    std::atomic<bool> quit_{false};
    std::atomic<int64_t> tasks_{0};  // published by the release store of claim_
    std::atomic<const std::function<void(int64_t)>*> task_fn_{nullptr};
};

Pool& pool() {
    static Pool p;
    return p;
}

// ---- bf16 ---------------------------------------------------------------------------------------
inline uint16_t to_bf16(float f) {  // round to nearest even, as torch's .bfloat16()
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// ---- linear: out[M, N] = x[M, K] @ W[N, K]^T --------------------------------------------------
// W is packed in panels of 16 output columns, [N/16][K][16] bf16. Within a panel's 16 values
// for one k, slot 2i holds column i and slot 2i+1 column 8+i, so one 32-byte load widens to
// two fp32 vectors with one shift (even slots) and one mask (odd slots).
constexpr int PANEL = 16;
constexpr int PREFETCH_K = 64;  // k-steps ahead: 2 KB of a panel's stream
constexpr int GROUP = 4;  // panels a thread takes at a time: 64 columns, K*128 bytes (fits L2)

struct PackedLinear {
    int64_t n = 0, k = 0, panels = 0;
    std::vector<uint16_t> w;  // [panels][k][PANEL]

    PackedLinear(uintptr_t src, int64_t n_, int64_t k_, bool src_is_bf16) : n(n_), k(k_) {
        panels = (n + PANEL - 1) / PANEL;
        w.assign(static_cast<size_t>(panels * k * PANEL), 0);
        for (int64_t col = 0; col < n; ++col) {
            int64_t p = col / PANEL, c = col % PANEL;
            int64_t slot = c < 8 ? 2 * c : 2 * (c - 8) + 1;
            for (int64_t kk = 0; kk < k; ++kk) {
                uint16_t v = src_is_bf16 ? reinterpret_cast<const uint16_t*>(src)[col * k + kk]
                                         : to_bf16(reinterpret_cast<const float*>(src)[col * k + kk]);
                w[static_cast<size_t>((p * k + kk) * PANEL + slot)] = v;
            }
        }
    }

#ifdef TT_CPU_AVX2
    // the register tile: MR rows x NP panels of fp32 accumulators, one FMA chain per element
    template <int MR, int NP>
    __attribute__((always_inline)) inline void accumulate(const float* x, const uint16_t* wp, int64_t m0,
                                                          __m256 (&out)[MR][2 * NP]) const {
        __m256 acc[MR][2 * NP];
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
            for (int j = 0; j < 2 * NP; ++j) acc[r][j] = _mm256_setzero_ps();
        const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
        for (int64_t kk = 0; kk < k; ++kk) {
            // the weight stream runs ahead of the FMAs: ask for it 2 KB early (DRAM latency, not bandwidth,
            // is what a dense multi-row tile waits on)
            // a one-row tile (decode) leaves the other panels to the hardware prefetcher; a multi-row
            // tile has the FMAs to hide one request per panel
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
                __m256 xv = _mm256_broadcast_ss(x + (m0 + r) * k + kk);
#pragma GCC unroll 16
                for (int j = 0; j < 2 * NP; ++j) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
            }
        }
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
            for (int j = 0; j < 2 * NP; ++j) out[r][j] = acc[r][j];
    }
#endif

    // columns of panels [p0, p1) for rows [m0, m0+MR), NP panels at a time
    template <int MR, int NP>
    void block(const float* x, float* out, int64_t m0, int64_t p) const {
        const uint16_t* wp = w.data() + static_cast<size_t>(p * k * PANEL);
#ifdef TT_CPU_AVX2
        __m256 acc[MR][2 * NP];
        accumulate<MR, NP>(x, wp, m0, acc);
        for (int r = 0; r < MR; ++r)
            for (int j = 0; j < NP; ++j) {
                int64_t col = (p + j) * PANEL;
                float* o = out + (m0 + r) * n + col;
                alignas(32) float tmp[PANEL];
                _mm256_store_ps(tmp, acc[r][2 * j]);
                _mm256_store_ps(tmp + 8, acc[r][2 * j + 1]);
                for (int64_t c = 0; c < std::min<int64_t>(PANEL, n - col); ++c) o[c] = tmp[c];
            }
#else
        // portable path: the same fused multiply-add chain per element, so the same bits
        for (int r = 0; r < MR; ++r)
            for (int j = 0; j < NP; ++j)
                for (int c = 0; c < PANEL; ++c) {
                    int64_t col = (p + j) * PANEL + c;
                    if (col >= n) continue;
                    int slot = c < 8 ? 2 * c : 2 * (c - 8) + 1;
                    float acc = 0.f;
                    for (int64_t kk = 0; kk < k; ++kk)
                        acc = std::fma(x[(m0 + r) * k + kk], from_bf16(wp[(j * k + kk) * PANEL + slot]), acc);
                    out[(m0 + r) * n + col] = acc;
                }
#endif
    }

    // panels [p0, p1) for rows [m0, m0+MR), NP panels per register tile (fewer at the group's end)
    template <int MR, int NP>
    void blocks(const float* x, float* out, int64_t m0, int64_t p0, int64_t p1) const {
        int64_t p = p0;
        for (; p + NP <= p1; p += NP) block<MR, NP>(x, out, m0, p);
        for (; p < p1; ++p) block<MR, 1>(x, out, m0, p);
    }

    // out [M, n] = x [M, k] @ W^T; each panel group is one pool task
    void run(const float* x, float* out, int64_t M) const {
        int64_t groups = (panels + GROUP - 1) / GROUP;
        pool().run(groups, [&](int64_t g) {
            int64_t p0 = g * GROUP, p1 = std::min<int64_t>(p0 + GROUP, panels);
            // all rows of a 6-row chunk in one pass over the panel group, so each weight is
            // widened once per 6 rows; 8-12 accumulators keep both FMA pipes busy
            int64_t m = 0;
            for (; m + 6 <= M; m += 6) blocks<6, 1>(x, out, m, p0, p1);
            switch (M - m) {
                case 5: blocks<5, 1>(x, out, m, p0, p1); break;
                case 4: blocks<4, 1>(x, out, m, p0, p1); break;
                case 3: blocks<3, 1>(x, out, m, p0, p1); break;
                case 2: blocks<2, 2>(x, out, m, p0, p1); break;
                case 1: blocks<1, 4>(x, out, m, p0, p1); break;
                default: break;
            }
        });
    }

    void forward(uintptr_t x_ptr, uintptr_t out_ptr, int64_t M) const {
        py::gil_scoped_release release;
        run(reinterpret_cast<const float*>(x_ptr), reinterpret_cast<float*>(out_ptr), M);
    }
};

// ---- attention: q rows against a contiguous cache, staircase mask -------------------------------
// q [B, T, Hq, D], caches [B, Hkv, S, D], out [B, T, Hq, D], fp32; row t of b sees keys 0..pos[b]+t.
// Each (b, t, h) walks its keys in order: a dot product in 8-lane partial sums over D with a
// fixed final sum, a softmax in key order, and an output accumulated key by key.
// exp over n floats in place, 8 at a time through one code path (a short tail goes through the
// same vector code in a padded buffer), so an element's result never depends on where it sits.
// Cephes' expf: 2^round(x log2 e) times a degree-5 polynomial, about 1 ulp.
#ifdef TT_CPU_AVX2
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

#ifdef TT_CPU_AVX2
// the 8 lanes of each a[i] summed in dot()'s order, ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)), lane i of the result
inline __m256 hsum8x8(const __m256* a) {
    __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));  // a0..3: l0123 | l4567
    __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}
#endif

// p[0..8) = scale * dot(q, k_j) for the 8 consecutive key rows at kb: dot()'s bits per key
inline void scores8(const float* q, const float* kb, int64_t D, float scale, float* p) {
#ifdef TT_CPU_AVX2
    if (D % 8 == 0) {
        __m256 acc[8];
        for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
        for (int64_t d = 0; d < D; d += 8) {
            __m256 qv = _mm256_loadu_ps(q + d);
            for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kb + i * D + d), acc[i]);
        }
        _mm256_storeu_ps(p, _mm256_mul_ps(hsum8x8(acc), _mm256_set1_ps(scale)));
        return;
    }
#endif
    for (int i = 0; i < 8; ++i) p[i] = dot(q, kb + i * D, D) * scale;
}

// softmax numerator and 1/denominator of n scores in place: max, x - max, exp, then the sum in
// 8 lanes (lane j % 8) added up in dot()'s order; every step is a function of the n values alone
inline float softmax_inplace(float* p, int64_t n) {
    int64_t full = n / 8 * 8;
    float mx = max_of(p, n);
    for (int64_t j = 0; j < n; ++j) p[j] -= mx;  // one subtraction each, vectorised or not
    exp_inplace(p, n);
    alignas(32) float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#ifdef TT_CPU_AVX2
    __m256 s8 = _mm256_setzero_ps();
    for (int64_t j = 0; j < full; j += 8) s8 = _mm256_add_ps(s8, _mm256_loadu_ps(p + j));
    _mm256_store_ps(lanes, s8);
#else
    for (int64_t j = 0; j < full; ++j) lanes[j % 8] += p[j];
#endif
    for (int64_t j = full; j < n; ++j) lanes[j % 8] += p[j];  // lane j % 8, in key order
    return 1.f / lane_sum(lanes);
}

// o[0..D) += sum over the n value rows at vb, in order, of (p[j] * inv) * v_j: one fused
// multiply-add per element and key, as std::fma, with o held in registers across the keys
inline void accumulate_values(const float* p, float inv, const float* vb, int64_t n, int64_t D, float* o) {
#ifdef TT_CPU_AVX2
    if (D == 64) {
        __m256 acc[8];
        for (int c = 0; c < 8; ++c) acc[c] = _mm256_loadu_ps(o + 8 * c);
        for (int64_t j = 0; j < n; ++j) {
            __m256 w = _mm256_set1_ps(p[j] * inv);
            const float* v = vb + j * D;
            for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 8 * c), acc[c]);
        }
        for (int c = 0; c < 8; ++c) _mm256_storeu_ps(o + 8 * c, acc[c]);
        return;
    }
#endif
    for (int64_t j = 0; j < n; ++j) {
        float w = p[j] * inv;
        for (int64_t d = 0; d < D; ++d) o[d] = std::fma(w, vb[j * D + d], o[d]);
    }
}

// A task is one sequence b and `per_task` query heads of one KV head, all T rows (row t sees keys
// 0..pos[b]+t). Keys go in blocks of 8, each block applied to every query of the task while it is
// in L1. Each query's operations and their order are those of the query alone, so its bits do not
// depend on T, on the other queries or on the split into tasks: a T-row verify equals T decodes.
void attend(const float* q, const float* kc, const float* vc, float* out, const int64_t* pos, int64_t B, int64_t T,
            int64_t Hq, int64_t Hkv, int64_t S, int64_t D, float scale) {
    int64_t G = Hq / Hkv;
    // one thread: a task per KV head (its keys read once per step); more: a task per query head,
    // so that the threads have enough tasks to share
    int64_t per_task = pool().threads() == 1 ? G : 1, tasks_per_b = Hq / per_task;
    pool().run(B * tasks_per_b, [&](int64_t task) {
        constexpr int64_t BLOCK = 8;
        int64_t b = task / tasks_per_b, h0 = (task % tasks_per_b) * per_task, NQ = per_task * T;
        const float* kb = kc + (b * Hkv + h0 / G) * S * D;
        const float* vb = vc + (b * Hkv + h0 / G) * S * D;
        int64_t max_keys = pos[b] + T;
        thread_local std::vector<float> scores;  // [NQ, S]: a full block of 8 only where a query sees all 8 keys
        scores.resize(static_cast<size_t>(NQ * S));
        auto query = [&](int64_t i) { return (b * T + i % T) * Hq + h0 + i / T; };  // head h0 + i / T, row i % T
        auto keys = [&](int64_t i) { return pos[b] + i % T + 1; };
        for (int64_t j = 0; j < max_keys; j += BLOCK)
            for (int64_t i = 0; i < NQ; ++i) {
                int64_t n = std::min(BLOCK, keys(i) - j);
                float* p = scores.data() + i * S + j;
                if (n == BLOCK) scores8(q + query(i) * D, kb + j * D, D, scale, p);
                else
                    for (int64_t jj = 0; jj < n; ++jj) p[jj] = dot(q + query(i) * D, kb + (j + jj) * D, D) * scale;
            }
        for (int64_t i = 0; i < NQ; ++i) {
            float* p = scores.data() + i * S;
            float inv = softmax_inplace(p, keys(i));
            float* o = out + query(i) * D;
            for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
            accumulate_values(p, inv, vb, keys(i), D, o);
        }
    });
}

void attention(uintptr_t q_ptr, uintptr_t k_ptr, uintptr_t v_ptr, uintptr_t out_ptr, std::vector<int64_t> pos,
               int64_t T, int64_t Hq, int64_t Hkv, int64_t S, int64_t D, float scale) {
    py::gil_scoped_release release;
    attend(reinterpret_cast<const float*>(q_ptr), reinterpret_cast<const float*>(k_ptr),
           reinterpret_cast<const float*>(v_ptr), reinterpret_cast<float*>(out_ptr), pos.data(),
           static_cast<int64_t>(pos.size()), T, Hq, Hkv, S, D, scale);
}

// ---- argmax of rows: torch.argmax(-1)'s answer (the first maximum) for finite rows ----------------
// Returns whether every value was finite (checked in the same pass as the max).
// With prob_ptr, also the maximum's softmax probability 1 / sum exp(x - max): a drafter's confidence.
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

bool argmax_rows(uintptr_t x_ptr, int64_t M, int64_t N, uintptr_t out_ptr, uintptr_t prob_ptr) {
    py::gil_scoped_release release;
    const float* x = reinterpret_cast<const float*>(x_ptr);
    int64_t* out = reinterpret_cast<int64_t*>(out_ptr);
    float* prob = reinterpret_cast<float*>(prob_ptr);
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

// ---- sampling: ops.sampling.process_logits and sample_inverse_cdf for fp32 rows, fused ----------
// process_logits' float64 torch ops cost ~1.6 ms a 49152-wide row, every sampled step, and a verify
// step runs k + 1 rows; here a row is a few passes over it. The definitions are process_logits':
// s = x / temperature; top-k keeps s >= the k-th largest; softmax; top-p keeps a sorted position
// (descending, ties lower index first) while the mass of the positions before it, cumsum - p in
// torch's order, is < top_p; then renormalised. exp is a 4-lane double polynomial (within ~1 ulp
// of libm), so the values agree with torch's to rounding, not bit for bit.
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

// p[i] = exp(x[i] / temperature - mx) for the x[i] >= floor (the others 0: top-k's cut); returns their
// sum (4 lanes added in a fixed order). With `near_top`, also the indices whose p >= near_level. Every
// element goes through the same 4-lane code (a short tail in a padded block), so equal logits give equal
// probabilities wherever they sit: top-p's ties are then broken by index, as the stable sort breaks them.
// (x * (1 / temperature): rounding aside the same scores; the order and ties of the x stay as they were.)
inline double exp_scores(const float* x, int64_t n, double temperature, double mx, float floor, double* p,
                         std::vector<int32_t>* near_top = nullptr, double near_level = 0.0) {
    double inv_t = 1.0 / temperature;
#ifdef TT_CPU_AVX2
    __m256d m4 = _mm256_set1_pd(mx), t4 = _mm256_set1_pd(inv_t), acc = _mm256_setzero_pd();
    __m256d near4 = _mm256_set1_pd(near_level);
    __m128 f4 = _mm_set1_ps(floor);
    auto block = [&](const float* xs, double* out, int64_t i, int lanes) {  // `lanes` valid of the 4
        __m128 xv = _mm_loadu_ps(xs);
        __m256d e = exp4d_nonpositive(_mm256_fmsub_pd(_mm256_cvtps_pd(xv), t4, m4));
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
        total += (p[i] = x[i] >= floor ? std::exp(std::fma(static_cast<double>(x[i]), inv_t, -mx)) : 0.0);
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

// Returns whether every logit was finite (checked in the max pass); non-finite rows' output is undefined.
bool probs_rows(uintptr_t x_ptr, int64_t R, int64_t V, double temperature, int64_t top_k, double top_p,
                uintptr_t out_ptr) {
    py::gil_scoped_release release;
    const float* x = reinterpret_cast<const float*>(x_ptr);
    double* out = reinterpret_cast<double*>(out_ptr);
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
        double inv = 1.0 / exp_scores(xr, V, temperature, static_cast<double>(max_x) / temperature, floor, p,
                                      top_p_on ? &near_top : nullptr, std::ldexp(1.0 - std::ldexp(1.0, -40), -14));
        if (top_p_on) nucleus_inplace(p, inv, p, V, top_p, inv, &near_top);  // the largest e is exp(0) = 1
        else
            for (int64_t i = 0; i < V; ++i) p[i] *= inv;
    });
    return finite;
}

// nucleus_inplace on each float64 row of p [R, V] (probabilities): top-p alone
void nucleus_rows(uintptr_t p_ptr, int64_t R, int64_t V, double top_p) {
    py::gil_scoped_release release;
    double* probs = reinterpret_cast<double*>(p_ptr);
    for (int64_t r = 0; r < R; ++r) {
        double* p = probs + r * V;
        nucleus_inplace(p, 1.0, p, V, top_p, *std::max_element(p, p + V), nullptr);
    }
}

// sample_inverse_cdf's draw, row by row: the first index whose running sum (torch.cumsum's: in order)
// exceeds u * total, at most V - 1. Zeros leave the running sum unchanged, so they are skipped.
void sample_rows(uintptr_t p_ptr, int64_t R, int64_t V, uintptr_t u_ptr, uintptr_t out_ptr) {
    py::gil_scoped_release release;
    const double* probs = reinterpret_cast<const double*>(p_ptr);
    const double* u = reinterpret_cast<const double*>(u_ptr);
    int64_t* out = reinterpret_cast<int64_t*>(out_ptr);
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

// ---- the core's fp32 FMA rate: 12 independent 8-lane chains, no memory (bench/bench_linear.py) -------
double fma_peak_gflops(int64_t iterations) {
    py::gil_scoped_release release;
    auto start = std::chrono::steady_clock::now();
#ifdef TT_CPU_AVX2
    // named registers: an array here was kept on the stack by the compiler, a store per FMA
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(0.f), c1 = _mm256_set1_ps(1.f), c2 = _mm256_set1_ps(2.f), c3 = _mm256_set1_ps(3.f);
    __m256 c4 = _mm256_set1_ps(4.f), c5 = _mm256_set1_ps(5.f), c6 = _mm256_set1_ps(6.f), c7 = _mm256_set1_ps(7.f);
    __m256 c8 = _mm256_set1_ps(8.f), c9 = _mm256_set1_ps(9.f), c10 = _mm256_set1_ps(10.f), c11 = _mm256_set1_ps(11.f);
    for (int64_t i = 0; i < iterations; ++i) {
        c0 = _mm256_fmadd_ps(c0, a, b), c1 = _mm256_fmadd_ps(c1, a, b), c2 = _mm256_fmadd_ps(c2, a, b);
        c3 = _mm256_fmadd_ps(c3, a, b), c4 = _mm256_fmadd_ps(c4, a, b), c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b), c7 = _mm256_fmadd_ps(c7, a, b), c8 = _mm256_fmadd_ps(c8, a, b);
        c9 = _mm256_fmadd_ps(c9, a, b), c10 = _mm256_fmadd_ps(c10, a, b), c11 = _mm256_fmadd_ps(c11, a, b);
    }
    __m256 total = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                                 _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    total = _mm256_add_ps(total, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, total);
    volatile float sink = lanes[0];  // keeps the loop
    (void)sink;
    double flops = 2.0 * 8 * 12 * static_cast<double>(iterations);
#else
    volatile float x = 1.f;
    for (int64_t i = 0; i < iterations; ++i) x = std::fma(x, 0.999999f, 1e-7f);
    double flops = 2.0 * static_cast<double>(iterations);
#endif
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return flops / seconds / 1e9;
}

// ---- the whole decoder step in one call: no Python or allocation between the kernels -----------
inline void rms_norm(const float* x, const float* w, float* out, int64_t M, int64_t dim, float eps) {
    for (int64_t m = 0; m < M; ++m) {
        const float* xr = x + m * dim;
        float inv = 1.f / std::sqrt(dot(xr, xr, dim) / static_cast<float>(dim) + eps);
        for (int64_t i = 0; i < dim; ++i) out[m * dim + i] = xr[i] * inv * w[i];
    }
}

// rotate-half RoPE (HF Llama): out = x * cos + cat(-x2, x1) * sin, cos/sin rows [D]
inline void rope(const float* x, const float* cos, const float* sin, float* out, int64_t D) {
    int64_t half = D / 2;
    for (int64_t i = 0; i < half; ++i) {
        out[i] = x[i] * cos[i] + (-x[i + half]) * sin[i];
        out[i + half] = x[i + half] * cos[i + half] + x[i] * sin[i + half];
    }
}

struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    std::shared_ptr<PackedLinear> qkv, wo, gate_up, down;
};

std::vector<float> copy_floats(uintptr_t ptr, int64_t n) {
    const float* p = reinterpret_cast<const float*>(ptr);
    return std::vector<float>(p, p + n);
}

struct CpuModel {
    int64_t dim, n_heads, n_kv, head_dim, ffn, max_len;
    float eps;
    std::vector<float> cos, sin;  // [max_len, head_dim]
    std::vector<Layer> layers;
    std::vector<float> final_norm;
    std::shared_ptr<PackedLinear> head;
    std::vector<float> h, qkv, q, att, o, gu, act;  // scratch, grown to the largest M seen

    CpuModel(int64_t dim_, int64_t n_heads_, int64_t n_kv_, int64_t head_dim_, int64_t ffn_, float eps_,
             uintptr_t cos_ptr, uintptr_t sin_ptr, int64_t max_len_)
        : dim(dim_), n_heads(n_heads_), n_kv(n_kv_), head_dim(head_dim_), ffn(ffn_), max_len(max_len_), eps(eps_),
          cos(copy_floats(cos_ptr, max_len_ * head_dim_)), sin(copy_floats(sin_ptr, max_len_ * head_dim_)) {}

    void add_layer(uintptr_t attn_norm, uintptr_t ffn_norm, std::shared_ptr<PackedLinear> qkv_,
                   std::shared_ptr<PackedLinear> wo_, std::shared_ptr<PackedLinear> gate_up_,
                   std::shared_ptr<PackedLinear> down_) {
        layers.push_back({copy_floats(attn_norm, dim), copy_floats(ffn_norm, dim), qkv_, wo_, gate_up_, down_});
    }
    void set_head(uintptr_t norm, std::shared_ptr<PackedLinear> head_) {
        final_norm = copy_floats(norm, dim);
        head = head_;
    }

    // x [M = B*T, dim]: the embeddings in, the final hidden state (before the norm) out;
    // caches [layers, B, Hkv, S, D]; logits [M, V] when not null
    void forward(float* x, float* k_cache, float* v_cache, int64_t B, int64_t T, int64_t S,
                 const std::vector<int64_t>& pos, float* logits) {
        int64_t M = B * T, D = head_dim, qkv_n = (n_heads + 2 * n_kv) * D;
        for (auto* buf : {&h, &att, &o}) buf->resize(static_cast<size_t>(M * std::max(dim, n_heads * D)));
        qkv.resize(static_cast<size_t>(M * qkv_n));
        q.resize(static_cast<size_t>(M * n_heads * D));
        gu.resize(static_cast<size_t>(M * 2 * ffn));
        act.resize(static_cast<size_t>(M * ffn));
        int64_t layer_stride = B * n_kv * S * D;
        for (size_t l = 0; l < layers.size(); ++l) {
            const Layer& L = layers[l];
            float* kc = k_cache + static_cast<int64_t>(l) * layer_stride;
            float* vc = v_cache + static_cast<int64_t>(l) * layer_stride;
            rms_norm(x, L.attn_norm.data(), h.data(), M, dim, eps);
            L.qkv->run(h.data(), qkv.data(), M);
            for (int64_t b = 0; b < B; ++b)
                for (int64_t t = 0; t < T; ++t) {
                    int64_t m = b * T + t, p = pos[b] + t;
                    const float* row = qkv.data() + m * qkv_n;
                    const float* c = cos.data() + p * D;
                    const float* s = sin.data() + p * D;
                    for (int64_t hq = 0; hq < n_heads; ++hq) rope(row + hq * D, c, s, q.data() + (m * n_heads + hq) * D, D);
                    for (int64_t hk = 0; hk < n_kv; ++hk) {
                        int64_t slot = ((b * n_kv + hk) * S + p) * D;
                        rope(row + (n_heads + hk) * D, c, s, kc + slot, D);
                        std::memcpy(vc + slot, row + (n_heads + n_kv + hk) * D, sizeof(float) * D);
                    }
                }
            attend(q.data(), kc, vc, att.data(), pos.data(), B, T, n_heads, n_kv, S, D, 1.f / std::sqrt(static_cast<float>(D)));
            L.wo->run(att.data(), o.data(), M);
            for (int64_t i = 0; i < M * dim; ++i) x[i] += o[i];
            rms_norm(x, L.ffn_norm.data(), h.data(), M, dim, eps);
            L.gate_up->run(h.data(), gu.data(), M);
            for (int64_t m = 0; m < M; ++m) {  // act = silu(gate) * up = gate / (1 + exp(-gate)) * up
                const float* gate = gu.data() + m * 2 * ffn;
                float* a = act.data() + m * ffn;
                for (int64_t f = 0; f < ffn; ++f) a[f] = -gate[f];
                exp_inplace(a, ffn);
                for (int64_t f = 0; f < ffn; ++f) a[f] = gate[f] / (1.f + a[f]) * gate[ffn + f];
            }
            L.down->run(act.data(), o.data(), M);
            for (int64_t i = 0; i < M * dim; ++i) x[i] += o[i];
        }
        if (logits != nullptr) head_logits(x, M, logits);
    }

    // logits [M, V] of final hidden states x [M, dim]: the final norm, then the head
    void head_logits(const float* x, int64_t M, float* logits) {
        h.resize(std::max(h.size(), static_cast<size_t>(M * dim)));
        rms_norm(x, final_norm.data(), h.data(), M, dim, eps);
        head->run(h.data(), logits, M);
    }

    void forward_py(uintptr_t x, uintptr_t k_cache, uintptr_t v_cache, int64_t B, int64_t T, int64_t S,
                    std::vector<int64_t> pos, uintptr_t logits) {
        for (int64_t b = 0; b < B; ++b)
            if (pos[b] < 0 || pos[b] + T > S || pos[b] + T > max_len)
                throw std::invalid_argument("pos: got " + std::to_string(pos[b]) + " with T=" + std::to_string(T) +
                                            ", expected pos + T <= " + std::to_string(std::min(S, max_len)));
        py::gil_scoped_release release;
        forward(reinterpret_cast<float*>(x), reinterpret_cast<float*>(k_cache), reinterpret_cast<float*>(v_cache), B, T,
                S, pos, reinterpret_cast<float*>(logits));
    }
};

}  // namespace

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "Batch-invariant CPU kernels (bf16-weight linear, attention) for tt_specdec's CPU decoder";
    m.def("set_threads", [](int n) { pool().set_threads(n); }, py::arg("n"));
    m.def("threads", [] { return pool().threads(); });
    m.def("has_avx2", [] {
#ifdef TT_CPU_AVX2
        return true;
#else
        return false;
#endif
    });
    py::class_<PackedLinear, std::shared_ptr<PackedLinear>>(m, "PackedLinear")
        .def(py::init<uintptr_t, int64_t, int64_t, bool>(), py::arg("weight_ptr"), py::arg("n"), py::arg("k"),
             py::arg("is_bf16"))
        .def_readonly("n", &PackedLinear::n)
        .def_readonly("k", &PackedLinear::k)
        .def("forward", &PackedLinear::forward, py::arg("x_ptr"), py::arg("out_ptr"), py::arg("m"));
    py::class_<CpuModel>(m, "CpuModel")
        .def(py::init<int64_t, int64_t, int64_t, int64_t, int64_t, float, uintptr_t, uintptr_t, int64_t>(),
             py::arg("dim"), py::arg("n_heads"), py::arg("n_kv_heads"), py::arg("head_dim"), py::arg("ffn_dim"),
             py::arg("eps"), py::arg("cos_ptr"), py::arg("sin_ptr"), py::arg("max_len"))
        .def("add_layer", &CpuModel::add_layer)
        .def("set_head", &CpuModel::set_head)
        .def("logits", [](CpuModel& self, uintptr_t x, int64_t M, uintptr_t out) {
            py::gil_scoped_release release;
            self.head_logits(reinterpret_cast<const float*>(x), M, reinterpret_cast<float*>(out));
        }, py::arg("x_ptr"), py::arg("m"), py::arg("logits_ptr"))
        .def("forward", &CpuModel::forward_py, py::arg("x_ptr"), py::arg("k_cache_ptr"), py::arg("v_cache_ptr"),
             py::arg("b"), py::arg("t"), py::arg("s"), py::arg("pos"), py::arg("logits_ptr"));
    m.def("argmax_rows", &argmax_rows, py::arg("x_ptr"), py::arg("M"), py::arg("N"), py::arg("out_ptr"),
          py::arg("prob_ptr") = 0,
          "out[m] = index of the first maximum of row m of x [M, N] fp32 (finite values), int64; prob[m] (fp32, "
          "when prob_ptr) = its softmax probability; returns whether every value was finite");
    m.def("probs_rows", &probs_rows, py::arg("x_ptr"), py::arg("R"), py::arg("V"), py::arg("temperature"),
          py::arg("top_k"), py::arg("top_p"), py::arg("out_ptr"),
          "out [R, V] float64 = ops.sampling.process_logits of the fp32 rows x [R, V], to rounding; returns "
          "whether every x was finite");
    m.def("nucleus_rows", &nucleus_rows, py::arg("p_ptr"), py::arg("R"), py::arg("V"), py::arg("top_p"),
          "top-p of the float64 probability rows p [R, V] in place (process_logits' rule), renormalised");
    m.def("sample_rows", &sample_rows, py::arg("p_ptr"), py::arg("R"), py::arg("V"), py::arg("u_ptr"),
          py::arg("out_ptr"),
          "out[r] (int64) = ops.sampling.sample_inverse_cdf of the float64 row p[r] with the float64 uniform u[r]");
    m.def("fma_peak_gflops", &fma_peak_gflops, py::arg("iterations"),
          "GFLOP/s of a register-only loop of fp32 FMAs on the calling thread (12 independent chains)");
    m.def("attention", &attention, py::arg("q_ptr"), py::arg("k_ptr"), py::arg("v_ptr"), py::arg("out_ptr"),
          py::arg("pos"), py::arg("t"), py::arg("hq"), py::arg("hkv"), py::arg("s"), py::arg("d"), py::arg("scale"));
}
