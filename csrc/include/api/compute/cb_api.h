// Circular buffers from a compute kernel (ttnn 0.81.1 api/compute/cb_api.h).
#pragma once

#include "api/compute/common_globals.h"

ALWI void cb_wait_front(uint32_t cbid, uint32_t ntiles) {
    emu_ctx->api->cb_wait_front(emu_ctx, static_cast<int32_t>(cbid), static_cast<int32_t>(ntiles));
}
ALWI void cb_pop_front(uint32_t cbid, uint32_t ntiles) {
    emu_ctx->api->cb_pop_front(emu_ctx, static_cast<int32_t>(cbid), static_cast<int32_t>(ntiles));
}
ALWI void cb_reserve_back(uint32_t cbid, uint32_t ntiles) {
    emu_ctx->api->cb_reserve_back(emu_ctx, static_cast<int32_t>(cbid), static_cast<int32_t>(ntiles));
}
ALWI void cb_push_back(uint32_t cbid, uint32_t ntiles) {
    emu_ctx->api->cb_push_back(emu_ctx, static_cast<int32_t>(cbid), static_cast<int32_t>(ntiles));
    emu_compute::state.pack_next[cbid] = 0;  // the packer's in-order position restarts at the new back
}

// Word `element_offset` of tile `tile_index` at the front of `cb_id`: how a compute kernel
// reads a per-step value (a position) a dataflow kernel pushed.
ALWI uint32_t read_tile_value(uint32_t cb_id, uint32_t tile_index, uint32_t element_offset) {
    const uint32_t addr = emu_ctx->api->cb_tile_front(emu_ctx, cb_id, tile_index, "read_tile_value");
    if (element_offset * 4 + 4 > unpack_tile_size[cb_id]) {
        emu_ctx->api->fail(emu_ctx, "read_tile_value: element offset past the end of the CB page");
    }
    return reinterpret_cast<volatile uint32_t*>(uintptr_t(addr))[element_offset];
}
