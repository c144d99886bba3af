// BROKEN on purpose: the copy reader with an int page index compared against uint32_t counts:
// -Wsign-compare, an error under the JIT's -Wall -Werror.
#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    // runtime args
    const uint32_t src_addr = get_arg_val<uint32_t>(0);
    const uint32_t start_page = get_arg_val<uint32_t>(1);
    const uint32_t num_pages = get_arg_val<uint32_t>(2);

    // compile-time args
    constexpr uint32_t cb_in = get_compile_time_arg_val(0);   // pages of the source tensor
    constexpr uint32_t page_size = get_compile_time_arg_val(1);  // bytes
    constexpr auto src_args = TensorAccessorArgs<2>();

    const auto src = TensorAccessor(src_args, src_addr, page_size);
    for (int p = start_page; p < start_page + num_pages; ++p) {
        cb_reserve_back(cb_in, 1);  // wait for one free page
        noc_async_read(get_noc_addr(p, src), get_write_ptr(cb_in), page_size);
        noc_async_read_barrier();  // the page has landed
        cb_push_back(cb_in, 1);  // hand it to the writer
    }
}
