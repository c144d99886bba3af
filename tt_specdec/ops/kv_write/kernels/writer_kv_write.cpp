// kv_write, writer (BRISC): per unit (b, K|V, head) of this core, the rows the reader gathered are written
// into the cache, each as 2 * D/32 face rows at their destination tile and row.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "kv_write_common.hpp"

using namespace kv_write;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t k_addr = get_arg_val<uint32_t>(RT_WRITER_K_ADDR);
    const uint32_t v_addr = get_arg_val<uint32_t>(RT_WRITER_V_ADDR);
    const uint32_t unit_begin = get_arg_val<uint32_t>(RT_WRITER_UNIT_BEGIN);
    const uint32_t unit_end = get_arg_val<uint32_t>(RT_WRITER_UNIT_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_rows = get_compile_time_arg_val(CT_WRITER_CB_ROWS);  // from the reader
    constexpr uint32_t t_rows = get_compile_time_arg_val(CT_WRITER_T);
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_WRITER_D_TILES);
    constexpr uint32_t face_row_bytes = get_compile_time_arg_val(CT_WRITER_FACE_ROW_BYTES);
    constexpr auto k_args = TensorAccessorArgs<CT_WRITER_K_TA>();
    constexpr auto v_args = TensorAccessorArgs<CT_WRITER_V_TA>();
    static_assert(t_rows >= 1 && t_rows <= 32 && d_tiles >= 1, "non-empty shapes, one tile row of new rows");
    constexpr uint32_t row_bytes = d_tiles * 2 * face_row_bytes;
    constexpr uint32_t tile_bytes = 64 * face_row_bytes;

    const auto k_cache = TensorAccessor(k_args, k_addr, tile_bytes);
    const auto v_cache = TensorAccessor(v_args, v_addr, tile_bytes);

    for (uint32_t unit = unit_begin; unit < unit_end; ++unit) {
        cb_wait_front(cb_rows, 1);  // the unit's rows, all read
        const uint32_t page = get_read_ptr(cb_rows);
        volatile tt_l1_ptr int32_t* header = reinterpret_cast<volatile tt_l1_ptr int32_t*>(page);
        const uint32_t count = static_cast<uint32_t>(header[ROWS_HEADER_COUNT]);
        const bool is_v = header[ROWS_HEADER_IS_V] != 0;
        for (uint32_t i = 0; i < count; ++i) {
            const uint32_t dst_tile = static_cast<uint32_t>(header[ROWS_HEADER_DEST + 2 * i]);
            const uint32_t dst_row = static_cast<uint32_t>(header[ROWS_HEADER_DEST + 2 * i + 1]);
            const uint32_t row_l1 = page + rows_data_offset(t_rows, DRAM_ALIGNMENT) + i * row_bytes;
            for (uint32_t c = 0; c < d_tiles; ++c) {
                for (uint32_t half = 0; half < 2; ++half) {
                    const uint32_t offset = face_row_offset(dst_row, half, face_row_bytes);
                    const uint64_t dst = is_v ? get_noc_addr(dst_tile + c, v_cache, offset)
                                              : get_noc_addr(dst_tile + c, k_cache, offset);
                    noc_async_write(row_l1 + (2 * c + half) * face_row_bytes, dst, face_row_bytes);
                }
            }
        }
        noc_async_write_barrier();  // the page is the reader's again after the pop
        cb_pop_front(cb_rows, 1);
    }
}
