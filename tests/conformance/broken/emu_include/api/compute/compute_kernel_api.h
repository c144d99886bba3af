// Broken fixture: an emulator compute_kernel_api.h that includes more than ttnn 0.81.1's (which brings
// no api/compute header): a kernel calling copy_tile after including only this would compile on the
// emulator and not on a card. The conformance check (--emu-include this directory) must name it.
#pragma once

#include "api/compute/common.h"
#include "api/compute/tile_move_copy.h"
