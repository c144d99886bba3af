// BROKEN on purpose: lands a DRAM read 16 bytes into an L1 page: 16-byte aligned L1, but a DRAM read needs (l1 & 31) == (dram & 31) on Wormhole.
#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    const uint32_t src_addr = get_arg_val<uint32_t>(0);
    const uint32_t start_page = get_arg_val<uint32_t>(1);
    const uint32_t num_pages = get_arg_val<uint32_t>(2);
    constexpr uint32_t cb_in = get_compile_time_arg_val(0);
    constexpr uint32_t page_size = get_compile_time_arg_val(1);
    constexpr auto src_args = TensorAccessorArgs<2>();
    const auto src = TensorAccessor(src_args, src_addr, page_size);
    for (uint32_t p = start_page; p < start_page + num_pages; ++p) {
        cb_reserve_back(cb_in, 1);
        noc_async_read(get_noc_addr(p, src), get_write_ptr(cb_in) + 16, page_size - 16);
        noc_async_read_barrier();
        cb_push_back(cb_in, 1);
    }
}
