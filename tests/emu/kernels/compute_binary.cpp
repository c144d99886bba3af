// Test kernel: out[i] = OP(a[i], b[i]) per tile, OP chosen by compile-time arg `op`:
// 0 add, 1 exp(a - b[:, 0]) (bcast cols), 2 mul, 3 a @ b^T (matmul, transposed b), 4 1 / a.
#include "api/compute/bcast.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/eltwise_unary/exp.h"
#include "api/compute/eltwise_unary/recip.h"
#include "api/compute/matmul.h"
#include "api/compute/tile_move_copy.h"

void kernel_main() {
    const uint32_t num_tiles = get_arg_val<uint32_t>(0);

    constexpr uint32_t cb_a = get_compile_time_arg_val(0);
    constexpr uint32_t cb_b = get_compile_time_arg_val(1);
    constexpr uint32_t cb_out = get_compile_time_arg_val(2);
    constexpr uint32_t op = get_compile_time_arg_val(3);
    constexpr uint32_t idst = get_compile_time_arg_val(4);  // dst slot used for the result

    compute_kernel_hw_startup(cb_a, cb_b, cb_out);
    if constexpr (op == 0) {
        add_init(cb_a, cb_b);
    } else if constexpr (op == 1) {
        sub_bcast_cols_init(cb_a, cb_b);
        exp_tile_init();
    } else if constexpr (op == 2) {
        mul_init(cb_a, cb_b);
    } else if constexpr (op == 3) {
        matmul_init(cb_a, cb_b, 1);
    } else {
        copy_init(cb_a);
        recip_tile_init();
    }
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_wait_front(cb_a, 1);
        cb_wait_front(cb_b, 1);
        tile_regs_acquire();
        if constexpr (op == 0) {
            add_tiles(cb_a, cb_b, 0, 0, idst);
        } else if constexpr (op == 1) {
            sub_tiles_bcast_cols(cb_a, cb_b, 0, 0, idst);
            exp_tile(idst);
        } else if constexpr (op == 2) {
            mul_tiles(cb_a, cb_b, 0, 0, idst);
        } else if constexpr (op == 3) {
            matmul_tiles(cb_a, cb_b, 0, 0, idst);
        } else {
            copy_tile(cb_a, 0, idst);
            recip_tile(idst);
        }
        tile_regs_commit();
        cb_pop_front(cb_a, 1);
        cb_pop_front(cb_b, 1);
        cb_reserve_back(cb_out, 1);
        tile_regs_wait();
        pack_tile(idst, cb_out);
        tile_regs_release();
        cb_push_back(cb_out, 1);
    }
}
