// rollback_kv compaction, reader (NCRISC): accepted token j of row b had its KV written at slot
// pos + accepted_slots[b][j] (a tree, or any non-chain verify); it must end at pos + j. Per unit
// (b, layer, K|V, head) of this core, every moved row (j <= n with accepted_slots[j] != j) is
// read into one rows page, all of them before the writer writes any: the copy is a gather then
// a scatter, so overlapping source and destination slots never see a half-done copy. Rows that
// stay (the chain case) and finished rows (n == -1) move nothing and cost no DRAM traffic.
// A row of a tiled cache is, per 32-column tile, two 16-element face rows: two reads.
// The host validates torch inputs; device tensors are not read there, so a row whose offset or
// slot the host would refuse (outside 0..k, past the cache, an unallocated block) is skipped.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "../../kernels/tile_rows.hpp"
#include "rollback_kv_common.hpp"

using namespace rollback_kv;
using namespace tile_rows;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t pos_addr = get_arg_val<uint32_t>(RT_COMPACT_READER_POS_ADDR);
    const uint32_t num_accepted_addr = get_arg_val<uint32_t>(RT_COMPACT_READER_NUM_ACCEPTED_ADDR);
    const uint32_t slots_addr = get_arg_val<uint32_t>(RT_COMPACT_READER_SLOTS_ADDR);
    const uint32_t page_table_addr = get_arg_val<uint32_t>(RT_COMPACT_READER_PAGE_TABLE_ADDR);
    const uint32_t k_addr = get_arg_val<uint32_t>(RT_COMPACT_READER_K_ADDR);
    const uint32_t v_addr = get_arg_val<uint32_t>(RT_COMPACT_READER_V_ADDR);
    const uint32_t unit_begin = get_arg_val<uint32_t>(RT_COMPACT_READER_UNIT_BEGIN);
    const uint32_t unit_end = get_arg_val<uint32_t>(RT_COMPACT_READER_UNIT_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_scratch = get_compile_time_arg_val(CT_COMPACT_READER_CB_SCRATCH);  // this kernel only
    constexpr uint32_t cb_rows = get_compile_time_arg_val(CT_COMPACT_READER_CB_ROWS);        // to the writer
    constexpr uint32_t batch = get_compile_time_arg_val(CT_COMPACT_READER_BATCH);
    constexpr uint32_t rows = get_compile_time_arg_val(CT_COMPACT_READER_ROWS);  // k + 1
    constexpr uint32_t layers = get_compile_time_arg_val(CT_COMPACT_READER_LAYERS);
    constexpr uint32_t hkv = get_compile_time_arg_val(CT_COMPACT_READER_HKV);
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_COMPACT_READER_D_TILES);
    constexpr uint32_t matrix_tiles = get_compile_time_arg_val(CT_COMPACT_READER_MATRIX_TILES);
    constexpr uint32_t seq_matrices = get_compile_time_arg_val(CT_COMPACT_READER_SEQ_MATRICES);
    constexpr uint32_t block_size = get_compile_time_arg_val(CT_COMPACT_READER_BLOCK_SIZE);
    constexpr uint32_t max_blocks = get_compile_time_arg_val(CT_COMPACT_READER_MAX_BLOCKS);
    constexpr uint32_t face_row_bytes = get_compile_time_arg_val(CT_COMPACT_READER_FACE_ROW_BYTES);
    constexpr auto pos_args = TensorAccessorArgs<CT_COMPACT_READER_POS_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<CT_COMPACT_READER_NUM_ACCEPTED_TA>();
    constexpr auto slots_args = TensorAccessorArgs<CT_COMPACT_READER_SLOTS_TA>();
    constexpr auto page_table_args = TensorAccessorArgs<CT_COMPACT_READER_PAGE_TABLE_TA>();
    constexpr auto k_args = TensorAccessorArgs<CT_COMPACT_READER_K_TA>();
    constexpr auto v_args = TensorAccessorArgs<CT_COMPACT_READER_V_TA>();
    static_assert(batch >= 1 && rows >= 1 && layers >= 1 && hkv >= 1 && d_tiles >= 1, "non-empty shapes");
    static_assert(block_size == 0 || (block_size % 32 == 0 && max_blocks >= 1),
                  "a paged cache has blocks of whole tiles (block_size a multiple of 32) and a page table");
    constexpr bool paged = block_size > 0;
    constexpr uint32_t state_bytes = batch * sizeof(int32_t);
    constexpr uint32_t state_page = align_up(state_bytes, DRAM_ALIGNMENT);  // slots that take DRAM reads
    constexpr uint32_t slots_page = align_up(rows * sizeof(int32_t), DRAM_ALIGNMENT);
    constexpr uint32_t tile_bytes = 64 * face_row_bytes;  // a cache page: one 32 x 32 tile
    constexpr uint32_t units_per_seq = layers * 2 * hkv;

    const auto pos_acc = TensorAccessor(pos_args, pos_addr, state_bytes);
    const auto num_accepted_acc = TensorAccessor(num_accepted_args, num_accepted_addr, state_bytes);
    const auto slots_acc = TensorAccessor(slots_args, slots_addr, rows * sizeof(int32_t));
    const auto page_table_acc = TensorAccessor(page_table_args, page_table_addr, max_blocks * sizeof(int32_t));
    const auto k_cache = TensorAccessor(k_args, k_addr, tile_bytes);
    const auto v_cache = TensorAccessor(v_args, v_addr, tile_bytes);

    cb_reserve_back(cb_scratch, 1);  // this kernel's own scratch, never pushed
    const uint32_t scratch = get_write_ptr(cb_scratch);
    volatile tt_l1_ptr int32_t* pos = reinterpret_cast<volatile tt_l1_ptr int32_t*>(scratch);
    volatile tt_l1_ptr int32_t* num_accepted = reinterpret_cast<volatile tt_l1_ptr int32_t*>(scratch + state_page);
    const uint32_t slots_l1 = scratch + 2 * state_page;
    const uint32_t table_l1 = slots_l1 + slots_page;
    volatile tt_l1_ptr int32_t* slots = reinterpret_cast<volatile tt_l1_ptr int32_t*>(slots_l1);
    volatile tt_l1_ptr int32_t* table = reinterpret_cast<volatile tt_l1_ptr int32_t*>(table_l1);
    noc_async_read(get_noc_addr(0, pos_acc), scratch, state_bytes);
    noc_async_read(get_noc_addr(0, num_accepted_acc), scratch + state_page, state_bytes);
    noc_async_read_barrier();

    uint32_t loaded_b = batch;  // the row whose accepted_slots (and table) sit in scratch
    for (uint32_t unit = unit_begin; unit < unit_end; ++unit) {
        const uint32_t b = unit / units_per_seq;
        const uint32_t layer = unit % units_per_seq / (2 * hkv);
        const bool is_v = unit % (2 * hkv) >= hkv;
        const uint32_t head = unit % hkv;
        const int32_t n = num_accepted[b];
        if (n != SKIP && b != loaded_b) {
            noc_async_read(get_noc_addr(b, slots_acc), slots_l1, rows * sizeof(int32_t));
            if constexpr (paged) {
                noc_async_read(get_noc_addr(b, page_table_acc), table_l1, max_blocks * sizeof(int32_t));
            }
            noc_async_read_barrier();
            loaded_b = b;
        }
        cb_reserve_back(cb_rows, 1);  // one page per unit, even an empty one: the writer walks the same units
        const uint32_t page = get_write_ptr(cb_rows);
        uint32_t count = 0;
        for (int32_t j = 0; j <= n; ++j) {  // n == SKIP: no rows
            if (slots[j] == j || slots[j] < 0 || slots[j] >= static_cast<int32_t>(rows) || pos[b] < 0) {
                continue;  // already in its final slot; or an offset the host would refuse: nothing to write
            }
            uint32_t src_seq = 0, src_row = 0, dst_seq = 0, dst_row = 0;  // each slot's cache matrix and row there
            constexpr uint32_t matrix_rows = matrix_tiles * 32;
            if (!locate_slot<block_size, max_blocks, matrix_rows, seq_matrices>(
                    table, b, static_cast<uint32_t>(pos[b] + slots[j]), src_seq, src_row) ||
                !locate_slot<block_size, max_blocks, matrix_rows, seq_matrices>(
                    table, b, static_cast<uint32_t>(pos[b] + j), dst_seq, dst_row)) {
                continue;  // past the cache or in an unallocated block: never read or write outside it
            }
            const uint32_t src_tile =
                row_tile(cache_matrix(layer, seq_matrices, src_seq, hkv, head), src_row, matrix_tiles, d_tiles);
            const uint32_t dst_tile =
                row_tile(cache_matrix(layer, seq_matrices, dst_seq, hkv, head), dst_row, matrix_tiles, d_tiles);
            gather_row<rows, d_tiles, face_row_bytes>(page, count, is_v, k_cache, v_cache, src_tile, src_row % 32,
                                                      dst_tile, dst_row % 32);
            ++count;
        }
        push_rows_page(cb_rows, page, count, is_v);  // all moved rows read before the writer overwrites any
    }
}
