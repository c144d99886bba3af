// Dst register protocol (ttnn 0.81.1 api/compute/reg_api.h): math acquires and commits,
// pack waits and releases. After acquire dst holds nothing a kernel may read: the packer cleared
// the released half with ZEROACC (compute_impl.h: dst_read / dst_accumulate); poisoned with NaN.
#pragma once

#include "api/compute/common_globals.h"

ALWI void tile_regs_acquire() {
    using namespace emu_compute;
    expect(DstState::Free, "tile_regs_acquire");
    for (auto& tile : state.dst)
        for (float& v : tile) v = __builtin_nanf("");
    for (bool& w : state.written) w = false;
    state.state = DstState::Math;
}
ALWI void tile_regs_commit() {
    using namespace emu_compute;
    expect(DstState::Math, "tile_regs_commit");
    state.state = DstState::Committed;
}
ALWI void tile_regs_wait() {
    using namespace emu_compute;
    expect(DstState::Committed, "tile_regs_wait");
    state.state = DstState::Pack;
}
ALWI void tile_regs_release() {
    using namespace emu_compute;
    expect(DstState::Pack, "tile_regs_release");
    state.state = DstState::Free;
}
// Legacy pair: acquire = acquire + (implicit) wait for pack later; release = commit + wait + release.
ALWI void acquire_dst() { tile_regs_acquire(); }
ALWI void release_dst() {
    tile_regs_commit();
    tile_regs_wait();
    tile_regs_release();
}
