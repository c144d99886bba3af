// pack_tile (ttnn 0.81.1 api/compute/pack.h): dst -> CB tile, rounded to the CB's format.
#pragma once

#include "api/compute/common_globals.h"

template <bool out_of_order_output = false, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void pack_tile(std::uint32_t ifrom_dst, std::uint32_t icb, std::uint32_t output_tile_index = 0) {
    using namespace emu_compute;
    expect(DstState::Pack, "pack_tile");
    const uint32_t itile = out_of_order_output ? output_tile_index : state.pack_next[icb]++;
    pack(ifrom_dst, icb, itile, "pack_tile");
}
