// Hardware init of a compute kernel (ttnn 0.81.1 api/compute/compute_kernel_hw_startup.h): the one
// call that programs the unpacker's SrcA / SrcB formats and the packer's (llk_unpack_hw_configure,
// llk_math_hw_configure, llk_pack_hw_configure). SrcOrder::Reverse (matmul) puts in0 in SrcB.
#pragma once

#include "api/compute/common_globals.h"
#include "api/compute/src_order.h"

template <SrcOrder src_order = SrcOrder::Regular>
ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t icb1, uint32_t ocb) {
    using namespace emu_compute;
    constexpr bool reverse = src_order == SrcOrder::Reverse;
    configure_src(SrcA, reverse ? icb1 : icb0, "compute_kernel_hw_startup");
    configure_src(SrcB, reverse ? icb0 : icb1, "compute_kernel_hw_startup");
    configure_pack(ocb, "compute_kernel_hw_startup");
}
ALWI void compute_kernel_hw_startup(uint32_t icb0, uint32_t ocb) { compute_kernel_hw_startup(icb0, icb0, ocb); }
