// Tile matmul (ttnn 0.81.1 api/compute/matmul.h): dst[idst] += A @ B (B transposed when
// matmul_init got transpose = 1), accumulated in fp32.
#pragma once

#include "api/compute/common.h"

ALWI void matmul_init(std::uint32_t in0_cb_id, std::uint32_t in1_cb_id, const std::uint32_t transpose = 0,
                      std::uint32_t call_line = __builtin_LINE()) {
    emu_compute::state.mm_transpose = transpose != 0;
    emu_compute::configure_fpu("matmul_init");
}
ALWI void matmul_tiles(std::uint32_t in0_cb_id, std::uint32_t in1_cb_id, std::uint32_t in0_tile_index,
                       std::uint32_t in1_tile_index, std::uint32_t idst) {
    using namespace emu_compute;
    expect(DstState::Math, "matmul_tiles");
    expect_init("matmul_init", false, "matmul_tiles");
    static thread_local float a[TILE_HW], b[TILE_HW];
    // matmul: in0 -> SrcB, in1 -> SrcA (api/compute/matmul.h: state_configure(in1_cb_id, in0_cb_id))
    unpack(in0_cb_id, in0_tile_index, a, SrcB, "matmul_tiles");
    unpack(in1_cb_id, in1_tile_index, b, SrcA, "matmul_tiles");
    float* d = dst_accumulate(idst, 0.0f, "matmul_tiles");
    const bool tr = state.mm_transpose;
    for (uint32_t r = 0; r < 32; ++r) {
        for (uint32_t c = 0; c < 32; ++c) {
            float acc = 0.0f;
            for (uint32_t i = 0; i < 32; ++i) acc += a[at(r, i)] * b[tr ? at(c, i) : at(i, c)];
            d[at(r, c)] += acc;
        }
    }
}
