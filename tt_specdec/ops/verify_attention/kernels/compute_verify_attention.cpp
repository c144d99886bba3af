// verify_attention, compute: online softmax attention of the packed query rows [32 = (t, g), D]
// over the chunks of 32 keys the reader streams, all in fp32 tiles:
//   S = Q K^T * scale (+ mask: 0 / -inf)      m = max(m_prev, rowmax S)
//   P = exp(S - m)    alpha = exp(m_prev - m) l = l_prev * alpha + rowsum P
//   O = O_prev * alpha + P V                  out = O / l
// Running m, l, O alternate between two CBs by update parity, so an update's inputs are still
// at the front while its outputs are pushed. Row sums are P @ ones (the value lands in
// every column; column 0 is what the column broadcasts read).
// Every op runs after its own init (the unpacker / math / packer are configured per op): an
// unpack/math init (matmul, reduce, copy, add/sub, *_bcast_cols) before each change of FPU op,
// an SFPU init (exp, binary_max, recip) before each change of SFPU op. No init sets data formats:
// before each FPU op reconfig_data_format* gives SrcA / SrcB the formats of its CBs (eltwise, reduce
// max and copy: in0 -> SrcA; matmul: in1 -> SrcA, hence SrcOrder::Reverse), and pack_to gives the
// packer its CB's, so bf16 q / k / v / out and the fp32 intermediates mix safely.
// KV splits: this core runs chunks [begin, end) only. A worker split packs its unnormalized
// (m, l, O) to cb_part for its writer; the combine core (split 0) merges each worker's
// (m_j, l_j, O_j) like one more chunk:  m' = max(m, m_j)  a = exp(m - m')  b = exp(m_j - m')
//   l' = l a + l_j b   O' = O a + O_j b   and then normalizes.
#include <cstdint>

#include "api/compute/bcast.h"
#include "api/compute/binary_max_min.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/eltwise_unary/exp.h"
#include "api/compute/eltwise_unary/recip.h"
#include "api/compute/matmul.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/reduce.h"
#include "api/compute/tile_move_copy.h"
#include "verify_attention_common.hpp"

using namespace verify_attention;

// dst slot 0 -> one new tile at the back of `cb`
inline void pack_to(uint32_t cb) {
    tile_regs_commit();
    cb_reserve_back(cb, 1);
    pack_reconfig_data_format(cb);
    tile_regs_wait();
    pack_tile(0, cb);
    tile_regs_release();
    cb_push_back(cb, 1);
}

