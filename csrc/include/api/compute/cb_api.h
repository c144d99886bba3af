// Circular buffers from a compute kernel (ttnn 0.81.1 api/compute/cb_api.h).
#pragma once

#include "api/compute/common.h"

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
