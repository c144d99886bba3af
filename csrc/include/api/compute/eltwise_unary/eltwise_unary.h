// Unary SFPU ops on dst (ttnn 0.81.1 api/compute/eltwise_unary/eltwise_unary.h).
#pragma once

#include "api/compute/common.h"
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/tile_move_copy.h"

// The legacy all-in-one inits forward to compute_kernel_hw_startup(icb, ocb) then copy_init(icb)
// (ttnn 0.81.1 eltwise_unary.h).
ALWI void unary_op_init_common(uint32_t icb, uint32_t ocb) {
    compute_kernel_hw_startup(icb, ocb);
    copy_init(icb);
}
ALWI void init_sfpu(uint32_t icb, uint32_t ocb) {
    compute_kernel_hw_startup(icb, ocb);
    copy_init(icb);
}
