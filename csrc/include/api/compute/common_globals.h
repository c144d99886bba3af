// What every compute API header starts from (ttnn 0.81.1 api/compute/common_globals.h: ALWI, and through
// ckernel_include.h the LLK's enums of tt_llk_wormhole_b0/llk_lib/llk_defs.h): no compute API call.
#pragma once

#include <cstdint>

#include "api/compile_time_args.h"
#include "emu/compute_impl.h"
#include "emu/runtime_args.h"
#include "hostdevcommon/kernel_structs.h"

#define ALWI inline __attribute__((always_inline))

enum class VectorMode : std::uint8_t { None = 0, R = 1, C = 2, RC = 4, RC_custom = 5, Invalid = 0xff };
enum class BroadcastType : std::uint8_t { NONE = 0, COL = 1, ROW = 2, SCALAR = 3 };
