// The CPU decoder's kernels (models/cpu_llama.py): a bf16-weight linear, verify attention against a
// contiguous cache, and the whole decoder step built from them with RMSNorm, RoPE and SwiGLU.
//
// Every output element is computed by the same sequence of fp32 operations whatever the
// number of rows M in the call, the row's place among them, or the thread that runs it:
// a linear accumulates one fused multiply-add chain over k = 0..K-1 in order, attention
// walks its keys in order. So a k+1-row verify and a 1-row decode give bit-identical
// logits (the "exact mode" of issue 5) without giving up the weight reuse of a multi-row
// product: a weight panel is read from memory once and applied to all M rows.
//
// Weights are stored as bf16 (half the bytes of fp32: decode is memory-bound), widened to
// fp32 in registers; activations and accumulation are fp32. Pointers here are trusted: calls.cpp
// checks every tensor before it reaches them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "simd.hpp"

namespace tt_cpu {

// W is packed in panels of 16 output columns, [N/16][K][16] bf16. Within a panel's 16 values
// for one k, slot 2i holds column i and slot 2i+1 column 8+i, so one 32-byte load widens to
// two fp32 vectors with one shift (even slots) and one mask (odd slots).
constexpr int PANEL = 16;

// out[M, N] = x[M, K] @ W[N, K]^T
struct PackedLinear {
    int64_t n = 0, k = 0, panels = 0;
    std::vector<uint16_t> w;  // [panels][k][PANEL]

    // src: W [n, k] row-major, bf16 bits when src_is_bf16, else fp32 (rounded to bf16 here)
    PackedLinear(const void* src, int64_t n_, int64_t k_, bool src_is_bf16);

    // out [M, n] = x [M, k] @ W^T; each panel group is one pool task
    void run(const float* x, float* out, int64_t M) const;

private:
#ifdef TT_CPU_AVX2
    template <int MR, int NP>
    void accumulate(const float* x, const uint16_t* wp, int64_t m0, __m256 (&out)[MR][2 * NP]) const;
#endif
    template <int MR, int NP>
    void block(const float* x, float* out, int64_t m0, int64_t p) const;
    template <int MR, int NP>
    void blocks(const float* x, float* out, int64_t m0, int64_t p0, int64_t p1) const;
};

// q [B, T, Hq, D], caches [B, Hkv, S, D], out [B, T, Hq, D], fp32; row t of b sees keys 0..pos[b]+t
void attend(const float* q, const float* kc, const float* vc, float* out, const int64_t* pos, int64_t B, int64_t T,
            int64_t Hq, int64_t Hkv, int64_t S, int64_t D, float scale);

struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    std::shared_ptr<PackedLinear> qkv, wo, gate_up, down;
};

// the whole decoder step in one call: no Python or allocation between the kernels
struct CpuModel {
    int64_t dim, n_heads, n_kv, head_dim, ffn, max_len;
    float eps;
    std::vector<float> cos, sin;  // [max_len, head_dim]
    std::vector<Layer> layers;
    std::vector<float> final_norm;
    std::shared_ptr<PackedLinear> head;
    std::vector<float> h, qkv, q, att, o, gu, act;  // scratch, grown to the largest M seen

    // cos, sin [max_len, head_dim] (copied)
    CpuModel(int64_t dim_, int64_t n_heads_, int64_t n_kv_, int64_t head_dim_, int64_t ffn_, float eps_,
             const float* cos_, const float* sin_, int64_t max_len_);
    // the norms [dim] are copied; the linears are shared with their Python owners
    void add_layer(const float* attn_norm, const float* ffn_norm, std::shared_ptr<PackedLinear> qkv_,
                   std::shared_ptr<PackedLinear> wo_, std::shared_ptr<PackedLinear> gate_up_,
                   std::shared_ptr<PackedLinear> down_);
    void set_head(const float* norm, std::shared_ptr<PackedLinear> head_);

    // x [M = B*T, dim]: the embeddings in, the final hidden state (before the norm) out;
    // caches [layers, B, Hkv, S, D]; logits [M, V] when not null; pos[b] + T <= min(S, max_len)
    void forward(float* x, float* k_cache, float* v_cache, int64_t B, int64_t T, int64_t S,
                 const std::vector<int64_t>& pos, float* logits);
    // logits [M, V] of final hidden states x [M, dim]: the final norm, then the head
    void head_logits(const float* x, int64_t M, float* logits);
};

}  // namespace tt_cpu
