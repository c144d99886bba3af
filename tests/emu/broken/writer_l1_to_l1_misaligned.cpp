// BROKEN on purpose: before writing each page out, copies half of it over the NoC to 8 bytes further
// into the same CB: an L1 -> L1 write needs (src & 15) == (dst & 15) (NOC_L1_WRITE_ALIGNMENT_BYTES 16).
#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    // runtime args
    const uint32_t dst_addr = get_arg_val<uint32_t>(0);
    const uint32_t start_page = get_arg_val<uint32_t>(1);
    const uint32_t num_pages = get_arg_val<uint32_t>(2);

    // compile-time args
    constexpr uint32_t cb_in = get_compile_time_arg_val(0);
    constexpr uint32_t page_size = get_compile_time_arg_val(1);  // bytes
    constexpr auto dst_args = TensorAccessorArgs<2>();

    const auto dst = TensorAccessor(dst_args, dst_addr, page_size);
    for (uint32_t p = start_page; p < start_page + num_pages; ++p) {
        cb_wait_front(cb_in, 1);  // wait for the reader's page
        noc_async_write(get_read_ptr(cb_in), get_noc_addr(get_read_ptr(cb_in) + 8), page_size / 2);
        noc_async_write(get_read_ptr(cb_in), get_noc_addr(p, dst), page_size);
        noc_async_write_barrier();  // the page has left L1: it may be overwritten
        cb_pop_front(cb_in, 1);
    }
}
