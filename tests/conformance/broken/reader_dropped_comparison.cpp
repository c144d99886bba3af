// Broken fixture: a comparison whose result is dropped (-Wunused-comparison in clang's -Wall,
// -Wunused-value in gcc's). The JIT builds kernels with -Wall -Werror (tt_metal/jit_build/build.cpp),
// so the card refuses it; the conformance check's clang-19 syntax check keeps those flags and must
// fail naming this kernel.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    const uint32_t src_addr = get_arg_val<uint32_t>(0);
    const uint32_t dst_l1 = get_arg_val<uint32_t>(1);
    src_addr == 0;
    noc_async_read(get_noc_addr(1, 1, src_addr), dst_l1, 32);
    noc_async_read_barrier();
}
