// Test kernel: writes the tiles of cb_out to OUT [tiles].
#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    const uint32_t out_addr = get_arg_val<uint32_t>(0);
    const uint32_t num_tiles = get_arg_val<uint32_t>(1);

    constexpr uint32_t cb_out = get_compile_time_arg_val(0);
    constexpr auto out_args = TensorAccessorArgs<1>();

    const auto out = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_wait_front(cb_out, 1);
        noc_async_write(get_read_ptr(cb_out), get_noc_addr(i, out), get_tile_size(cb_out));
        noc_async_write_barrier();
        cb_pop_front(cb_out, 1);
    }
}
