// rollback_kv, writer (BRISC): pos += n + 1 and last = output_tokens[n] for every live row
// (num_accepted == -1 leaves a row as it was); with a paged cache every block that starts
// at or after the new pos holds only rejected drafts: its table entry becomes -1 and its
// id is reported in `freed` (-1 elsewhere). One core: the work is O(B * max_blocks).
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "rollback_kv_common.hpp"

using namespace rollback_kv;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t new_pos_addr = get_arg_val<uint32_t>(RT_WRITER_NEW_POS_ADDR);
    const uint32_t new_last_addr = get_arg_val<uint32_t>(RT_WRITER_NEW_LAST_ADDR);
    const uint32_t new_table_addr = get_arg_val<uint32_t>(RT_WRITER_NEW_TABLE_ADDR);
    const uint32_t freed_addr = get_arg_val<uint32_t>(RT_WRITER_FREED_ADDR);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_state = get_compile_time_arg_val(CT_WRITER_CB_STATE);    // 3 x [B] int32
    constexpr uint32_t cb_tokens = get_compile_time_arg_val(CT_WRITER_CB_TOKENS);  // [k+1] int32 per page
    constexpr uint32_t cb_table = get_compile_time_arg_val(CT_WRITER_CB_TABLE);    // [max_blocks] int32 per page
    constexpr uint32_t cb_out = get_compile_time_arg_val(CT_WRITER_CB_OUT);        // 2 staging pages
    constexpr uint32_t batch = get_compile_time_arg_val(CT_WRITER_BATCH);
    constexpr uint32_t rows = get_compile_time_arg_val(CT_WRITER_ROWS);
    constexpr uint32_t max_blocks = get_compile_time_arg_val(CT_WRITER_MAX_BLOCKS);
    constexpr uint32_t block_size = get_compile_time_arg_val(CT_WRITER_BLOCK_SIZE);
    constexpr auto new_pos_args = TensorAccessorArgs<CT_WRITER_NEW_POS_TA>();
    constexpr auto new_last_args = TensorAccessorArgs<CT_WRITER_NEW_LAST_TA>();
    constexpr auto new_table_args = TensorAccessorArgs<CT_WRITER_NEW_TABLE_TA>();
    constexpr auto freed_args = TensorAccessorArgs<CT_WRITER_FREED_TA>();
    static_assert(max_blocks == 0 || block_size >= 1, "a paged cache needs block_size >= 1");
    constexpr uint32_t state_bytes = batch * sizeof(int32_t);
    constexpr uint32_t state_page = align_up(state_bytes, DRAM_ALIGNMENT);
    constexpr uint32_t table_bytes = max_blocks * sizeof(int32_t);
    constexpr uint32_t out_page = align_up(state_bytes > table_bytes ? state_bytes : table_bytes, DRAM_ALIGNMENT);

    const auto new_pos = TensorAccessor(new_pos_args, new_pos_addr, state_bytes);
    const auto new_last = TensorAccessor(new_last_args, new_last_addr, state_bytes);
    const auto new_table = TensorAccessor(new_table_args, new_table_addr, table_bytes);
    const auto freed = TensorAccessor(freed_args, freed_addr, table_bytes);

    cb_wait_front(cb_state, 3);
    volatile tt_l1_ptr int32_t* pos = reinterpret_cast<volatile tt_l1_ptr int32_t*>(get_read_ptr(cb_state));
    volatile tt_l1_ptr int32_t* last = pos + state_page / sizeof(int32_t);
    volatile tt_l1_ptr int32_t* num_accepted = pos + 2 * state_page / sizeof(int32_t);
    const uint32_t out_l1 = get_write_ptr(cb_out);
    volatile tt_l1_ptr int32_t* out_a = reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1);
    volatile tt_l1_ptr int32_t* out_b = reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1 + out_page);

    int32_t next_pos[batch], next_last[batch];
    for (uint32_t b = 0; b < batch; ++b) {
        const int32_t n = num_accepted[b];
        next_pos[b] = pos[b];
        next_last[b] = last[b];
        if (n != SKIP) {
            cb_wait_front(cb_tokens, 1);  // output_tokens row b
            next_pos[b] = pos[b] + n + 1;
            next_last[b] = reinterpret_cast<volatile tt_l1_ptr int32_t*>(get_read_ptr(cb_tokens))[n];
            cb_pop_front(cb_tokens, 1);
        }
        if constexpr (max_blocks > 0) {
            cb_wait_front(cb_table, 1);  // page_table row b
            volatile tt_l1_ptr int32_t* table = reinterpret_cast<volatile tt_l1_ptr int32_t*>(get_read_ptr(cb_table));
            for (uint32_t i = 0; i < max_blocks; ++i) {
                // a block starting at or after the new pos holds only rejected drafts
                const bool release = n != SKIP && table[i] >= 0 &&
                                     static_cast<int64_t>(i) * block_size >= static_cast<int64_t>(next_pos[b]);
                out_a[i] = release ? SKIP : table[i];
                out_b[i] = release ? table[i] : SKIP;
            }
            cb_pop_front(cb_table, 1);
            noc_async_write(out_l1, get_noc_addr(b, new_table), table_bytes);
            noc_async_write(out_l1 + out_page, get_noc_addr(b, freed), table_bytes);
            noc_async_write_barrier();  // staging is reused for the next row
        }
    }
    for (uint32_t b = 0; b < batch; ++b) {
        out_a[b] = next_pos[b];
        out_b[b] = next_last[b];
    }
    noc_async_write(out_l1, get_noc_addr(0, new_pos), state_bytes);
    noc_async_write(out_l1 + out_page, get_noc_addr(0, new_last), state_bytes);
    noc_async_write_barrier();
    cb_pop_front(cb_state, 3);
}
