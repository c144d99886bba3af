// The sampling rows: ops.sampling's argmax, process_logits, top-p and sample_inverse_cdf for rows on the
// CPU, fused. process_logits' float64 torch ops cost ~1.6 ms a 49152-wide row, every sampled step, and a
// verify step runs k + 1 rows; here a row is a few passes over it. Pointers are trusted: calls.cpp checks
// every tensor before it reaches them.
#pragma once

#include <cstdint>

namespace tt_cpu {

// out[m] = torch.argmax(-1)'s answer (the first maximum) for each finite row of x [M, N]; with prob (not
// null), also prob[m] = the maximum's softmax probability 1 / sum exp(x - max): a drafter's confidence.
// Returns whether every value was finite (checked in the same pass as the max).
bool argmax_rows(const float* x, int64_t M, int64_t N, int64_t* out, float* prob);

// out [R, V] = process_logits(x [R, V], temperature, top_k, top_p). The definitions are process_logits':
// s = x / temperature; top-k keeps s >= the k-th largest; softmax; top-p keeps a sorted position
// (descending, ties lower index first) while the mass of the positions before it, cumsum - p in
// torch's order, is < top_p; then renormalised. exp is a 4-lane double polynomial (within ~1 ulp
// of libm), so the values agree with torch's to rounding, not bit for bit.
// Returns whether every logit was finite (checked in the max pass); non-finite rows' output is undefined.
bool probs_rows(const float* x, int64_t R, int64_t V, double temperature, int64_t top_k, double top_p, double* out);

// process_logits' top-p alone on each probability row of probs [R, V], in place, renormalised
void nucleus_rows(double* probs, int64_t R, int64_t V, double top_p);

// out[r] = sample_inverse_cdf's draw from row r of probs [R, V] with the uniform u[r]: the first index
// whose running sum (torch.cumsum's: in order) exceeds u[r] * total, at most V - 1
void sample_rows(const double* probs, int64_t R, int64_t V, const double* u, int64_t* out);

}  // namespace tt_cpu