void kernel_main() {
    // Compile-time args
    // -----------------
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_COMPUTE_D_TILES);  // D / 32
    static_assert(d_tiles >= 1, "D >= 32");

    // once, before any other compute API call; Reverse: the first op is the Q·K^T matmul
    compute_kernel_hw_startup<SrcOrder::Reverse>(CB_Q, CB_K, CB_S);
    cb_wait_front(CB_POS, 1);
    const uint32_t shown = read_tile_value(CB_POS, 0, 0);  // keys 0 .. shown - 1: seen by every row
    const uint32_t begin = read_tile_value(CB_POS, 0, 1);
    const uint32_t end = read_tile_value(CB_POS, 0, 2);
    const uint32_t merges = read_tile_value(CB_POS, 0, 3);  // partials to merge, or WORKER
    cb_pop_front(CB_POS, 1);
    if (begin == end) {
        return;  // an idle split
    }

    cb_wait_front(CB_SCALE, 1);
    cb_wait_front(CB_ONES, 1);
    cb_wait_front(CB_Q, d_tiles);
    for (uint32_t c = begin; c < end; ++c) {
        const uint32_t u = c - begin;  // update count: picks the parity
        const bool first = u == 0;
        const uint32_t cb_m = u % 2 ? CB_M1 : CB_M0, cb_m_prev = u % 2 ? CB_M0 : CB_M1;
        const uint32_t cb_l = u % 2 ? CB_L1 : CB_L0, cb_l_prev = u % 2 ? CB_L0 : CB_L1;
        const uint32_t cb_o = u % 2 ? CB_O1 : CB_O0, cb_o_prev = u % 2 ? CB_O0 : CB_O1;

        // S = Q K^T: accumulate over the D tiles
        cb_wait_front(CB_K, d_tiles);
        reconfig_data_format<SrcOrder::Reverse>(CB_Q, CB_K);
        matmul_init(CB_Q, CB_K, 1);
        tile_regs_acquire();
        for (uint32_t d = 0; d < d_tiles; ++d) {
            matmul_tiles(CB_Q, CB_K, d, d, 0);
        }
        pack_to(CB_TMP);
        cb_pop_front(CB_K, d_tiles);

        // S *= scale, then + mask when the chunk holds a key some row does not see
        const bool masked = chunk_is_masked(c, shown);
        cb_wait_front(CB_TMP, 1);
        reconfig_data_format(CB_TMP, CB_SCALE);
        mul_bcast_cols_init(CB_TMP, CB_SCALE);
        tile_regs_acquire();
        mul_tiles_bcast_cols(CB_TMP, CB_SCALE, 0, 0, 0);
        pack_to(masked ? CB_S2 : CB_S);
        cb_pop_front(CB_TMP, 1);
        if (masked) {
            cb_wait_front(CB_S2, 1);
            cb_wait_front(CB_MASK, 1);
            reconfig_data_format(CB_S2, CB_MASK);
            add_init(CB_S2, CB_MASK);
            tile_regs_acquire();
            add_tiles(CB_S2, CB_MASK, 0, 0, 0);
            pack_to(CB_S);
            cb_pop_front(CB_S2, 1);
            cb_pop_front(CB_MASK, 1);
        }

        // m = max(m_prev, rowmax S), in column 0
        cb_wait_front(CB_S, 1);
        reconfig_data_format(CB_S, CB_ONES);
        reduce_init<PoolType::MAX, ReduceDim::REDUCE_ROW>(CB_S, CB_ONES, cb_m);
        tile_regs_acquire();
        reduce_tile<PoolType::MAX, ReduceDim::REDUCE_ROW>(CB_S, CB_ONES, 0, 0, 0);
        if (!first) {
            cb_wait_front(cb_m_prev, 1);
            reconfig_data_format_srca(cb_m_prev);
            copy_init(cb_m_prev);
            copy_tile(cb_m_prev, 0, 1);
            binary_max_tile_init();
            binary_max_tile(0, 1, 0);
        }
        pack_to(cb_m);
        reduce_uninit();  // the packer's edge mask back to default

        // P = exp(S - m)
        cb_wait_front(cb_m, 1);
        reconfig_data_format(CB_S, cb_m);
        sub_bcast_cols_init(CB_S, cb_m);
        tile_regs_acquire();
        sub_tiles_bcast_cols(CB_S, cb_m, 0, 0, 0);
        exp_tile_init();
        exp_tile(0);
        pack_to(CB_P);
        cb_pop_front(CB_S, 1);

        // alpha = exp(m_prev - m): how much the running sums shrink
        if (!first) {
            reconfig_data_format(cb_m_prev, cb_m);
            sub_init(cb_m_prev, cb_m);
            tile_regs_acquire();
            sub_tiles(cb_m_prev, cb_m, 0, 0, 0);
            exp_tile(0);  // exp_tile_init is still the latest SFPU init
            pack_to(CB_ALPHA);
            cb_pop_front(cb_m_prev, 1);
            cb_wait_front(CB_ALPHA, 1);
        }

        // l = l_prev * alpha + rowsum P
        cb_wait_front(CB_P, 1);
        reconfig_data_format<SrcOrder::Reverse>(CB_P, CB_ONES);
        matmul_init(CB_P, CB_ONES, 0);
        tile_regs_acquire();
        matmul_tiles(CB_P, CB_ONES, 0, 0, 0);
        pack_to(first ? cb_l : CB_LC);
        if (!first) {
            cb_wait_front(cb_l_prev, 1);
            reconfig_data_format(cb_l_prev, CB_ALPHA);
            mul_bcast_cols_init(cb_l_prev, CB_ALPHA);
            tile_regs_acquire();
            mul_tiles_bcast_cols(cb_l_prev, CB_ALPHA, 0, 0, 0);
            pack_to(CB_TMP);
            cb_pop_front(cb_l_prev, 1);
            cb_wait_front(CB_LC, 1);
            cb_wait_front(CB_TMP, 1);
            reconfig_data_format(CB_LC, CB_TMP);
            add_init(CB_LC, CB_TMP);
            tile_regs_acquire();
            add_tiles(CB_LC, CB_TMP, 0, 0, 0);
            pack_to(cb_l);
            cb_pop_front(CB_LC, 1);
            cb_pop_front(CB_TMP, 1);
        }

        // O = O_prev * alpha + P V, per D tile
        cb_wait_front(CB_V, d_tiles);
        reconfig_data_format<SrcOrder::Reverse>(CB_P, CB_V);
        matmul_init(CB_P, CB_V, 0);
        for (uint32_t d = 0; d < d_tiles; ++d) {
            tile_regs_acquire();
            matmul_tiles(CB_P, CB_V, 0, d, 0);
            pack_to(first ? cb_o : CB_PV);
        }
        cb_pop_front(CB_V, d_tiles);
        cb_pop_front(CB_P, 1);
        if (!first) {
            cb_wait_front(CB_PV, d_tiles);
            cb_wait_front(cb_o_prev, d_tiles);
            for (uint32_t d = 0; d < d_tiles; ++d) {
                reconfig_data_format(cb_o_prev, CB_ALPHA);
                mul_bcast_cols_init(cb_o_prev, CB_ALPHA);
                tile_regs_acquire();
                mul_tiles_bcast_cols(cb_o_prev, CB_ALPHA, d, 0, 0);
                pack_to(CB_TMP);
                cb_wait_front(CB_TMP, 1);
                reconfig_data_format(CB_PV, CB_TMP);
                add_init(CB_PV, CB_TMP);
                tile_regs_acquire();
                add_tiles(CB_PV, CB_TMP, d, 0, 0);
                pack_to(cb_o);
                cb_pop_front(CB_TMP, 1);
            }
            cb_pop_front(CB_PV, d_tiles);
            cb_pop_front(cb_o_prev, d_tiles);
            cb_pop_front(CB_ALPHA, 1);
        }
    }

    uint32_t last = (end - begin - 1) % 2;  // parity of the newest (m, l, O)
    if (merges == WORKER) {  // a worker split: (m, l, O) as they are, to the combine core
        const uint32_t cb_m = last ? CB_M1 : CB_M0, cb_l = last ? CB_L1 : CB_L0, cb_o = last ? CB_O1 : CB_O0;
        cb_wait_front(cb_m, 1);
        cb_wait_front(cb_l, 1);
        cb_wait_front(cb_o, d_tiles);
        for (uint32_t i = 0; i < d_tiles + 2; ++i) {
            const uint32_t cb = i == 0 ? cb_m : i == 1 ? cb_l : cb_o;
            reconfig_data_format_srca(cb);
            copy_init(cb);
            tile_regs_acquire();
            copy_tile(cb, i < 2 ? 0 : i - 2, 0);
            pack_to(CB_PART);
        }
        cb_pop_front(cb_m, 1);
        cb_pop_front(cb_l, 1);
        cb_pop_front(cb_o, d_tiles);
        cb_pop_front(CB_Q, d_tiles);
        cb_pop_front(CB_SCALE, 1);
        cb_pop_front(CB_ONES, 1);
        return;
    }
    for (uint32_t j = 0; j < merges; ++j) {  // combine core: fold in partial j = [m_j, l_j, O_j]
        const uint32_t cb_m_prev = last ? CB_M1 : CB_M0, cb_m = last ? CB_M0 : CB_M1;
        const uint32_t cb_l_prev = last ? CB_L1 : CB_L0, cb_l = last ? CB_L0 : CB_L1;
        const uint32_t cb_o_prev = last ? CB_O1 : CB_O0, cb_o = last ? CB_O0 : CB_O1;
        cb_wait_front(CB_GATHER, d_tiles + 2);
        cb_wait_front(cb_m_prev, 1);
        // m' = max(m, m_j)
        tile_regs_acquire();
        reconfig_data_format_srca(cb_m_prev);
        copy_init(cb_m_prev);
        copy_tile(cb_m_prev, 0, 0);
        reconfig_data_format_srca(CB_GATHER);
        copy_init(CB_GATHER);
        copy_tile(CB_GATHER, 0, 1);
        binary_max_tile_init();
        binary_max_tile(0, 1, 0);
        pack_to(cb_m);
        cb_wait_front(cb_m, 1);
        // a = exp(m - m') -> alpha, b = exp(m_j - m') -> p
        reconfig_data_format(cb_m_prev, cb_m);
        sub_init(cb_m_prev, cb_m);
        tile_regs_acquire();
        sub_tiles(cb_m_prev, cb_m, 0, 0, 0);
        exp_tile_init();
        exp_tile(0);
        pack_to(CB_ALPHA);
        reconfig_data_format(CB_GATHER, cb_m);
        sub_init(CB_GATHER, cb_m);
        tile_regs_acquire();
        sub_tiles(CB_GATHER, cb_m, 0, 0, 0);
        exp_tile(0);
        pack_to(CB_P);
        cb_pop_front(cb_m_prev, 1);
        cb_wait_front(CB_ALPHA, 1);
        cb_wait_front(CB_P, 1);
        // l' = l a + l_j b
        cb_wait_front(cb_l_prev, 1);
        reconfig_data_format(cb_l_prev, CB_ALPHA);
        mul_bcast_cols_init(cb_l_prev, CB_ALPHA);
        tile_regs_acquire();
        mul_tiles_bcast_cols(cb_l_prev, CB_ALPHA, 0, 0, 0);
        pack_to(CB_TMP);
        reconfig_data_format(CB_GATHER, CB_P);
        mul_bcast_cols_init(CB_GATHER, CB_P);
        tile_regs_acquire();
        mul_tiles_bcast_cols(CB_GATHER, CB_P, 1, 0, 0);
        pack_to(CB_LC);
        cb_pop_front(cb_l_prev, 1);
        cb_wait_front(CB_TMP, 1);
        cb_wait_front(CB_LC, 1);
        reconfig_data_format(CB_TMP, CB_LC);
        add_init(CB_TMP, CB_LC);
        tile_regs_acquire();
        add_tiles(CB_TMP, CB_LC, 0, 0, 0);
        pack_to(cb_l);
        cb_pop_front(CB_TMP, 1);
        cb_pop_front(CB_LC, 1);
        // O' = O a + O_j b, per D tile
        cb_wait_front(cb_o_prev, d_tiles);
        for (uint32_t d = 0; d < d_tiles; ++d) {
            reconfig_data_format(cb_o_prev, CB_ALPHA);
            mul_bcast_cols_init(cb_o_prev, CB_ALPHA);
            tile_regs_acquire();
            mul_tiles_bcast_cols(cb_o_prev, CB_ALPHA, d, 0, 0);
            pack_to(CB_TMP);
            reconfig_data_format(CB_GATHER, CB_P);
            mul_bcast_cols_init(CB_GATHER, CB_P);
            tile_regs_acquire();
            mul_tiles_bcast_cols(CB_GATHER, CB_P, 2 + d, 0, 0);
            pack_to(CB_LC);
            cb_wait_front(CB_TMP, 1);
            cb_wait_front(CB_LC, 1);
            reconfig_data_format(CB_TMP, CB_LC);
            add_init(CB_TMP, CB_LC);
            tile_regs_acquire();
            add_tiles(CB_TMP, CB_LC, 0, 0, 0);
            pack_to(cb_o);
            cb_pop_front(CB_TMP, 1);
            cb_pop_front(CB_LC, 1);
        }
        cb_pop_front(cb_o_prev, d_tiles);
        cb_pop_front(CB_ALPHA, 1);
        cb_pop_front(CB_P, 1);
        cb_pop_front(CB_GATHER, d_tiles + 2);
        last ^= 1;
    }

    // out = O / l
    const uint32_t cb_l = last ? CB_L1 : CB_L0, cb_o = last ? CB_O1 : CB_O0, cb_m = last ? CB_M1 : CB_M0;
    cb_wait_front(cb_l, 1);
    reconfig_data_format_srca(cb_l);
    copy_init(cb_l);
    tile_regs_acquire();
    copy_tile(cb_l, 0, 0);
    recip_tile_init();
    recip_tile(0);
    pack_to(CB_TMP);
    cb_pop_front(cb_l, 1);
    cb_wait_front(CB_TMP, 1);
    cb_wait_front(cb_o, d_tiles);
    reconfig_data_format(cb_o, CB_TMP);
    mul_bcast_cols_init(cb_o, CB_TMP);
    for (uint32_t d = 0; d < d_tiles; ++d) {
        tile_regs_acquire();
        mul_tiles_bcast_cols(cb_o, CB_TMP, d, 0, 0);
        pack_to(CB_OUT);
    }
    cb_pop_front(cb_o, d_tiles);
    cb_pop_front(CB_TMP, 1);
    cb_pop_front(cb_m, 1);
    cb_pop_front(CB_Q, d_tiles);
    cb_pop_front(CB_SCALE, 1);
    cb_pop_front(CB_ONES, 1);
}
