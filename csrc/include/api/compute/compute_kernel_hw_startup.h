// Hardware init of a compute kernel (ttnn 0.81.1 api/compute/compute_kernel_hw_startup.h): no state to set here.
#pragma once

#include "api/compute/common.h"

ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t icb1, uint32_t ocb) {}
ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t ocb) {}
