// Shared by the host (tt_specdec/ops/accept_prefix_program.py reads these names) and the
// kernels: argument indices, so the two sides cannot drift.
#pragma once

#include <cstdint>

namespace accept_prefix {

// reader_accept_prefix.cpp runtime args
constexpr uint32_t RT_READER_LOGITS_ADDR = 0;     // logits [B, k+1, V], one page per row
constexpr uint32_t RT_READER_NUM_DRAFT_ADDR = 1;  // num_draft [B] int32, one page
constexpr uint32_t RT_READER_V_START = 2;         // this core's vocabulary slice [v_start, v_end)
constexpr uint32_t RT_READER_V_END = 3;

// reader_accept_prefix.cpp compile-time args
constexpr uint32_t CT_READER_CB_LOGITS = 0;
constexpr uint32_t CT_READER_CB_NUM_DRAFT = 1;
constexpr uint32_t CT_READER_CHUNK = 2;        // vocabulary entries per cb_logits page
constexpr uint32_t CT_READER_BATCH = 3;        // B
constexpr uint32_t CT_READER_ROWS = 4;         // k + 1
constexpr uint32_t CT_READER_LOGITS_TA = 5;    // TensorAccessorArgs of logits (2 args)
constexpr uint32_t CT_READER_NUM_DRAFT_TA = 7; // TensorAccessorArgs of num_draft (2 args)

// writer_accept_prefix.cpp runtime args
constexpr uint32_t RT_WRITER_V_START = 0;
constexpr uint32_t RT_WRITER_V_END = 1;
constexpr uint32_t RT_WRITER_CORE_ID = 2;          // 0 .. num_cores-1; core 0 reduces and writes
constexpr uint32_t RT_WRITER_REDUCE_NOC_X = 3;     // NoC coordinates of core 0
constexpr uint32_t RT_WRITER_REDUCE_NOC_Y = 4;
constexpr uint32_t RT_WRITER_DRAFTS_ADDR = 5;      // draft_tokens [B, k] int32, one page per row
constexpr uint32_t RT_WRITER_NUM_ACCEPTED_ADDR = 6;  // num_accepted [B] int32, one page
constexpr uint32_t RT_WRITER_OUTPUT_ADDR = 7;      // output_tokens [B, k+1] int32, one page per row

// writer_accept_prefix.cpp compile-time args
constexpr uint32_t CT_WRITER_CB_LOGITS = 0;
constexpr uint32_t CT_WRITER_CB_NUM_DRAFT = 1;
constexpr uint32_t CT_WRITER_CB_PARTIAL = 2;   // this core's (value, index) per row
constexpr uint32_t CT_WRITER_CB_GATHER = 3;    // core 0: every core's partials
constexpr uint32_t CT_WRITER_CB_DRAFTS = 4;    // core 0: one row of drafts
constexpr uint32_t CT_WRITER_CB_OUT = 5;       // core 0: one row of output tokens, then num_accepted
constexpr uint32_t CT_WRITER_CHUNK = 6;
constexpr uint32_t CT_WRITER_BATCH = 7;
constexpr uint32_t CT_WRITER_ROWS = 8;
constexpr uint32_t CT_WRITER_NUM_CORES = 9;
constexpr uint32_t CT_WRITER_SEM_PARTIALS = 10;  // semaphore on core 0: partials arrived
constexpr uint32_t CT_WRITER_DRAFTS_TA = 11;       // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_WRITER_NUM_ACCEPTED_TA = 13;
constexpr uint32_t CT_WRITER_OUTPUT_TA = 15;

// reader_accept_prefix_sampling.cpp runtime args
constexpr uint32_t SRT_READER_LOGITS_ADDR = 0;
constexpr uint32_t SRT_READER_NUM_DRAFT_ADDR = 1;
constexpr uint32_t SRT_READER_DRAFT_PROBS_ADDR = 2;  // draft_probs [B, k, V] fp32 (unused without them)
constexpr uint32_t SRT_READER_V_START = 3;
constexpr uint32_t SRT_READER_V_END = 4;

// reader_accept_prefix_sampling.cpp compile-time args
constexpr uint32_t SCT_READER_CB_LOGITS = 0;
constexpr uint32_t SCT_READER_CB_NUM_DRAFT = 1;
constexpr uint32_t SCT_READER_CB_Q = 2;         // [chunk] fp32 draft probabilities per page
constexpr uint32_t SCT_READER_CB_PLAN = 3;      // [B] Plan, written by core 0
constexpr uint32_t SCT_READER_CHUNK = 4;
constexpr uint32_t SCT_READER_BATCH = 5;
constexpr uint32_t SCT_READER_ROWS = 6;
constexpr uint32_t SCT_READER_SEM_PLAN = 7;     // semaphore on every core: the plan has arrived
constexpr uint32_t SCT_READER_HAS_DRAFT_PROBS = 8;  // 0: a deterministic drafter, q one-hot on the draft
constexpr uint32_t SCT_READER_LOGITS_TA = 9;    // TensorAccessorArgs (2 args each)
constexpr uint32_t SCT_READER_NUM_DRAFT_TA = 11;
constexpr uint32_t SCT_READER_DRAFT_PROBS_TA = 13;

// writer_accept_prefix_sampling.cpp runtime args
constexpr uint32_t SRT_WRITER_V_START = 0;
constexpr uint32_t SRT_WRITER_V_END = 1;
constexpr uint32_t SRT_WRITER_CORE_ID = 2;
constexpr uint32_t SRT_WRITER_REDUCE_NOC_X = 3;
constexpr uint32_t SRT_WRITER_REDUCE_NOC_Y = 4;
constexpr uint32_t SRT_WRITER_TEMPERATURE_LO = 5;  // temperature as a double: low and high words
constexpr uint32_t SRT_WRITER_TEMPERATURE_HI = 6;
constexpr uint32_t SRT_WRITER_LOGITS_ADDR = 7;
constexpr uint32_t SRT_WRITER_DRAFTS_ADDR = 8;
constexpr uint32_t SRT_WRITER_DRAFT_PROBS_ADDR = 9;
constexpr uint32_t SRT_WRITER_SEEDS_ADDR = 10;     // seeds [B] uint32, one page
constexpr uint32_t SRT_WRITER_NUM_ACCEPTED_ADDR = 11;
constexpr uint32_t SRT_WRITER_OUTPUT_ADDR = 12;
constexpr uint32_t SRT_WRITER_NOC_X0 = 13;         // NoC coordinates of every core, x then y
// followed by num_cores (x, y) pairs

// writer_accept_prefix_sampling.cpp compile-time args
constexpr uint32_t SCT_WRITER_CB_LOGITS = 0;
constexpr uint32_t SCT_WRITER_CB_NUM_DRAFT = 1;
constexpr uint32_t SCT_WRITER_CB_Q = 2;
constexpr uint32_t SCT_WRITER_CB_PLAN = 3;
constexpr uint32_t SCT_WRITER_CB_PARTIAL = 4;   // this core's SoftmaxPartial per row, then ResidualPartial per b
constexpr uint32_t SCT_WRITER_CB_GATHER = 5;    // core 0: [num_cores] SoftmaxPartial [B * (k+1)]
constexpr uint32_t SCT_WRITER_CB_GATHER_RES = 6;  // core 0: [num_cores] ResidualPartial [B]
constexpr uint32_t SCT_WRITER_CB_DRAFTS = 7;
constexpr uint32_t SCT_WRITER_CB_OUT = 8;
constexpr uint32_t SCT_WRITER_CB_SCRATCH = 9;   // core 0: single-element reads and the final scan
constexpr uint32_t SCT_WRITER_CB_SCRATCH_Q = 10;
constexpr uint32_t SCT_WRITER_CHUNK = 11;
constexpr uint32_t SCT_WRITER_BATCH = 12;
constexpr uint32_t SCT_WRITER_ROWS = 13;
constexpr uint32_t SCT_WRITER_VOCAB = 14;
constexpr uint32_t SCT_WRITER_NUM_CORES = 15;
constexpr uint32_t SCT_WRITER_SLICE = 16;       // vocabulary entries per core (the last core may have fewer)
constexpr uint32_t SCT_WRITER_HAS_DRAFT_PROBS = 17;
constexpr uint32_t SCT_WRITER_SEM_PARTIALS = 18;
constexpr uint32_t SCT_WRITER_SEM_PLAN = 19;
constexpr uint32_t SCT_WRITER_LOGITS_TA = 20;   // TensorAccessorArgs (2 args each)
constexpr uint32_t SCT_WRITER_DRAFTS_TA = 22;
constexpr uint32_t SCT_WRITER_DRAFT_PROBS_TA = 24;
constexpr uint32_t SCT_WRITER_SEEDS_TA = 26;
constexpr uint32_t SCT_WRITER_NUM_ACCEPTED_TA = 28;
constexpr uint32_t SCT_WRITER_OUTPUT_TA = 30;

constexpr int32_t PLACEHOLDER = -1;  // padding of output_tokens, num_accepted of a skipped row
constexpr uint32_t MAX_ROWS = 32;    // k + 1 <= 32: one tile row-block of target rows

// One row's running argmax on one core; the gather CB holds num_cores arrays of [B * (k+1)].
struct Partial {
    float value;
    uint32_t index;
};

// Sampling: one row's softmax statistics over one core's slice, s = logit / temperature.
struct SoftmaxPartial {
    double max;  // max s
    double sum;  // sum of exp(s - max)
};

// Sampling: what every core needs for the second pass over row n of sequence b.
struct Plan {
    double max;  // softmax statistics of row n over the whole vocabulary
    double sum;
    int32_t n;         // accepted drafts; -1 = skipped row
    uint32_t subtract_q;  // 1: residual max(0, p - q) (a rejection), 0: p itself (the bonus row)
};

// Sampling: one sequence's residual mass over one core's slice.
struct ResidualPartial {
    double residual;  // sum of max(0, p - q)
    double p;         // sum of p (the fallback when the residual is all zero)
};

// Counter-based uniforms of tt_specdec/ops/sampling.py, bit for bit.
constexpr uint32_t STREAM_ACCEPT = 2;
constexpr uint32_t STREAM_SAMPLE = 3;

inline uint32_t mix32(uint32_t x) {  // lowbias32 (C. Wellons)
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

inline double uniform(uint32_t seed, uint32_t stream, uint32_t index) {
    uint32_t h = mix32(seed);
    h = mix32(h ^ (stream * 0x9E3779B9u));
    h = mix32(h ^ (index * 0x9E3779B9u));
    return static_cast<double>(h >> 8) * (1.0 / (1 << 24));
}

// Ties keep the earlier index, like torch.argmax: strict '>' while scanning in index order.
inline bool greater(float a, float b) { return a > b; }

inline float bfloat16_to_float(uint16_t bits) {
    union {
        uint32_t u;
        float f;
    } v{static_cast<uint32_t>(bits) << 16};
    return v.f;
}

}  // namespace accept_prefix
