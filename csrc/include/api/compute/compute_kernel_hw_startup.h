// Hardware init of a compute kernel (ttnn 0.81.1 api/compute/compute_kernel_hw_startup.h): no state to set here.
#pragma once

#include "api/compute/common.h"

// how (icb0, icb1) map onto SrcA/SrcB; matmul needs Reverse (ttnn 0.81.1 api/compute/src_order.h)
enum class SrcOrder : uint8_t {
    Regular = 0,  // icb0 -> SrcA, icb1 -> SrcB
    Reverse = 1,  // icb0 -> SrcB, icb1 -> SrcA
};

template <SrcOrder src_order = SrcOrder::Regular>
ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t icb1, uint32_t ocb) {}
ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t ocb) {}
