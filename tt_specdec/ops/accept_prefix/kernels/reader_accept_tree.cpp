// accept_tree (greedy), reader (NCRISC): streams this core's vocabulary slice of every node row of
// every sequence into cb_logits, one chunk per page, double-buffered: the writer needs the argmax of
// each node the walk may reach, and which it reaches is known only once they are all reduced.
//
// logits [B, T, V] row-major (bf16 or fp32): page = one node row of V; core c reads [v_start, v_end)
// of each row (accept_prefix_common.hpp, read_row_slice), pages in order 0 .. B * T - 1.
#include <cstdint>

#include "accept_prefix_common.hpp"

using namespace accept_prefix;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t logits_addr = get_arg_val<uint32_t>(TRT_READER_LOGITS_ADDR);
    const uint32_t v_start = get_arg_val<uint32_t>(TRT_READER_V_START);
    const uint32_t v_end = get_arg_val<uint32_t>(TRT_READER_V_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(TCT_READER_CB_LOGITS);  // [chunk] logits per page
    constexpr uint32_t chunk = get_compile_time_arg_val(TCT_READER_CHUNK);  // vocabulary entries per page
    constexpr uint32_t batch = get_compile_time_arg_val(TCT_READER_BATCH);  // B
    constexpr uint32_t nodes = get_compile_time_arg_val(TCT_READER_NODES);  // T
    constexpr auto logits_args = TensorAccessorArgs<TCT_READER_LOGITS_TA>();

    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    constexpr uint32_t elem_size = logits_format == DataFormat::Float32 ? 4 : 2;
    static_assert(chunk % 32 == 0, "chunk must be a multiple of 32 entries: slices stay DRAM-aligned");
    static_assert(nodes >= 1 && nodes <= MAX_ROWS, "T tree rows must fit one 32-row tile");
    static_assert(batch >= 1, "empty batch");

    const auto logits = TensorAccessor(logits_args, logits_addr);
    for (uint32_t page = 0; page < batch * nodes; ++page) {
        read_row_slice<cb_logits, chunk, elem_size>(logits, page, v_start, v_end);
    }
}
