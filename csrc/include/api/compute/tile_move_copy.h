// copy_tile (ttnn 0.81.1 api/compute/tile_move_copy.h): CB tile -> dst.
#pragma once

#include "api/compute/common_globals.h"
#include "api/compute/reconfig_data_format.h"

ALWI void copy_init(std::uint32_t cbid, std::uint32_t transpose = 0, std::uint32_t transpose_within_16x16_face = false,
                     std::uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("copy_init");
}
ALWI void copy_tile(std::uint32_t in_cb_id, std::uint32_t in_tile_index, std::uint32_t dst_tile_index) {
    using namespace emu_compute;
    expect(DstState::Math, "copy_tile");
    expect_init("copy_init", false, "copy_tile");
    // unpack A: SrcA, then the math thread's datacopy to dst (fp32 arrives as TF32: no unpack-to-dest)
    static thread_local float a[TILE_HW];
    unpack(in_cb_id, in_tile_index, a, SrcA, "copy_tile");
    std::memcpy(dst_write(dst_tile_index, "copy_tile"), a, sizeof a);
}
