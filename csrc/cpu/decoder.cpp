// The decoder's kernels (decoder.hpp): verify attention, and the step that runs them with the linear.
#include "decoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "pool.hpp"

namespace tt_cpu {

// ---- attention: q rows against a contiguous cache, staircase mask -------------------------------
namespace {

// Each (b, t, h) walks its keys in order: a dot product in 8-lane partial sums over D with a
// fixed final sum, a softmax in key order, and an output accumulated key by key.
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

}  // namespace

// A task is one sequence b and `per_task` query heads of one KV head, all T rows (row t sees keys
// 0..pos[b]+t). Keys go in blocks of 8, each block applied to every query of the task while it is in
// L1. Nothing a query computes can depend on T, on the other queries or on the split into tasks: a
// T-row verify equals T decodes.
void attend(const float* q, const float* kc, const float* vc, float* out, const int64_t* pos, int64_t B, int64_t T,
            int64_t Hq, int64_t Hkv, int64_t S, int64_t D, float scale, const int64_t* parents) {
    int64_t G = Hq / Hkv;
    // one thread: a task per KV head (its keys read once per step); more: a task per query head,
    // so that the threads have enough tasks to share
    int64_t per_task = pool().threads() == 1 ? G : 1, tasks_per_b = Hq / per_task;
    pool().run(B * tasks_per_b, [&](int64_t task) {
        constexpr int64_t BLOCK = 8;
        int64_t b = task / tasks_per_b, h0 = (task % tasks_per_b) * per_task, NQ = per_task * T;
        const float* kb = kc + (b * Hkv + h0 / G) * S * D;
        const float* vb = vc + (b * Hkv + h0 / G) * S * D;
        thread_local std::vector<float> scores;  // [NQ, S]: a full block of 8 only where a query sees all 8 keys
        scores.resize(static_cast<size_t>(NQ * S));
        auto query = [&](int64_t i) { return (b * T + i % T) * Hq + h0 + i / T; };  // head h0 + i / T, row i % T
        // a tree row sees the cache (keys 0..pos-1) and then its path's slots; its scores and values are
        // laid out as the path's keys will lie after rollback compacts them (pos + depth), so the row has
        // the bits that decoding the path one token at a time gives
        thread_local std::vector<int64_t> paths;  // [T, T]: row t's path, root first, slot offsets
        thread_local std::vector<int64_t> path_len;
        paths.resize(static_cast<size_t>(T * T));
        path_len.resize(static_cast<size_t>(T));
        for (int64_t t = 0; t < T; ++t) {
            int64_t len = 0;
            if (parents == nullptr) {
                for (int64_t a = 0; a <= t; ++a) paths[t * T + len++] = a;
            } else {
                for (int64_t a = t; a >= 0; a = parents[b * T + a]) paths[t * T + len++] = a;
                std::reverse(paths.begin() + t * T, paths.begin() + t * T + len);
            }
            path_len[static_cast<size_t>(t)] = len;
        }
        auto keys = [&](int64_t i) { return pos[b] + path_len[static_cast<size_t>(i % T)]; };
        // the chain: every key up to the row's own in blocks of 8; a tree: the cache's keys so
        int64_t blocked = parents == nullptr ? pos[b] + T : pos[b];
        for (int64_t j = 0; j < blocked; j += BLOCK)
            for (int64_t i = 0; i < NQ; ++i) {
                int64_t n = std::min(BLOCK, (parents == nullptr ? keys(i) : pos[b]) - j);
                float* p = scores.data() + i * S + j;
                if (n == BLOCK) scores8(q + query(i) * D, kb + j * D, D, scale, p);
                else
                    for (int64_t jj = 0; jj < n; ++jj) p[jj] = dot(q + query(i) * D, kb + (j + jj) * D, D) * scale;
            }
        if (parents != nullptr)  // a score is dot()'s bits whether it came in a block of 8 or alone
            for (int64_t i = 0; i < NQ; ++i)
                for (int64_t d = 0; d < path_len[static_cast<size_t>(i % T)]; ++d)
                    scores[i * S + pos[b] + d] = dot(q + query(i) * D, kb + (pos[b] + paths[(i % T) * T + d]) * D, D) * scale;
        for (int64_t i = 0; i < NQ; ++i) {
            float* p = scores.data() + i * S;
            float inv = softmax_inplace(p, keys(i));
            float* o = out + query(i) * D;
            for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
            if (parents == nullptr) {
                accumulate_values(p, inv, vb, keys(i), D, o);
                continue;
            }
            accumulate_values(p, inv, vb, pos[b], D, o);  // o round-trips through memory exactly between calls
            for (int64_t d = 0; d < path_len[static_cast<size_t>(i % T)]; ++d)
                accumulate_values(p + pos[b] + d, inv, vb + (pos[b] + paths[(i % T) * T + d]) * D, 1, D, o);
        }
    });
}

// ---- the whole decoder step ---------------------------------------------------------------------
namespace {

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

std::vector<float> copy_floats(const float* p, int64_t n) { return std::vector<float>(p, p + n); }

}  // namespace

CpuModel::CpuModel(int64_t dim_, int64_t n_heads_, int64_t n_kv_, int64_t head_dim_, int64_t ffn_, float eps_,
                   const float* cos_, const float* sin_, int64_t max_len_, MatrixPath path_)
    : dim(dim_), n_heads(n_heads_), n_kv(n_kv_), head_dim(head_dim_), ffn(ffn_), max_len(max_len_), path(path_), eps(eps_),
      cos(copy_floats(cos_, max_len_ * head_dim_)), sin(copy_floats(sin_, max_len_ * head_dim_)) {}

void CpuModel::add_layer(const float* attn_norm, const float* ffn_norm, std::shared_ptr<PackedLinear> qkv_,
                         std::shared_ptr<PackedLinear> wo_, std::shared_ptr<PackedLinear> gate_up_,
                         std::shared_ptr<PackedLinear> down_) {
    layers.push_back({copy_floats(attn_norm, dim), copy_floats(ffn_norm, dim), qkv_, wo_, gate_up_, down_});
}
void CpuModel::set_head(const float* norm, std::shared_ptr<PackedLinear> head_) {
    final_norm = copy_floats(norm, dim);
    head = head_;
}

void CpuModel::forward(float* x, float* k_cache, float* v_cache, int64_t B, int64_t T, int64_t S,
                       const std::vector<int64_t>& pos, float* logits, const int64_t* parents, float* hidden,
                       const std::vector<int64_t>& hidden_layers) {
    int64_t M = B * T, D = head_dim, qkv_n = (n_heads + 2 * n_kv) * D;
    for (auto* buf : {&h, &att, &o}) buf->resize(static_cast<size_t>(M * std::max(dim, n_heads * D)));
    qkv.resize(static_cast<size_t>(M * qkv_n));
    q.resize(static_cast<size_t>(M * n_heads * D));
    gu.resize(static_cast<size_t>(M * 2 * ffn));
    act.resize(static_cast<size_t>(M * ffn));
    int64_t layer_stride = B * n_kv * S * D;
    std::vector<int64_t> depth(static_cast<size_t>(M));  // a row's RoPE position is pos + its depth in the tree
    for (int64_t m = 0; m < M; ++m) {
        int64_t b = m / T, t = m % T;
        depth[static_cast<size_t>(m)] = parents == nullptr ? t : (t == 0 ? 0 : depth[static_cast<size_t>(b * T + parents[m])] + 1);
    }
    for (size_t l = 0; l < layers.size(); ++l) {
        const Layer& L = layers[l];
        float* kc = k_cache + static_cast<int64_t>(l) * layer_stride;
        float* vc = v_cache + static_cast<int64_t>(l) * layer_stride;
        rms_norm(x, L.attn_norm.data(), h.data(), M, dim, eps);
        L.qkv->run(h.data(), qkv.data(), M);
        for (int64_t b = 0; b < B; ++b)
            for (int64_t t = 0; t < T; ++t) {
                int64_t m = b * T + t, p = pos[b] + t, rp = pos[b] + depth[static_cast<size_t>(m)];
                const float* row = qkv.data() + m * qkv_n;
                const float* c = cos.data() + rp * D;
                const float* s = sin.data() + rp * D;
                for (int64_t hq = 0; hq < n_heads; ++hq) rope(row + hq * D, c, s, q.data() + (m * n_heads + hq) * D, D);
                for (int64_t hk = 0; hk < n_kv; ++hk) {
                    int64_t slot = ((b * n_kv + hk) * S + p) * D;
                    rope(row + (n_heads + hk) * D, c, s, kc + slot, D);
                    std::memcpy(vc + slot, row + (n_heads + n_kv + hk) * D, sizeof(float) * D);
                }
            }
        attend(q.data(), kc, vc, att.data(), pos.data(), B, T, n_heads, n_kv, S, D, 1.f / std::sqrt(static_cast<float>(D)),
               parents);
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
        auto n = static_cast<int64_t>(hidden_layers.size());
        for (int64_t j = 0; hidden != nullptr && j < n; ++j)
            if (hidden_layers[static_cast<size_t>(j)] == static_cast<int64_t>(l) + 1)
                for (int64_t m = 0; m < M; ++m) std::memcpy(hidden + (m * n + j) * dim, x + m * dim, sizeof(float) * dim);
    }
    if (logits != nullptr) head_logits(x, M, logits);
}

void CpuModel::head_logits(const float* x, int64_t M, float* logits) {
    h.resize(std::max(h.size(), static_cast<size_t>(M * dim)));
    rms_norm(x, final_norm.data(), h.data(), M, dim, eps);
    head->run(h.data(), logits, M);
}

}  // namespace tt_cpu
