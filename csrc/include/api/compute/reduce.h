// reduce_tile (ttnn 0.81.1 api/compute/reduce.h), REDUCE_ROW with SUM / MAX: for every row
// r, v = reduce over the 32 columns of a[r][c], times the scaler tile's [0][0]; dst[r][0]
// becomes dst[r][0] + v (SUM) or max(dst[r][0], v) (MAX), so calls over several tiles
// into one dst slot accumulate, as sdpa's reduce_c relies on.
// On a dst tile not written since tile_regs_acquire, MAX (GMPOOL) reads the cleared rows as -inf
// (FACTS.md "Wormhole rules"), SUM as 0. Operands (api/compute/reduce.h, reduce_init): REDUCE_ROW
// SUM/AVG runs MVMUL with scaler -> SrcA, data -> SrcB; MAX data -> SrcA, scaler -> SrcB.
#pragma once

#include "api/compute/common.h"

enum class ReduceDim : std::uint8_t { REDUCE_ROW, REDUCE_COL, REDUCE_SCALAR };
enum class PoolType : std::uint8_t { SUM, AVG, MAX, MIN };

namespace emu_compute {
// "reduce_init<MAX, REDUCE_ROW>": each (type, dim) is its own op configuration.
template <PoolType t, ReduceDim d>
inline const char* reduce_init_name() {
    static const char* const names[4][3] = {
        {"reduce_init<SUM, REDUCE_ROW>", "reduce_init<SUM, REDUCE_COL>", "reduce_init<SUM, REDUCE_SCALAR>"},
        {"reduce_init<AVG, REDUCE_ROW>", "reduce_init<AVG, REDUCE_COL>", "reduce_init<AVG, REDUCE_SCALAR>"},
        {"reduce_init<MAX, REDUCE_ROW>", "reduce_init<MAX, REDUCE_COL>", "reduce_init<MAX, REDUCE_SCALAR>"},
        {"reduce_init<MIN, REDUCE_ROW>", "reduce_init<MIN, REDUCE_COL>", "reduce_init<MIN, REDUCE_SCALAR>"}};
    return names[int(t)][int(d)];
}
}  // namespace emu_compute

template <PoolType reduce_type, ReduceDim reduce_dim, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void reduce_init(std::uint32_t icb, std::uint32_t icb_scaler, std::uint32_t ocb,
                      std::uint32_t call_line = __builtin_LINE()) {
    emu_compute::configure_fpu(emu_compute::reduce_init_name<reduce_type, reduce_dim>());
}
ALWI void reduce_uninit(std::uint32_t icb = 0) {}

template <PoolType reduce_type, ReduceDim reduce_dim, bool is_fp32_dest_acc_en = DST_ACCUM_MODE>
ALWI void reduce_tile(std::uint32_t icb, std::uint32_t icb_scaler, std::uint32_t itile, std::uint32_t itile_scaler,
                      std::uint32_t idst) {
    using namespace emu_compute;
    static_assert(reduce_dim == ReduceDim::REDUCE_ROW, "emulator: only REDUCE_ROW is modelled");
    static_assert(reduce_type == PoolType::SUM || reduce_type == PoolType::MAX, "emulator: only SUM and MAX");
    expect(DstState::Math, "reduce_tile");
    expect_init(reduce_init_name<reduce_type, reduce_dim>(), false, "reduce_tile");
    constexpr bool swap = reduce_type != PoolType::MAX;  // REDUCE_ROW only (static_assert above)
    static thread_local float a[TILE_HW], s[TILE_HW];
    unpack(icb, itile, a, swap ? SrcB : SrcA, "reduce_tile");
    unpack(icb_scaler, itile_scaler, s, swap ? SrcA : SrcB, "reduce_tile");
    float* d = dst_accumulate(idst, reduce_type == PoolType::MAX ? -__builtin_inff() : 0.0f, "reduce_tile");
    const float scaler = s[0];
    for (uint32_t r = 0; r < 32; ++r) {
        float v = reduce_type == PoolType::MAX ? -__builtin_inff() : 0.0f;
        for (uint32_t c = 0; c < 32; ++c) {
            const float x = a[at(r, c)] * scaler;
            v = reduce_type == PoolType::MAX ? (x > v ? x : v) : v + x;
        }
        float& out = d[at(r, 0)];
        out = reduce_type == PoolType::MAX ? (v > out ? v : out) : out + v;
    }
}
