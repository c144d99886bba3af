// The CPU engine's linear, out[M, N] = x[M, K] @ W[N, K]^T with bf16 weights, on one matrix path.
//
// Every output element is computed by the same sequence of operations whatever the number of rows M,
// the row's place among them, or the thread that runs it: one accumulation chain over k in order, per
// path. So a k+1-row verify and a 1-row decode give bit-identical logits (the "exact mode" of issue 5)
// without giving up the weight reuse of a multi-row product: a weight panel is read from memory once
// and applied to all M rows. Different paths give different bits: avx2 and portable widen the weights
// to fp32 and keep fp32 activations; avx512_bf16 and amx round the activations to bf16 (nearest even)
// and multiply bf16 x bf16 into fp32 accumulators.
#pragma once

#include <cstdint>
#include <vector>

#include "matrix_path.hpp"

namespace tt_cpu {

// W in panels of 16 output columns. fp32-widening paths (portable, avx2): [N/16][K][16], where slot 2i
// of a k-step holds column i and slot 2i+1 column 8+i, so one 32-byte load widens to two fp32 vectors
// with one shift and one mask. bf16-product paths (avx512_bf16, amx): [N/16][Kp/2][16][2], Kp = K
// rounded up to 32 with zeros, the pair (k, k+1) of column c at [k/2][c]: VDPBF16PS's and an AMX B
// tile's layout, one 64-byte line per k-pair.
constexpr int PANEL = 16;
constexpr int KBLOCK = 32;  // an AMX tile's K: 16 rows of 64 bytes

struct PackedLinear {
    int64_t n = 0, k = 0, kp = 0, panels = 0;
    MatrixPath path;
    std::vector<uint16_t> w;

    // src: W [n, k] row-major, bf16 bits when src_is_bf16, else fp32 (rounded to bf16 here)
    PackedLinear(const void* src, int64_t n_, int64_t k_, bool src_is_bf16, MatrixPath path_);

    // out [M, n] = x [M, k] @ W^T; each group of panels is one pool task
    void run(const float* x, float* out, int64_t M) const;
};

bool widens_to_fp32(MatrixPath p);  // portable, avx2: fp32 activations; else bf16 activations

namespace kernels {

// What one call of a path's kernel sees. Path files include only this header and intrinsics: an
// inline function or template from elsewhere compiled with AVX-512 flags could be the copy the linker
// keeps for the whole module, and then fault on an AVX2-only CPU.
struct LinearArgs {
    const uint16_t* w;   // packed as the path's layout
    int64_t n, k, kp;    // kp: the padded K of the bf16 layout (== k for the fp32-widening paths)
    const float* x;      // [M, k] fp32 (fp32-widening paths)
    const uint16_t* xb;  // [round_up(M, 16), kp] bf16, zero-padded (bf16-product paths)
    float* out;          // [M, n]
    int64_t M;
};

// rows [0, M), panels [p0, p1)
void linear_portable(const LinearArgs& a, int64_t p0, int64_t p1);
void linear_avx2(const LinearArgs& a, int64_t p0, int64_t p1);
void linear_avx512_bf16(const LinearArgs& a, int64_t p0, int64_t p1);
void linear_amx(const LinearArgs& a, int64_t p0, int64_t p1);

}  // namespace kernels

}  // namespace tt_cpu
