// Broadcast binary tile ops (ttnn 0.81.1 api/compute/bcast.h): COL uses column 0 of b for
// every column, ROW row 0 of b for every row, SCALAR b[0][0].
#pragma once

#include "api/compute/common.h"

ALWI void sub_bcast_cols_init(uint32_t icb0, uint32_t icb1, uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("sub_bcast_cols_init");
}
ALWI void mul_bcast_cols_init(uint32_t icb0, uint32_t icb1, uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("mul_bcast_cols_init");
}
ALWI void add_bcast_cols_init(uint32_t icb0, uint32_t icb1, uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("add_bcast_cols_init");
}
ALWI void mul_bcast_rows_init(uint32_t icb0, uint32_t icb1, uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu("mul_bcast_rows_init");
}

ALWI void sub_tiles_bcast_cols(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::Cols, "sub_tiles_bcast_cols",
                        "sub_bcast_cols_init",
                        [](float a, float b) { return a - b; });
}
ALWI void mul_tiles_bcast_cols(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::Cols, "mul_tiles_bcast_cols",
                        "mul_bcast_cols_init",
                        [](float a, float b) { return a * b; });
}
ALWI void add_tiles_bcast_cols(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::Cols, "add_tiles_bcast_cols",
                        "add_bcast_cols_init",
                        [](float a, float b) { return a + b; });
}
ALWI void mul_tiles_bcast_rows(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst) {
    emu_compute::binary(icb0, icb1, itile0, itile1, idst, emu_compute::Bcast::Rows, "mul_tiles_bcast_rows",
                        "mul_bcast_rows_init",
                        [](float a, float b) { return a * b; });
}
