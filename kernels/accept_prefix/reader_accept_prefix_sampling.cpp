// accept_prefix sampling, reader (NCRISC): two passes over this core's vocabulary slice.
//
// Pass 1 streams rows 0..k_eff[b] of every live sequence (as the greedy reader does) for
// the softmax statistics. Pass 2 waits for core 0's plan (which row n each sequence
// stopped at) and, for a rejection with the draft's probabilities only, streams row n
// again beside q's row n for the residual max(0, p - q). The writer of this core consumes
// the same pages in the same order.
#include <cstdint>

#include "accept_prefix_common.hpp"
#include "api/dataflow/dataflow_api.h"

using namespace accept_prefix;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t logits_addr = get_arg_val<uint32_t>(SRT_READER_LOGITS_ADDR);
    const uint32_t num_draft_addr = get_arg_val<uint32_t>(SRT_READER_NUM_DRAFT_ADDR);
    const uint32_t draft_probs_addr = get_arg_val<uint32_t>(SRT_READER_DRAFT_PROBS_ADDR);
    const uint32_t v_start = get_arg_val<uint32_t>(SRT_READER_V_START);
    const uint32_t v_end = get_arg_val<uint32_t>(SRT_READER_V_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(SCT_READER_CB_LOGITS);        // [chunk] logits
    constexpr uint32_t cb_num_draft = get_compile_time_arg_val(SCT_READER_CB_NUM_DRAFT);  // [B] int32
    constexpr uint32_t cb_q = get_compile_time_arg_val(SCT_READER_CB_Q);                  // [chunk] fp32
    constexpr uint32_t cb_plan = get_compile_time_arg_val(SCT_READER_CB_PLAN);            // [B] Plan
    constexpr uint32_t chunk = get_compile_time_arg_val(SCT_READER_CHUNK);
    constexpr uint32_t batch = get_compile_time_arg_val(SCT_READER_BATCH);  // B
    constexpr uint32_t rows = get_compile_time_arg_val(SCT_READER_ROWS);    // k + 1
    constexpr uint32_t sem_plan = get_compile_time_arg_val(SCT_READER_SEM_PLAN);
    constexpr bool has_draft_probs = get_compile_time_arg_val(SCT_READER_HAS_DRAFT_PROBS) == 1;
    constexpr auto logits_args = TensorAccessorArgs<SCT_READER_LOGITS_TA>();
    constexpr auto num_draft_args = TensorAccessorArgs<SCT_READER_NUM_DRAFT_TA>();
    constexpr auto draft_probs_args = TensorAccessorArgs<SCT_READER_DRAFT_PROBS_TA>();

    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    constexpr uint32_t elem_size = logits_format == DataFormat::Float32 ? 4 : 2;
    static_assert(chunk % 32 == 0, "chunk must be a multiple of 32 entries: slices stay DRAM-aligned");
    static_assert(rows >= 2 && rows <= MAX_ROWS, "k + 1 target rows must fit one 32-row tile");
    constexpr uint32_t k = rows - 1;

    const auto logits = TensorAccessor(logits_args, logits_addr);
    const auto num_draft = TensorAccessor(num_draft_args, num_draft_addr, batch * sizeof(int32_t));
    const auto draft_probs = TensorAccessor(draft_probs_args, draft_probs_addr);

    cb_reserve_back(cb_num_draft, 1);
    const uint32_t num_draft_l1 = get_write_ptr(cb_num_draft);
    noc_async_read(get_noc_addr(0, num_draft), num_draft_l1, batch * sizeof(int32_t));
    noc_async_read_barrier();
    int32_t k_eff[batch];
    volatile tt_l1_ptr int32_t* nd = reinterpret_cast<volatile tt_l1_ptr int32_t*>(num_draft_l1);
    for (uint32_t b = 0; b < batch; ++b) {
        k_eff[b] = nd[b];
    }
    cb_push_back(cb_num_draft, 1);

    // streams [v_start, v_end) of logits page `page`, chunk by chunk; with `q_page` >= 0 the draft's
    // probabilities of the same entries follow each chunk (the writer consumes them pairwise)
    auto stream = [&](uint32_t page, int32_t q_page) {
        for (uint32_t v = v_start; v < v_end; v += chunk) {
            const uint32_t n = (v_end - v < chunk ? v_end - v : chunk);
            cb_reserve_back(cb_logits, 1);  // wait for one free page
            noc_async_read(get_noc_addr(page, logits, v * elem_size), get_write_ptr(cb_logits), n * elem_size);
            if (q_page >= 0) {
                cb_reserve_back(cb_q, 1);
                noc_async_read(get_noc_addr(static_cast<uint32_t>(q_page), draft_probs, v * sizeof(float)),
                               get_write_ptr(cb_q), n * sizeof(float));
            }
            noc_async_read_barrier();
            cb_push_back(cb_logits, 1);
            if (q_page >= 0) {
                cb_push_back(cb_q, 1);
            }
        }
    };

    // pass 1: softmax statistics of rows 0..k_eff[b]
    for (uint32_t b = 0; b < batch; ++b) {
        for (int32_t t = 0; t <= k_eff[b]; ++t) {
            stream(b * rows + static_cast<uint32_t>(t), -1);
        }
    }

    // pass 2: row n of every live sequence, once core 0 has decided n
    noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_plan)), 1);
    volatile tt_l1_ptr Plan* plan = reinterpret_cast<volatile tt_l1_ptr Plan*>(get_write_ptr(cb_plan));
    for (uint32_t b = 0; b < batch; ++b) {
        if (has_draft_probs && plan[b].n >= 0 && plan[b].subtract_q) {  // only a residual max(0, p - q) needs it
            const uint32_t n = static_cast<uint32_t>(plan[b].n);
            stream(b * rows + n, static_cast<int32_t>(b * k + n));
        }
    }
}
