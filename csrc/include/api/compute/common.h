// Compute kernel common API (ttnn 0.81.1 api/compute/common.h subset): args, CB formats.
#pragma once

#include <cstdint>

#include "api/compile_time_args.h"
#include "emu/compute_impl.h"
#include "emu/runtime_args.h"
#include "hostdevcommon/kernel_structs.h"

#define ALWI inline __attribute__((always_inline))

enum class VectorMode { None = 0, R = 1, C = 2, RC = 4, RC_custom = 5, Invalid = 0xff };
enum class BroadcastType { NONE = 0, COL = 1, ROW = 2, SCALAR = 3 };

#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
