// binary_max_tile (ttnn 0.81.1 api/compute/binary_max_min.h): dst[odst] = max(dst[idst0], dst[idst1]).
#pragma once

#include "api/compute/common_globals.h"

ALWI void binary_max_tile_init() { emu_compute::configure_sfpu("binary_max_tile_init"); }
ALWI void binary_max_tile(uint32_t idst0, uint32_t idst1, uint32_t odst, VectorMode vector_mode = VectorMode::RC) {
    using namespace emu_compute;
    expect(DstState::Math, "binary_max_tile");
    expect_init("binary_max_tile_init", true, "binary_max_tile");
    const float* a = dst_read(idst0, "binary_max_tile");
    const float* b = dst_read(idst1, "binary_max_tile");
    float* o = dst_write(odst, "binary_max_tile");
    for (uint32_t i = 0; i < TILE_HW; ++i) o[i] = a[i] > b[i] ? a[i] : b[i];
}
