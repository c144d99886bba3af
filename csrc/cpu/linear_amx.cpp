// The amx matrix path (compiled with -mamx-tile -mamx-bf16 -mavx512f): TDPBF16PS multiplies a tile of
// 16 activation rows x 32 k (bf16) by a tile of 32 k x 16 columns (the VNNI layout of linear.hpp) into
// 16 x 16 fp32 accumulators. Every call configures full 16-row tiles and the activations are padded to
// 16 rows with zeros (linear.cpp), so a decode row and a verify row run the same instructions on the
// same tile shape; a row of C depends only on its row of A. Each element is one chain of TDPBF16PS over
// the k-blocks in order.
//
// NOT RUN on the machine where it was written (an AMD Zen 4, no AMX); its tests skip where
// matrix_paths() lacks "amx". The permission request (arch_prctl) is in matrix_path.cpp.
#include <immintrin.h>

#include <cstring>

#include "linear.hpp"

namespace tt_cpu::kernels {

namespace {

struct alignas(64) TileConfig {
    uint8_t palette_id = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};  // bytes per row of tile i
    uint8_t rows[16] = {};
};

// tiles 0, 1: C of two panels [16 rows, 16 fp32]; 2: A [16 rows, 32 bf16]; 3, 4: B of two panels
// [16 k-pairs, 16 columns x 2 bf16]: every tile 16 rows of 64 bytes
void configure() {
    TileConfig cfg;
    for (int t = 0; t < 5; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
}

// C[16, 16] of panels p (tile 0) and p + 1 (tile 1, when two) for rows [m0, m0 + 16) of the padded xb
template <bool TWO>
void panels16(const LinearArgs& a, int64_t m0, int64_t p) {
    const int64_t xstride = a.kp * 2, pstride = a.kp * PANEL;  // bytes per activation row; elements per panel
    const uint16_t* w0 = a.w + p * pstride;
    _tile_zero(0);
    if (TWO) _tile_zero(1);
    for (int64_t kb = 0; kb < a.kp; kb += KBLOCK) {
        _tile_loadd(2, a.xb + m0 * a.kp + kb, xstride);
        _tile_loadd(3, w0 + kb * PANEL, 64);  // 16 k-pairs x 16 columns x 2
        _tile_dpbf16ps(0, 2, 3);
        if (TWO) {
            _tile_loadd(4, w0 + pstride + kb * PANEL, 64);
            _tile_dpbf16ps(1, 2, 4);
        }
    }
    alignas(64) float c[2][16][PANEL];
    _tile_stored(0, c[0], 64);
    if (TWO) _tile_stored(1, c[1], 64);
    for (int j = 0; j < (TWO ? 2 : 1); ++j) {
        int64_t col = (p + j) * PANEL, valid = a.n - col < PANEL ? a.n - col : PANEL;
        for (int64_t r = 0; r < 16 && m0 + r < a.M; ++r)
            std::memcpy(a.out + (m0 + r) * a.n + col, c[j][r], sizeof(float) * valid);
    }
}

}  // namespace

void linear_amx(const LinearArgs& a, int64_t p0, int64_t p1) {
    configure();  // tile configuration is per thread: set by every task (cheap beside a panel group)
    for (int64_t m0 = 0; m0 < a.M; m0 += 16) {
        int64_t p = p0;
        for (; p + 2 <= p1; p += 2) panels16<true>(a, m0, p);
        if (p < p1) panels16<false>(a, m0, p);
    }
    _tile_release();  // leave no tile state: a context switch then saves less
}

}  // namespace tt_cpu::kernels
