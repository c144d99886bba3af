// The sampled accept rule's integer rows (sampling.fixed_params steps 1-10) on the host: the weights, the
// top-k / top-p cut, the residual and the inverse-CDF draw of tt_specdec/ops/accept_prefix/torch_impl.py,
// bit for bit (its numpy is the specification; these loops replace its ~40 full-row array passes a row).
// Pointers are trusted: calls.cpp checks every tensor before it reaches them.
#pragma once

#include <cstdint>

namespace tt_cpu {

// w [R, V] = the kept weights (0 elsewhere) and z [R] their sums of the fp32 logit rows x [R, V]: torch_impl's
// fixed_probs. tables [3, 256] = sampling.exp2_tables() (passed in: one definition of the constants).
// top_k 0 / top_p_fixed 0: off. avx512: the weights 8 at a time where the CPU has AVX-512 F, DQ and CD (the
// same integers). Returns whether every logit was finite (non-finite rows' output is undefined).
bool fixed_probs_rows(const float* x, int64_t R, int64_t V, int64_t scale, int64_t shift, int64_t top_k,
                      int64_t top_p_fixed, const int64_t* tables, int64_t* w, int64_t* z, bool avx512 = true);

// whether fixed_probs_rows' AVX-512 loop runs on this CPU
bool fixed_rows_avx512();

// out [R, V] = max(0, pw - floor(q * z)) of pw [R, V] (kept weights), z [R] and q [R, V] (fp32): torch_impl's
// residual_weights (step 9)
void residual_rows(const int64_t* pw, const int64_t* z, const float* q, int64_t R, int64_t V, int64_t* out);

// out[r] = the first index whose running sum of w[r] [V] exceeds floor(u[r] * sum / 2^24), at most V - 1:
// torch_impl's sample_fixed (step 10); u [R] in 0 .. 2^24 - 1
void sample_fixed_rows(const int64_t* w, int64_t R, int64_t V, const int64_t* u, int64_t* out);

}  // namespace tt_cpu
