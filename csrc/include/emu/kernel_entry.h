// Force-included (-include) into every kernel by the emulator JIT: the entry point
// the runtime calls on the thread of one (core, RISC).
#pragma once

#include "emu/abi.h"

void kernel_main();

extern "C" __attribute__((visibility("default"))) void emu_kernel_entry(EmuKernelCtx* ctx) {
    emu_ctx = ctx;
    kernel_main();
}
