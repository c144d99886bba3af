// accept_prefix sampling, reader (NCRISC): brings this core's vocabulary slice [v_start, v_end)
// of one row into L1 at a time, when core 0 asks for it.
//
// Core 0 decides row by row (writer_accept_prefix_sampling.cpp), so which rows are needed is
// known only as the decisions fall: rows after the first rejection are never read. Each
// ReadCommand (mailbox in cb_read_cmd, counted by sem_read) names one page: a logits row, whose
// slice stays in L1 (one cb_logits page) for every round of that row, or q's row n at a
// rejection (one cb_q page), beside it for the residual. A row is read from DRAM once.
// Core 0 sends the next command only after every writer has used this one's page, so one
// mailbox slot suffices.
#include <cstdint>

#include "accept_prefix_common.hpp"
#include "api/dataflow/dataflow_api.h"

using namespace accept_prefix;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t logits_addr = get_arg_val<uint32_t>(SRT_READER_LOGITS_ADDR);
    const uint32_t draft_probs_addr = get_arg_val<uint32_t>(SRT_READER_DRAFT_PROBS_ADDR);
    const uint32_t v_start = get_arg_val<uint32_t>(SRT_READER_V_START);
    const uint32_t v_end = get_arg_val<uint32_t>(SRT_READER_V_END);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(SCT_READER_CB_LOGITS);      // [slice] logits
    constexpr uint32_t cb_q = get_compile_time_arg_val(SCT_READER_CB_Q);                // [slice] fp32
    constexpr uint32_t cb_read_cmd = get_compile_time_arg_val(SCT_READER_CB_READ_CMD);  // ReadCommand
    constexpr uint32_t sem_read = get_compile_time_arg_val(SCT_READER_SEM_READ);
    constexpr bool has_draft_probs = get_compile_time_arg_val(SCT_READER_HAS_DRAFT_PROBS) == 1;
    constexpr auto logits_args = TensorAccessorArgs<SCT_READER_LOGITS_TA>();
    constexpr auto draft_probs_args = TensorAccessorArgs<SCT_READER_DRAFT_PROBS_TA>();

    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    constexpr uint32_t elem_size = logits_format == DataFormat::Float32 ? 4 : 2;

    const auto logits = TensorAccessor(logits_args, logits_addr);
    const auto draft_probs = TensorAccessor(draft_probs_args, draft_probs_addr);
    const uint32_t count = v_end - v_start;
    volatile tt_l1_ptr uint32_t* sem = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_read));
    volatile tt_l1_ptr ReadCommand* cmd = reinterpret_cast<volatile tt_l1_ptr ReadCommand*>(get_write_ptr(cb_read_cmd));

    for (uint32_t received = 1;; ++received) {
        noc_semaphore_wait(sem, received);  // core 0's next command has landed
        const uint32_t op = cmd->op, page = cmd->page;
        if (op == READ_DONE) {
            break;
        }
        if (op == READ_ROW) {
            cb_reserve_back(cb_logits, 1);  // the writer has let go of the previous row
            noc_async_read(get_noc_addr(page, logits, v_start * elem_size), get_write_ptr(cb_logits),
                           count * elem_size);
            noc_async_read_barrier();
            cb_push_back(cb_logits, 1);
        } else if constexpr (has_draft_probs) {  // READ_Q
            cb_reserve_back(cb_q, 1);
            noc_async_read(get_noc_addr(page, draft_probs, v_start * sizeof(float)), get_write_ptr(cb_q),
                           count * sizeof(float));
            noc_async_read_barrier();
            cb_push_back(cb_q, 1);
        }
    }
}
