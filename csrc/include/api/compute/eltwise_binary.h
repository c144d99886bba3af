// Element-wise binary tile ops (ttnn 0.81.1 api/compute/eltwise_binary.h): dst[idst] = a op b, fp32.
#pragma once

#include "api/compute/common.h"

ALWI void binary_op_init_common(uint32_t icb0, uint32_t icb1, uint32_t ocb) {}
ALWI void add_tiles_init(uint32_t icb0, uint32_t icb1, bool acc_to_dest = false) {}
ALWI void sub_tiles_init(uint32_t icb0, uint32_t icb1, bool acc_to_dest = false) {}
ALWI void mul_tiles_init(uint32_t icb0, uint32_t icb1) {}

template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void add_tiles(std::uint32_t icb0, std::uint32_t icb1, std::uint32_t itile0, std::uint32_t itile1,
                    std::uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::None, "add_tiles",
                        [](float a, float b) { return a + b; });
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void sub_tiles(std::uint32_t icb0, std::uint32_t icb1, std::uint32_t itile0, std::uint32_t itile1,
                    std::uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::None, "sub_tiles",
                        [](float a, float b) { return a - b; });
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void mul_tiles(std::uint32_t icb0, std::uint32_t icb1, std::uint32_t itile0, std::uint32_t itile1,
                    std::uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::None, "mul_tiles",
                        [](float a, float b) { return a * b; });
}
