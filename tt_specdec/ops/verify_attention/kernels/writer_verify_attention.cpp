// verify_attention, writer (BRISC): the output tile row [32 rows = (t, g), D] of this
// (sequence, KV head) to DRAM, on its combine core (split 0). A worker split instead sends its
// partial [m, l, O_0 .. O_Dt-1] (fp32 tiles) to slot j - 1 of the combine core's cb_gather and
// increments the combine core's semaphore; an idle split writes nothing.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "verify_attention_common.hpp"

using namespace verify_attention;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t out_addr = get_arg_val<uint32_t>(RT_WRITER_OUT_ADDR);
    const uint32_t bh = get_arg_val<uint32_t>(RT_WRITER_BH);
    const uint32_t split = get_arg_val<uint32_t>(RT_WRITER_SPLIT);
    const uint32_t combine_noc_x = get_arg_val<uint32_t>(RT_WRITER_COMBINE_NOC_X);
    const uint32_t combine_noc_y = get_arg_val<uint32_t>(RT_WRITER_COMBINE_NOC_Y);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_out = get_compile_time_arg_val(CT_WRITER_CB_OUT);  // [Dt] output tiles
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_WRITER_D_TILES);
    constexpr auto out_args = TensorAccessorArgs<CT_WRITER_OUT_TA>();
    constexpr uint32_t sem_partials = get_compile_time_arg_val(CT_WRITER_SEM_PARTIALS);

    // this split's chunks and role, from the reader: [shown, begin, end, merges]
    cb_wait_front(CB_RANGE, 1);
    volatile tt_l1_ptr uint32_t* range = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_read_ptr(CB_RANGE));
    const bool idle = range[1] == range[2], worker = range[3] == WORKER;
    cb_pop_front(CB_RANGE, 1);
    if (idle) {
        return;
    }
    if (worker) {
        const uint32_t part_bytes = (d_tiles + 2) * get_tile_size(CB_PART);
        const uint32_t slot_l1 = get_write_ptr(CB_GATHER) + (split - 1) * part_bytes;  // same address on every core
        cb_wait_front(CB_PART, d_tiles + 2);
        noc_async_write(get_read_ptr(CB_PART), get_noc_addr(combine_noc_x, combine_noc_y, slot_l1), part_bytes);
        noc_async_write_barrier();  // data lands before the count
        noc_semaphore_inc(get_noc_addr(combine_noc_x, combine_noc_y, get_semaphore(sem_partials)), 1);
        noc_async_atomic_barrier();  // the increment is acked before the kernel exits (firmware asserts it)
        cb_pop_front(CB_PART, d_tiles + 2);
        return;
    }

    const auto out = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));
    for (uint32_t d = 0; d < d_tiles; ++d) {
        cb_wait_front(cb_out, 1);
        noc_async_write(get_read_ptr(cb_out), get_noc_addr(bh * d_tiles + d, out), get_tile_size(cb_out));
        noc_async_write_barrier();
        cb_pop_front(cb_out, 1);
    }
}
