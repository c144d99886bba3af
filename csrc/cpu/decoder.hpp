// The CPU decoder's kernels (models/cpu_llama.py): verify attention against a contiguous cache, and the
// whole decoder step built from it, the linear (linear.hpp), RMSNorm, RoPE and SwiGLU.
//
// Every output element is computed by the same sequence of operations whatever the number of rows M in
// the call, the row's place among them, or the thread that runs it: a linear accumulates one chain over
// k in order (on the model's one matrix path), attention walks its keys in order. So a k+1-row verify and
// a 1-row decode give bit-identical logits (the "exact mode" of issue 5).
//
// Pointers here are trusted: calls.cpp checks every tensor before it reaches them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "linear.hpp"
#include "simd.hpp"

namespace tt_cpu {

// q [B, T, Hq, D], caches [B, Hkv, S, D], out [B, T, Hq, D], fp32; row t of b sees keys 0..pos[b]+t, or
// with parents [B, T] (a token tree: parents[b, 0] = -1, else an earlier row) keys 0..pos[b]-1 and the
// slots pos[b]+a of its path's rows a, scored and summed as if that path lay at pos[b]..pos[b]+depth
void attend(const float* q, const float* kc, const float* vc, float* out, const int64_t* pos, int64_t B, int64_t T,
            int64_t Hq, int64_t Hkv, int64_t S, int64_t D, float scale, const int64_t* parents = nullptr);

struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    std::shared_ptr<PackedLinear> qkv, wo, gate_up, down;
};

// the whole decoder step in one call: no Python or allocation between the kernels
struct CpuModel {
    int64_t dim, n_heads, n_kv, head_dim, ffn, max_len;
    MatrixPath path;  // every linear of the model is packed for this one path
    float eps;
    std::vector<float> cos, sin;  // [max_len, head_dim]
    std::vector<Layer> layers;
    std::vector<float> final_norm;
    std::shared_ptr<PackedLinear> head;
    std::vector<float> h, qkv, q, att, o, gu, act;  // scratch, grown to the largest M seen

    // cos, sin [max_len, head_dim] (copied)
    CpuModel(int64_t dim_, int64_t n_heads_, int64_t n_kv_, int64_t head_dim_, int64_t ffn_, float eps_,
             const float* cos_, const float* sin_, int64_t max_len_, MatrixPath path_);
    // the norms [dim] are copied; the linears are shared with their Python owners
    void add_layer(const float* attn_norm, const float* ffn_norm, std::shared_ptr<PackedLinear> qkv_,
                   std::shared_ptr<PackedLinear> wo_, std::shared_ptr<PackedLinear> gate_up_,
                   std::shared_ptr<PackedLinear> down_);
    void set_head(const float* norm, std::shared_ptr<PackedLinear> head_);

    // x [M = B*T, dim]: the embeddings in, the final hidden state (before the norm) out;
    // caches [layers, B, Hkv, S, D]; logits [M, V] when not null; pos[b] + T <= min(S, max_len)
    // parents [B, T] or null: a token tree, row t at RoPE position pos + its depth, its KV at slot pos + t
    // hidden [M, n, dim] or null: row m's hidden state after hidden_layers[j] blocks (increasing, 1..layers)
    // into hidden[m, j] (an EAGLE-3 drafter's features), copied between the blocks: the same kernels run
    void forward(float* x, float* k_cache, float* v_cache, int64_t B, int64_t T, int64_t S,
                 const std::vector<int64_t>& pos, float* logits, const int64_t* parents = nullptr,
                 float* hidden = nullptr, const std::vector<int64_t>& hidden_layers = {});
    // logits [M, V] of final hidden states x [M, dim]: the final norm, then the head
    void head_logits(const float* x, int64_t M, float* logits);
};

}  // namespace tt_cpu
