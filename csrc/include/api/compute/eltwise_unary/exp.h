// exp_tile (ttnn 0.81.1 api/compute/eltwise_unary/exp.h): dst = exp(dst), fp32 (the
// approximate SFPU modes are not modelled: the emulator computes the exact exp).
#pragma once

#include "api/compute/common_globals.h"

enum class InputClamping : uint8_t {
    ClampToNegative = 1,
    None = 0,
};

template <bool approx = false, uint32_t scale = 0x3F800000, InputClamping input_clamping = InputClamping::ClampToNegative,
          bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void exp_tile_init() {
    emu_compute::configure_sfpu("exp_tile_init");
}

template <bool approx = false, bool scale_en = false, InputClamping input_clamping = InputClamping::ClampToNegative,
          int iterations = 8, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void exp_tile(uint32_t idst, VectorMode vector_mode = VectorMode::RC, uint16_t scale = 0x3F80) {
    emu_compute::unary(idst, "exp_tile", "exp_tile_init", [](float x) { return std::exp(x); });
}
