// ttnn 0.81.1 api/compute/compute_kernel_api.h includes only ckernel / LLK headers (and defines ALWI)
// and declares SFPU ops our kernels do not use: no api/compute header comes with it (not common.h,
// not tile_move_copy.h), so a kernel includes the header of every call it makes, as on a card.
#pragma once

#include <cstdint>

#include "emu/compute_impl.h"
#include "emu/risc_attribs.h"
#include "hostdevcommon/kernel_structs.h"

#define ALWI inline __attribute__((always_inline))
