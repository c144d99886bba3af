// recip_tile (ttnn 0.81.1 api/compute/eltwise_unary/recip.h): dst = 1 / dst, fp32.
#pragma once

#include "api/compute/common_globals.h"

enum class ReciprocalDestAcc { BF16, FP32 };
enum class ReciprocalApproxMode { Default, Precise, Approximate };

template <ReciprocalDestAcc dest_acc = DST_ACCUM_MODE ? ReciprocalDestAcc::FP32 : ReciprocalDestAcc::BF16,
          ReciprocalApproxMode approximation = ReciprocalApproxMode::Default>
ALWI void recip_tile_init() {
    emu_compute::configure_sfpu("recip_tile_init");
}

template <ReciprocalDestAcc dest_acc = DST_ACCUM_MODE ? ReciprocalDestAcc::FP32 : ReciprocalDestAcc::BF16,
          ReciprocalApproxMode approximation = ReciprocalApproxMode::Default>
ALWI void recip_tile(uint32_t idst, VectorMode vector_mode = VectorMode::RC) {
    emu_compute::unary(idst, "recip_tile", "recip_tile_init", [](float x) { return 1.0f / x; });
}
