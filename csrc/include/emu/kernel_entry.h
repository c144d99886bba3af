// Force-included (-include) into every kernel by the emulator JIT: the entry point
// the runtime calls on the thread of one (core, RISC).
#pragma once

#include "emu/abi.h"
#ifdef COMPILE_FOR_TRISC
#include "emu/compute_impl.h"
#endif

void kernel_main();

extern "C" __attribute__((visibility("default"))) void emu_kernel_entry(EmuKernelCtx* ctx) {
    emu_ctx = ctx;
    kernel_main();
#ifdef COMPILE_FOR_TRISC
    if (emu_compute::state.state != emu_compute::DstState::Free) {
        ctx->api->fail(ctx, "kernel returned holding the dst registers: every tile_regs_acquire needs its commit, "
                            "wait and release");
    }
#endif
}
