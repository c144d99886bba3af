// accept_prefix, writer (BRISC): argmax of this core's slice of every row, then on core 0
// the cross-core reduction, the draft comparison and the outputs.
//
// Which core does what: every core scans its vocabulary slice [v_start, v_end) of the rows
// its reader streams and sends one (value, index) per row to core 0's gather CB, then
// increments core 0's semaphore. Core 0 waits for all num_cores partials, reduces them in
// core order (a later core wins only with a strictly greater value, so ties keep the
// lowest index, like torch.argmax), and per sequence b compares the target tokens with
// the drafts: n = longest prefix of t < k_eff[b] with target[t] == draft[t]; output =
// drafts[0..n), target[n], then -1; num_accepted[b] = n (-1 for a skipped row). The
// reduction runs on one core because it touches B * (k+1) * num_cores entries: nothing
// next to the V-sized scans.
#include <cstdint>

#include "accept_prefix_common.hpp"

using namespace accept_prefix;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t v_start = get_arg_val<uint32_t>(RT_WRITER_V_START);
    const uint32_t v_end = get_arg_val<uint32_t>(RT_WRITER_V_END);
    const uint32_t core_id = get_arg_val<uint32_t>(RT_WRITER_CORE_ID);
    const uint32_t reduce_noc_x = get_arg_val<uint32_t>(RT_WRITER_REDUCE_NOC_X);
    const uint32_t reduce_noc_y = get_arg_val<uint32_t>(RT_WRITER_REDUCE_NOC_Y);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(CT_WRITER_CB_LOGITS);        // [chunk] per page
    constexpr uint32_t cb_num_draft = get_compile_time_arg_val(CT_WRITER_CB_NUM_DRAFT);  // [B] int32
    constexpr uint32_t cb_partial = get_compile_time_arg_val(CT_WRITER_CB_PARTIAL);      // [B * (k+1)] Partial
    constexpr uint32_t cb_gather = get_compile_time_arg_val(CT_WRITER_CB_GATHER);  // [num_cores][B * (k+1)] Partial
    constexpr uint32_t cb_drafts = get_compile_time_arg_val(CT_WRITER_CB_DRAFTS);  // [k] int32
    constexpr uint32_t cb_out = get_compile_time_arg_val(CT_WRITER_CB_OUT);  // 2 pages: [k+1] int32, [B] int32
    constexpr uint32_t chunk = get_compile_time_arg_val(CT_WRITER_CHUNK);
    constexpr uint32_t batch = get_compile_time_arg_val(CT_WRITER_BATCH);  // B
    constexpr uint32_t rows = get_compile_time_arg_val(CT_WRITER_ROWS);    // k + 1
    constexpr uint32_t num_cores = get_compile_time_arg_val(CT_WRITER_NUM_CORES);
    constexpr uint32_t sem_partials = get_compile_time_arg_val(CT_WRITER_SEM_PARTIALS);
    constexpr auto drafts_args = TensorAccessorArgs<CT_WRITER_DRAFTS_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<CT_WRITER_NUM_ACCEPTED_TA>();
    constexpr auto output_args = TensorAccessorArgs<CT_WRITER_OUTPUT_TA>();

    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    static_assert(chunk % 32 == 0, "chunk must be a multiple of 32 entries");
    static_assert(rows >= 2 && rows <= MAX_ROWS, "k + 1 target rows must fit one 32-row tile");
    static_assert(num_cores >= 1, "at least one core");
    constexpr uint32_t k = rows - 1;
    constexpr uint32_t partial_bytes = partials_bytes(batch * rows);  // one gather page

    // num_draft [B] from this core's reader: which rows arrive, in which order
    cb_wait_front(cb_num_draft, 1);
    volatile tt_l1_ptr int32_t* k_eff = reinterpret_cast<volatile tt_l1_ptr int32_t*>(get_read_ptr(cb_num_draft));

    // 1. running argmax of this core's slice, per row that arrives
    const uint32_t partial_l1 = get_write_ptr(cb_partial);
    volatile tt_l1_ptr Partial* partial = reinterpret_cast<volatile tt_l1_ptr Partial*>(partial_l1);
    for (uint32_t b = 0; b < batch; ++b) {
        const int32_t k_b = clamp_num_draft(k_eff[b], k);  // as the reader clamped it
        for (uint32_t t = 0; t < rows; ++t) {
            // a row the reader skips (past k_b) keeps key 0: core 0 never reads it
            const Partial best = static_cast<int32_t>(t) <= k_b ? argmax_row_slice<cb_logits, chunk>(v_start, v_end)
                                                                : Partial{0, v_start};
            partial[b * rows + t].key = best.key;
            partial[b * rows + t].index = best.index;
        }
    }

    // 2. send the partials to slot core_id of core 0's gather CB, then count them in
    const uint32_t gather_l1 = get_write_ptr(cb_gather);  // same L1 address on every core
    const uint32_t sem_l1 = get_semaphore(sem_partials);
    send_partials(partial_l1, gather_l1, partial_bytes, core_id, reduce_noc_x, reduce_noc_y, sem_l1);

    if (core_id != 0) {
        cb_pop_front(cb_num_draft, 1);
        return;
    }

    // 3. core 0: reduce, compare with the drafts, write num_accepted and output_tokens
    const auto drafts = TensorAccessor(drafts_args, get_arg_val<uint32_t>(RT_WRITER_DRAFTS_ADDR), k * sizeof(int32_t));
    const auto num_accepted = TensorAccessor(
        num_accepted_args, get_arg_val<uint32_t>(RT_WRITER_NUM_ACCEPTED_ADDR), batch * sizeof(int32_t));
    const auto output = TensorAccessor(output_args, get_arg_val<uint32_t>(RT_WRITER_OUTPUT_ADDR), rows * sizeof(int32_t));

    noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_l1), num_cores);  // all partials in

    const uint32_t drafts_l1 = get_write_ptr(cb_drafts);
    volatile tt_l1_ptr int32_t* draft = reinterpret_cast<volatile tt_l1_ptr int32_t*>(drafts_l1);
    const uint32_t out_l1 = get_write_ptr(cb_out);
    const uint32_t accepted_l1 = out_l1 + (((rows > batch ? rows : batch) * sizeof(int32_t) + 15) / 16 * 16);
    volatile tt_l1_ptr int32_t* out = reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1);
    volatile tt_l1_ptr int32_t* accepted = reinterpret_cast<volatile tt_l1_ptr int32_t*>(accepted_l1);

    // argmax of row (b, t) over all cores
    auto target = [&](uint32_t b, uint32_t t) {
        return gathered_argmax<num_cores>(gather_l1, partial_bytes, b * rows + t);
    };

    for (uint32_t b = 0; b < batch; ++b) {
        const int32_t k_b = clamp_num_draft(k_eff[b], k);
        int32_t n = PLACEHOLDER;
        for (uint32_t t = 0; t < rows; ++t) {
            out[t] = PLACEHOLDER;
        }
        if (k_b >= 0) {
            if (k_b > 0) {
                noc_async_read(get_noc_addr(b, drafts), drafts_l1, k * sizeof(int32_t));
                noc_async_read_barrier();
            }
            n = 0;
            int32_t token = target(b, 0);
            while (n < k_b && token == draft[n]) {  // accepted: the target agrees with draft n
                out[n] = token;
                ++n;
                token = target(b, n);
            }
            out[n] = token;  // recovered (n < k_b) or bonus (n == k_b)
        }
        accepted[b] = n;
        noc_async_write(out_l1, get_noc_addr(b, output), rows * sizeof(int32_t));
        noc_async_write_barrier();  // the staging row is reused for the next sequence
    }
    noc_async_write(accepted_l1, get_noc_addr(0, num_accepted), batch * sizeof(int32_t));
    noc_async_write_barrier();
    cb_pop_front(cb_num_draft, 1);
}
