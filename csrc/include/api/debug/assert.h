// ASSERT as in ttnn 0.81.1 api/debug/assert.h (active under the watcher on a card): the
// emulator always checks and reports the failed condition with core and kernel.
#pragma once

#include "emu/abi.h"

#define ASSERT(condition, ...)                                                        \
    do {                                                                              \
        if (!(condition)) {                                                           \
            emu_ctx->api->fail(emu_ctx, "ASSERT failed: " #condition);                \
        }                                                                             \
    } while (0)
