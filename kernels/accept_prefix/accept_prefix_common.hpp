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

constexpr int32_t PLACEHOLDER = -1;  // padding of output_tokens, num_accepted of a skipped row
constexpr uint32_t MAX_ROWS = 32;    // k + 1 <= 32: one tile row-block of target rows

// One row's running argmax on one core; the gather CB holds num_cores arrays of [B * (k+1)].
struct Partial {
    float value;
    uint32_t index;
};

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
