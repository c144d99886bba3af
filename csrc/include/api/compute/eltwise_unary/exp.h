// exp_tile (ttnn 0.81.1 api/compute/eltwise_unary/exp.h): dst = exp(dst), fp32 (the
// approximate SFPU modes are not modelled: the emulator computes the exact exp).
#pragma once

#include "api/compute/eltwise_unary/eltwise_unary.h"

template <bool approx = false, bool fast_and_approx = false, uint32_t scale = 0x3F800000>
ALWI void exp_tile_init() {
    emu_compute::configure_sfpu("exp_tile_init");
}

template <bool approx = false, bool scale_en = false>
ALWI void exp_tile(uint32_t idst, VectorMode vector_mode = VectorMode::RC, uint16_t scale = 0x3F80) {
    emu_compute::unary(idst, "exp_tile", "exp_tile_init", [](float x) { return std::exp(x); });
}
