// rollback_kv, reader (NCRISC): the step's state [B] in one CB, then per live sequence its
// output_tokens row (for the emitted token at n) and, for a paged cache, its page-table row.
// Finished rows (num_accepted == -1) read no tokens; their table row is still copied.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "rollback_kv_common.hpp"

using namespace rollback_kv;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t pos_addr = get_arg_val<uint32_t>(RT_READER_POS_ADDR);
    const uint32_t last_addr = get_arg_val<uint32_t>(RT_READER_LAST_ADDR);
    const uint32_t num_accepted_addr = get_arg_val<uint32_t>(RT_READER_NUM_ACCEPTED_ADDR);
    const uint32_t output_addr = get_arg_val<uint32_t>(RT_READER_OUTPUT_ADDR);
    const uint32_t page_table_addr = get_arg_val<uint32_t>(RT_READER_PAGE_TABLE_ADDR);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_state = get_compile_time_arg_val(CT_READER_CB_STATE);    // 3 x [B] int32
    constexpr uint32_t cb_tokens = get_compile_time_arg_val(CT_READER_CB_TOKENS);  // [k+1] int32 per page
    constexpr uint32_t cb_table = get_compile_time_arg_val(CT_READER_CB_TABLE);    // [max_blocks] int32 per page
    constexpr uint32_t batch = get_compile_time_arg_val(CT_READER_BATCH);          // B
    constexpr uint32_t rows = get_compile_time_arg_val(CT_READER_ROWS);            // k + 1
    constexpr uint32_t max_blocks = get_compile_time_arg_val(CT_READER_MAX_BLOCKS);
    constexpr auto pos_args = TensorAccessorArgs<CT_READER_POS_TA>();
    constexpr auto last_args = TensorAccessorArgs<CT_READER_LAST_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<CT_READER_NUM_ACCEPTED_TA>();
    constexpr auto output_args = TensorAccessorArgs<CT_READER_OUTPUT_TA>();
    constexpr auto page_table_args = TensorAccessorArgs<CT_READER_PAGE_TABLE_TA>();
    static_assert(batch >= 1 && rows >= 1, "B >= 1 sequences of k + 1 >= 1 tokens (k = 0: a plain step)");
    constexpr uint32_t state_bytes = batch * sizeof(int32_t);

    const auto pos = TensorAccessor(pos_args, pos_addr, state_bytes);
    const auto last = TensorAccessor(last_args, last_addr, state_bytes);
    const auto num_accepted = TensorAccessor(num_accepted_args, num_accepted_addr, state_bytes);
    const auto output = TensorAccessor(output_args, output_addr, rows * sizeof(int32_t));
    const auto page_table = TensorAccessor(page_table_args, page_table_addr, max_blocks * sizeof(int32_t));

    cb_reserve_back(cb_state, 3);  // pos, last, num_accepted: one page each
    const uint32_t state_l1 = get_write_ptr(cb_state);
    constexpr uint32_t page = align_up(state_bytes, DRAM_ALIGNMENT);  // each slot takes a DRAM read
    noc_async_read(get_noc_addr(0, pos), state_l1, state_bytes);
    noc_async_read(get_noc_addr(0, last), state_l1 + page, state_bytes);
    noc_async_read(get_noc_addr(0, num_accepted), state_l1 + 2 * page, state_bytes);
    noc_async_read_barrier();
    int32_t n[batch];
    for (uint32_t b = 0; b < batch; ++b) {
        n[b] = reinterpret_cast<volatile tt_l1_ptr int32_t*>(state_l1 + 2 * page)[b];
    }
    cb_push_back(cb_state, 3);

    for (uint32_t b = 0; b < batch; ++b) {
        if (n[b] != SKIP) {
            cb_reserve_back(cb_tokens, 1);
            noc_async_read(get_noc_addr(b, output), get_write_ptr(cb_tokens), rows * sizeof(int32_t));
            noc_async_read_barrier();
            cb_push_back(cb_tokens, 1);
        }
        if constexpr (max_blocks > 0) {
            cb_reserve_back(cb_table, 1);
            noc_async_read(get_noc_addr(b, page_table), get_write_ptr(cb_table), max_blocks * sizeof(int32_t));
            noc_async_read_barrier();
            cb_push_back(cb_table, 1);
        }
    }
}
