// get_arg_val / get_common_arg_val for every RISC (dataflow and compute), bounds-checked:
// reading an arg the host never set is an error naming the index.
#pragma once

#include <cstdint>

#include "emu/abi.h"
#include "emu/risc_attribs.h"

static FORCE_INLINE uintptr_t get_arg_addr(int arg_idx) {
    if (arg_idx < 0 || static_cast<uint32_t>(arg_idx) >= emu_ctx->rta_count) {
        char msg[128];
        __builtin_snprintf(msg, sizeof msg, "missing runtime arg %d: %u runtime args were set for this core",
                           arg_idx, emu_ctx->rta_count);
        EMU_API->fail(emu_ctx, msg);
    }
    return reinterpret_cast<uintptr_t>(&emu_ctx->rta[arg_idx]);
}

static FORCE_INLINE uintptr_t get_common_arg_addr(int arg_idx) {
    if (arg_idx < 0 || static_cast<uint32_t>(arg_idx) >= emu_ctx->crta_count) {
        char msg[128];
        __builtin_snprintf(msg, sizeof msg, "missing common runtime arg %d: %u common runtime args were set",
                           arg_idx, emu_ctx->crta_count);
        EMU_API->fail(emu_ctx, msg);
    }
    return reinterpret_cast<uintptr_t>(&emu_ctx->crta[arg_idx]);
}

template <typename T>
FORCE_INLINE T get_arg_val(int arg_idx) {
    static_assert("Error: only 4B args are supported" && sizeof(T) == 4);
    return *((tt_l1_ptr T*)(get_arg_addr(arg_idx)));
}

template <typename T>
FORCE_INLINE T get_common_arg_val(int arg_idx) {
    static_assert("Error: only 4B args are supported" && sizeof(T) == 4);
    return *((tt_l1_ptr T*)(get_common_arg_addr(arg_idx)));
}

