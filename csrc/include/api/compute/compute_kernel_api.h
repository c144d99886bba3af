// ttnn 0.81.1 api/compute/compute_kernel_api.h includes only ckernel / LLK headers and declares the
// SFPU ops our kernels do not use: no api/compute header comes with it (not common.h, not
// tile_move_copy.h), so a kernel includes the header of every call it makes, as on a card.
#pragma once

#include "api/compute/common_globals.h"
#include "emu/risc_attribs.h"
