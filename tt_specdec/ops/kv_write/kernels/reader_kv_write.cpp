// kv_write, reader (NCRISC): the T new K (or V) rows of one (sequence b, KV head h) go to cache slots
// pos[b] .. pos[b]+T-1, through b's page-table row when the cache is paged: at any offset, unlike ttnn's
// paged_fill_cache (block-aligned start) and paged_update_cache (one token per sequence). Per unit
// (b, K|V, head) of this core the rows are read, as face rows of the packed [32, D] source tiles, into one
// page with a header naming each row's destination tile and row; the writer writes them into the cache.
// A row of a tile is, per 32-column tile, two 16-element face rows. Device tensors are not validated by
// the host, so a row whose slot is past the cache or in an unallocated block is skipped, never written.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "../../kernels/tile_rows.hpp"
#include "kv_write_common.hpp"

using namespace kv_write;
using namespace tile_rows;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t pos_addr = get_arg_val<uint32_t>(RT_READER_POS_ADDR);
    const uint32_t page_table_addr = get_arg_val<uint32_t>(RT_READER_PAGE_TABLE_ADDR);
    const uint32_t k_new_addr = get_arg_val<uint32_t>(RT_READER_K_NEW_ADDR);
    const uint32_t v_new_addr = get_arg_val<uint32_t>(RT_READER_V_NEW_ADDR);
    const uint32_t unit_begin = get_arg_val<uint32_t>(RT_READER_UNIT_BEGIN);
    const uint32_t unit_end = get_arg_val<uint32_t>(RT_READER_UNIT_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_scratch = get_compile_time_arg_val(CT_READER_CB_SCRATCH);  // this kernel only
    constexpr uint32_t cb_rows = get_compile_time_arg_val(CT_READER_CB_ROWS);        // to the writer
    constexpr uint32_t batch = get_compile_time_arg_val(CT_READER_BATCH);
    constexpr uint32_t t_rows = get_compile_time_arg_val(CT_READER_T);
    constexpr uint32_t hkv = get_compile_time_arg_val(CT_READER_HKV);
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_READER_D_TILES);
    constexpr uint32_t matrix_tiles = get_compile_time_arg_val(CT_READER_MATRIX_TILES);
    constexpr uint32_t seq_matrices = get_compile_time_arg_val(CT_READER_SEQ_MATRICES);
    constexpr uint32_t block_size = get_compile_time_arg_val(CT_READER_BLOCK_SIZE);
    constexpr uint32_t max_blocks = get_compile_time_arg_val(CT_READER_MAX_BLOCKS);
    constexpr uint32_t face_row_bytes = get_compile_time_arg_val(CT_READER_FACE_ROW_BYTES);
    constexpr auto pos_args = TensorAccessorArgs<CT_READER_POS_TA>();
    constexpr auto page_table_args = TensorAccessorArgs<CT_READER_PAGE_TABLE_TA>();
    constexpr auto k_new_args = TensorAccessorArgs<CT_READER_K_NEW_TA>();
    constexpr auto v_new_args = TensorAccessorArgs<CT_READER_V_NEW_TA>();
    static_assert(batch >= 1 && hkv >= 1 && d_tiles >= 1, "non-empty shapes");
    static_assert(t_rows >= 1 && t_rows <= 32, "the new rows of a (sequence, head) fill one tile row");
    static_assert(block_size == 0 || (block_size % 32 == 0 && max_blocks >= 1),
                  "a paged cache has blocks of whole tiles (block_size a multiple of 32) and a page table");
    constexpr bool paged = block_size > 0;
    constexpr uint32_t state_bytes = batch * sizeof(int32_t);
    constexpr uint32_t state_page = align_up(state_bytes, DRAM_ALIGNMENT);  // the page table's slot takes a DRAM read
    constexpr uint32_t tile_bytes = 64 * face_row_bytes;  // a page: one 32 x 32 tile

    const auto pos_acc = TensorAccessor(pos_args, pos_addr, state_bytes);
    const auto page_table_acc = TensorAccessor(page_table_args, page_table_addr, max_blocks * sizeof(int32_t));
    const auto k_new = TensorAccessor(k_new_args, k_new_addr, tile_bytes);
    const auto v_new = TensorAccessor(v_new_args, v_new_addr, tile_bytes);

    cb_reserve_back(cb_scratch, 1);  // this kernel's own scratch, never pushed
    const uint32_t scratch = get_write_ptr(cb_scratch);
    volatile tt_l1_ptr int32_t* pos = reinterpret_cast<volatile tt_l1_ptr int32_t*>(scratch);
    const uint32_t table_l1 = scratch + state_page;
    volatile tt_l1_ptr int32_t* table = reinterpret_cast<volatile tt_l1_ptr int32_t*>(table_l1);
    noc_async_read(get_noc_addr(0, pos_acc), scratch, state_bytes);
    noc_async_read_barrier();

    uint32_t loaded_b = batch;  // the row whose page table sits in scratch
    for (uint32_t unit = unit_begin; unit < unit_end; ++unit) {
        const uint32_t b = unit / (2 * hkv);
        const bool is_v = unit % (2 * hkv) >= hkv;
        const uint32_t head = unit % hkv;
        const int32_t start = pos[b];
        if constexpr (paged) {
            if (start != SKIP && b != loaded_b) {
                noc_async_read(get_noc_addr(b, page_table_acc), table_l1, max_blocks * sizeof(int32_t));
                noc_async_read_barrier();
                loaded_b = b;
            }
        }
        cb_reserve_back(cb_rows, 1);  // one page per unit, even an empty one: the writer walks the same units
        const uint32_t page = get_write_ptr(cb_rows);
        uint32_t count = 0;
        const uint32_t src_tile = (b * hkv + head) * d_tiles;  // the (b, head) source: one tile row of d_tiles
        for (uint32_t t = 0; start >= 0 && t < t_rows; ++t) {
            uint32_t matrix = 0, row = 0;  // the cache matrix holding the slot, and the row there
            if (!locate_slot<block_size, max_blocks, matrix_tiles * 32, seq_matrices>(
                    table, b, static_cast<uint32_t>(start) + t, matrix, row)) {
                continue;  // past the cache (the host refuses this for torch inputs) or in no block
            }
            const uint32_t dst_tile = ((matrix * hkv + head) * matrix_tiles + row / 32) * d_tiles;
            gather_row<t_rows, d_tiles, face_row_bytes>(page, count, is_v, k_new, v_new, src_tile, t, dst_tile,
                                                        row % 32);
            ++count;
        }
        push_rows_page(cb_rows, page, count, is_v);
    }
}
