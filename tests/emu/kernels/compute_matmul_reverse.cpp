// Test kernel: a @ b^T per tile with a and b of different formats, set up with SrcOrder::Reverse
// (matmul unpacks in1 into SrcA, in0 into SrcB): what compute_matmul_regular_order should have done.
#include "api/compute/compute_kernel_api.h"
#include "api/compute/matmul.h"

void kernel_main() {
    const uint32_t num_tiles = get_arg_val<uint32_t>(0);
    constexpr uint32_t cb_a = get_compile_time_arg_val(0);
    constexpr uint32_t cb_b = get_compile_time_arg_val(1);
    constexpr uint32_t cb_out = get_compile_time_arg_val(2);
    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_a, cb_b, cb_out);  // matmul: in1 -> SrcA
    matmul_init(cb_a, cb_b, 1);
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_wait_front(cb_a, 1);
        cb_wait_front(cb_b, 1);
        tile_regs_acquire();
        matmul_tiles(cb_a, cb_b, 0, 0, 0);
        tile_regs_commit();
        cb_pop_front(cb_a, 1);
        cb_pop_front(cb_b, 1);
        cb_reserve_back(cb_out, 1);
        tile_regs_wait();
        pack_tile(0, cb_out);
        tile_regs_release();
        cb_push_back(cb_out, 1);
    }
}
