// BROKEN on purpose: a matmul whose operands have different formats (a bf16, b fp32), set up with
// compute_kernel_hw_startup's Regular order (in0 -> SrcA). Matmul unpacks in1 into SrcA and in0 into
// SrcB (api/compute/matmul.h: state_configure(in1_cb_id, in0_cb_id)): the formats are swapped on a card.
// compute_matmul_reverse.cpp (tests/emu/kernels/) is the same with SrcOrder::Reverse.
#include "api/compute/compute_kernel_api.h"
#include "api/compute/matmul.h"

void kernel_main() {
    const uint32_t num_tiles = get_arg_val<uint32_t>(0);
    constexpr uint32_t cb_a = get_compile_time_arg_val(0);
    constexpr uint32_t cb_b = get_compile_time_arg_val(1);
    constexpr uint32_t cb_out = get_compile_time_arg_val(2);
    compute_kernel_hw_startup(cb_a, cb_b, cb_out);
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
