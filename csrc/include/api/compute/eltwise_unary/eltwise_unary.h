// Unary SFPU ops on dst (ttnn 0.81.1 api/compute/eltwise_unary/eltwise_unary.h).
#pragma once

#include "api/compute/common.h"

ALWI void unary_op_init_common(uint32_t icb, uint32_t ocb) {}
ALWI void init_sfpu(uint32_t icb, uint32_t ocb) {}

namespace emu_compute {
template <typename Op>
inline void unary(uint32_t idst, const char* call, const char* init, Op op) {
    expect(DstState::Math, call);
    expect_init(init, true, call);
    float* d = dst_tile(idst, call);
    for (uint32_t i = 0; i < TILE_HW; ++i) d[i] = op(d[i]);
}
}  // namespace emu_compute
