// rollback_kv compaction, writer (BRISC): for each unit of this core, the reader's rows page holds
// the unit's moved KV rows and their destination (tile, row in tile); each row goes back to the
// K or V cache as two 16-element face rows per 32-column tile. Nothing else is written.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "../../kernels/tile_rows.hpp"
#include "rollback_kv_common.hpp"

using namespace rollback_kv;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t k_addr = get_arg_val<uint32_t>(RT_COMPACT_WRITER_K_ADDR);
    const uint32_t v_addr = get_arg_val<uint32_t>(RT_COMPACT_WRITER_V_ADDR);
    const uint32_t unit_begin = get_arg_val<uint32_t>(RT_COMPACT_WRITER_UNIT_BEGIN);
    const uint32_t unit_end = get_arg_val<uint32_t>(RT_COMPACT_WRITER_UNIT_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_rows = get_compile_time_arg_val(CT_COMPACT_WRITER_CB_ROWS);  // from the reader
    constexpr uint32_t rows = get_compile_time_arg_val(CT_COMPACT_WRITER_ROWS);        // k + 1
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_COMPACT_WRITER_D_TILES);
    constexpr uint32_t face_row_bytes = get_compile_time_arg_val(CT_COMPACT_WRITER_FACE_ROW_BYTES);
    constexpr auto k_args = TensorAccessorArgs<CT_COMPACT_WRITER_K_TA>();
    constexpr auto v_args = TensorAccessorArgs<CT_COMPACT_WRITER_V_TA>();
    static_assert(rows >= 1 && d_tiles >= 1, "non-empty shapes");
    constexpr uint32_t tile_bytes = 64 * face_row_bytes;

    const auto k_cache = TensorAccessor(k_args, k_addr, tile_bytes);
    const auto v_cache = TensorAccessor(v_args, v_addr, tile_bytes);

    tile_rows::write_rows_pages<cb_rows, rows, d_tiles, face_row_bytes>(k_cache, v_cache, unit_begin, unit_end);
}
