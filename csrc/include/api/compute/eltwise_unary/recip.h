// recip_tile (ttnn 0.81.1 api/compute/eltwise_unary/recip.h): dst = 1 / dst, fp32.
#pragma once

#include "api/compute/eltwise_unary/eltwise_unary.h"

template <bool legacy_compat = true>
ALWI void recip_tile_init() {
    emu_compute::configure_sfpu("recip_tile_init");
}

template <bool legacy_compat = true>
ALWI void recip_tile(uint32_t idst, VectorMode vector_mode = VectorMode::RC) {
    emu_compute::unary(idst, "recip_tile", "recip_tile_init", [](float x) { return 1.0f / x; });
}
