// Broken fixture: a compute kernel calling the compute API wrongly.
// add_tiles takes (icb0, icb1, itile0, itile1, idst): idst is missing below; exp_tiles does not exist
// (exp_tile does). The conformance check's compute-call check must fail naming this kernel, both lines.
#include <cstdint>

#include "api/compute/compute_kernel_api.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/eltwise_unary/exp.h"

void kernel_main() {
    compute_kernel_hw_startup(0, 1, 16);
    add_init(0, 1);
    cb_wait_front(0, 1);
    cb_wait_front(1, 1);
    tile_regs_acquire();
    add_tiles(0, 1, 0, 0);
    exp_tiles(0);
    tile_regs_commit();
    tile_regs_release();
}
