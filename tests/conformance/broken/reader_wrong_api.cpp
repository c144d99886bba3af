// Broken fixture: a dataflow kernel with a wrong call into the real dataflow API.
// noc_async_read takes (src_noc_addr, dst_local_l1_addr, size[, noc]); the size is missing below.
// The conformance check's clang-19 syntax check against ttnn 0.81.1's headers must fail naming this kernel.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    const uint32_t src_addr = get_arg_val<uint32_t>(0);
    const uint32_t dst_l1 = get_arg_val<uint32_t>(1);
    noc_async_read(get_noc_addr(1, 1, src_addr), dst_l1);
    noc_async_read_barrier();
}
