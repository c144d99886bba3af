// accept_prefix, reader (NCRISC): streams this core's vocabulary slice of every target row
// that can matter into cb_logits, one chunk per page, double-buffered.
//
// Rows that cannot matter are never read: a finished sequence (num_draft[b] == -1) reads
// nothing and a sequence with effective k_b reads rows 0..k_b only. The writer on the same
// core consumes exactly the pages pushed here, in the same order (see num_draft via cb).
//
// logits [B, k+1, V] row-major (bf16 or fp32): page = one row of V; core c reads
// [v_start, v_end) of each row, whose byte offset is DRAM-aligned because the host splits
// V in multiples of 32 entries.
#include <cstdint>

#include "accept_prefix_common.hpp"

using namespace accept_prefix;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t logits_addr = get_arg_val<uint32_t>(RT_READER_LOGITS_ADDR);
    const uint32_t num_draft_addr = get_arg_val<uint32_t>(RT_READER_NUM_DRAFT_ADDR);
    const uint32_t v_start = get_arg_val<uint32_t>(RT_READER_V_START);
    const uint32_t v_end = get_arg_val<uint32_t>(RT_READER_V_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(CT_READER_CB_LOGITS);  // [chunk] logits per page
    constexpr uint32_t cb_num_draft = get_compile_time_arg_val(CT_READER_CB_NUM_DRAFT);  // [B] int32, 1 page
    constexpr uint32_t chunk = get_compile_time_arg_val(CT_READER_CHUNK);  // vocabulary entries per page
    constexpr uint32_t batch = get_compile_time_arg_val(CT_READER_BATCH);  // B
    constexpr uint32_t rows = get_compile_time_arg_val(CT_READER_ROWS);    // k + 1
    constexpr auto logits_args = TensorAccessorArgs<CT_READER_LOGITS_TA>();
    constexpr auto num_draft_args = TensorAccessorArgs<CT_READER_NUM_DRAFT_TA>();

    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    constexpr uint32_t elem_size = logits_format == DataFormat::Float32 ? 4 : 2;
    static_assert(chunk % 32 == 0, "chunk must be a multiple of 32 entries: slices stay DRAM-aligned");
    static_assert(rows >= 2 && rows <= MAX_ROWS, "k + 1 target rows must fit one 32-row tile");
    static_assert(batch >= 1, "empty batch");

    const auto logits = TensorAccessor(logits_args, logits_addr);
    const auto num_draft = TensorAccessor(num_draft_args, num_draft_addr, batch * sizeof(int32_t));

    // num_draft [B] lands in cb_num_draft: the writer of this core needs it too
    cb_reserve_back(cb_num_draft, 1);
    const uint32_t num_draft_l1 = get_write_ptr(cb_num_draft);
    noc_async_read(get_noc_addr(0, num_draft), num_draft_l1, batch * sizeof(int32_t));
    noc_async_read_barrier();
    int32_t k_eff[batch];
    volatile tt_l1_ptr int32_t* nd = reinterpret_cast<volatile tt_l1_ptr int32_t*>(num_draft_l1);
    for (uint32_t b = 0; b < batch; ++b) {
        k_eff[b] = clamp_num_draft(nd[b], rows - 1);  // a bad value past k must not walk past the rows
    }
    cb_push_back(cb_num_draft, 1);

    for (uint32_t b = 0; b < batch; ++b) {
        // rows 0..k_eff[b]; none for a finished row (k_eff <= -1)
        for (int32_t t = 0; t <= k_eff[b]; ++t) {
            read_row_slice<cb_logits, chunk, elem_size>(logits, b * rows + static_cast<uint32_t>(t), v_start, v_end);
        }
    }
}
