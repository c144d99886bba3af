// Element-wise binary tile ops (ttnn 0.81.1 api/compute/eltwise_binary.h): dst[idst] = a op b, fp32.
#pragma once

#include "api/compute/common.h"

ALWI void add_init(std::uint32_t icb0, std::uint32_t icb1, bool acc_to_dest = false,
                   std::uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("add_init");
}
ALWI void sub_init(std::uint32_t icb0, std::uint32_t icb1, bool acc_to_dest = false,
                   std::uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("sub_init");
}
ALWI void mul_init(std::uint32_t icb0, std::uint32_t icb1, bool acc_to_dest = true,
                   std::uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("mul_init");
}

template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void add_tiles(std::uint32_t icb0, std::uint32_t icb1, std::uint32_t itile0, std::uint32_t itile1,
                    std::uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::None, "add_tiles", "add_init",
                        [](float a, float b) { return a + b; });
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void sub_tiles(std::uint32_t icb0, std::uint32_t icb1, std::uint32_t itile0, std::uint32_t itile1,
                    std::uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::None, "sub_tiles", "sub_init",
                        [](float a, float b) { return a - b; });
}
template <bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void mul_tiles(std::uint32_t icb0, std::uint32_t icb1, std::uint32_t itile0, std::uint32_t itile1,
                    std::uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::None, "mul_tiles", "mul_init",
                        [](float a, float b) { return a * b; });
}
