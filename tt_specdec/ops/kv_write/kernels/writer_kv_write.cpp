// kv_write, writer (BRISC): per unit (b, K|V, head) of this core, the rows the reader gathered are written
// into the cache, each as 2 * D/32 face rows at their destination tile and row.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "../../kernels/tile_rows.hpp"
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
    constexpr uint32_t tile_bytes = 64 * face_row_bytes;

    const auto k_cache = TensorAccessor(k_args, k_addr, tile_bytes);
    const auto v_cache = TensorAccessor(v_args, v_addr, tile_bytes);

    tile_rows::write_rows_pages<cb_rows, t_rows, d_tiles, face_row_bytes>(k_cache, v_cache, unit_begin, unit_end);
}
