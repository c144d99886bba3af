// verify_attention, writer (BRISC): the output tile row [32 rows = (t, g), D] of this
// (sequence, KV head) to DRAM.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "verify_attention_common.hpp"

using namespace verify_attention;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t out_addr = get_arg_val<uint32_t>(RT_WRITER_OUT_ADDR);
    const uint32_t bh = get_arg_val<uint32_t>(RT_WRITER_BH);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_out = get_compile_time_arg_val(CT_WRITER_CB_OUT);  // [Dt] output tiles
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_WRITER_D_TILES);
    constexpr auto out_args = TensorAccessorArgs<CT_WRITER_OUT_TA>();

    const auto out = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));
    for (uint32_t d = 0; d < d_tiles; ++d) {
        cb_wait_front(cb_out, 1);
        noc_async_write(get_read_ptr(cb_out), get_noc_addr(bh * d_tiles + d, out), get_tile_size(cb_out));
        noc_async_write_barrier();
        cb_pop_front(cb_out, 1);
    }
}
