// How (icb0, icb1) map onto SrcA / SrcB (ttnn 0.81.1 api/compute/src_order.h); matmul needs Reverse.
#pragma once

#include <cstdint>

enum class SrcOrder : uint8_t {
    Regular = 0,  // icb0 -> SrcA, icb1 -> SrcB
    Reverse = 1,  // icb0 -> SrcB, icb1 -> SrcA
};
