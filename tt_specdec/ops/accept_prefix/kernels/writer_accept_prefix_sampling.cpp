// accept_prefix sampling, writer (BRISC): the lossless speculative-sampling rule (Leviathan et
// al. 2023) with temperature, top-k and top-p, V split over cores, in integers only.
//
// The arithmetic is tt_specdec/sampling.py's fixed_params procedure (the helpers of
// accept_prefix_common.hpp): each token's weight w = 2^31 * 2^-((s_max - s) * log2(e) / temperature)
// from its logit's bits, the host's fixed-point log2(e) / temperature (a runtime arg) and three
// 256-entry tables; sums in uint64; p(v) = w(v) / z. top-k keeps every token whose key is >= the
// k-th largest key (ties kept); top-p, in order of key descending then index ascending, keeps each
// token whose weight before it sums to < ceil(top_p * z_k). Tokens are ordered by an unsigned key
// of their logit (accept_prefix_common.hpp). The data-movement RISC-Vs are RV32IM without an FPU: no
// float or double here (bench/rv32_dataflow.py finds no soft-float call; tests/emu/test_emu_rules.py).
//
// Which core does what, and why:
// - Core 0 walks the rows in order: for sequence b, rows t = 0, 1, ... until the first rejection
//   (or the bonus row k_eff[b]). For each row it has every reader bring its slice into L1, where
//   the slice stays for all of that row's rounds: each row is read from DRAM once, rows after a
//   rejection never, and the residual at a rejection reuses the row (only q's row n is read).
// - The rounds over the cores' slices (START, TOP_K, MASS, TOP_P: the row's sets and z; RESIDUAL,
//   SAMPLE: the draw) are accept_prefix_sampling.hpp's, shared with the tree's sampling writer.
//   Core 0 has w(d_t) and z from them and runs the exact accept test u * q_t(d_t) < w(d_t) / z
//   (accepts), q_t(d_t) read as one 32-byte entry (1 without draft probabilities). On the row n
//   that ends the sequence it draws from max(0, p - q_n) (recovered) or p (bonus).
// Seeded results equal the torch op's and the plain-loop reference's token for token. A row costs
// a few NoC round trips per round; rows of several sequences per round are the follow-up.
#include <cstdint>

#include "accept_prefix_common.hpp"
#include "accept_prefix_sampling.hpp"
#include "api/dataflow/dataflow_api.h"

using namespace accept_prefix;

// the compile-time constants of the rounds (accept_prefix_sampling.hpp)
struct ChainConfig {
    static constexpr uint32_t cb_logits = get_compile_time_arg_val(SCT_WRITER_CB_LOGITS);      // [slice] logits
    static constexpr uint32_t cb_q = get_compile_time_arg_val(SCT_WRITER_CB_Q);                // [slice] fp32
    static constexpr uint32_t cb_read_cmd = get_compile_time_arg_val(SCT_WRITER_CB_READ_CMD);  // ReadCommand x 2
    static constexpr uint32_t cb_round = get_compile_time_arg_val(SCT_WRITER_CB_ROUND);        // RoundCommand x 2
    static constexpr uint32_t cb_partial = get_compile_time_arg_val(SCT_WRITER_CB_PARTIAL);    // RoundPartial
    static constexpr uint32_t cb_gather = get_compile_time_arg_val(SCT_WRITER_CB_GATHER);  // [num_cores] RoundPartial
    static constexpr uint32_t vocab = get_compile_time_arg_val(SCT_WRITER_VOCAB);          // V
    static constexpr uint32_t num_cores = get_compile_time_arg_val(SCT_WRITER_NUM_CORES);
    static constexpr uint32_t slice = get_compile_time_arg_val(SCT_WRITER_SLICE);
    static constexpr bool has_draft_probs = get_compile_time_arg_val(SCT_WRITER_HAS_DRAFT_PROBS) == 1;
    static constexpr uint32_t sem_partials = get_compile_time_arg_val(SCT_WRITER_SEM_PARTIALS);
    static constexpr uint32_t sem_round = get_compile_time_arg_val(SCT_WRITER_SEM_ROUND);
    static constexpr uint32_t sem_read = get_compile_time_arg_val(SCT_WRITER_SEM_READ);
    static constexpr bool keeps_residual = false;  // a chain draws right after its one rejection
};

void kernel_main() {
    // Compile-time args
    // -----------------
    constexpr uint32_t cb_drafts = get_compile_time_arg_val(SCT_WRITER_CB_DRAFTS);
    constexpr uint32_t cb_out = get_compile_time_arg_val(SCT_WRITER_CB_OUT);
    constexpr uint32_t batch = get_compile_time_arg_val(SCT_WRITER_BATCH);  // B
    constexpr uint32_t rows = get_compile_time_arg_val(SCT_WRITER_ROWS);    // k + 1
    constexpr bool has_draft_probs = ChainConfig::has_draft_probs;
    constexpr auto drafts_args = TensorAccessorArgs<SCT_WRITER_DRAFTS_TA>();
    constexpr auto draft_probs_args = TensorAccessorArgs<SCT_WRITER_DRAFT_PROBS_TA>();
    constexpr auto seeds_args = TensorAccessorArgs<SCT_WRITER_SEEDS_TA>();
    constexpr auto num_draft_args = TensorAccessorArgs<SCT_WRITER_NUM_DRAFT_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<SCT_WRITER_NUM_ACCEPTED_TA>();
    constexpr auto output_args = TensorAccessorArgs<SCT_WRITER_OUTPUT_TA>();
    static_assert(rows >= 2 && rows <= MAX_ROWS, "k + 1 target rows must fit one 32-row tile");
    constexpr uint32_t k = rows - 1;

    // Runtime args
    // ------------
    SamplingRounds<ChainConfig> rounds(
        get_arg_val<uint32_t>(SRT_WRITER_V_START), get_arg_val<uint32_t>(SRT_WRITER_V_END),
        get_arg_val<uint32_t>(SRT_WRITER_CORE_ID), get_arg_val<uint32_t>(SRT_WRITER_REDUCE_NOC_X),
        get_arg_val<uint32_t>(SRT_WRITER_REDUCE_NOC_Y), get_arg_val<uint32_t>(SRT_WRITER_EXP_SCALE),
        static_cast<int32_t>(get_arg_val<uint32_t>(SRT_WRITER_EXP_SHIFT)), get_arg_val<uint32_t>(SRT_WRITER_TOP_K),
        get_arg_val<uint32_t>(SRT_WRITER_TOP_P_FIXED), SRT_WRITER_NOC_X0);
    if (get_arg_val<uint32_t>(SRT_WRITER_CORE_ID) != 0) {
        rounds.serve();
        return;
    }

    // ---- core 0: the decisions -----------------------------------------------------------------
    const uint32_t scratch_l1 = get_write_ptr(cb_drafts);  // 32 bytes: one DRAM entry
    // each slot takes a DRAM read at its start: DRAM_ALIGNMENT apart ((l1 & 31) == (dram & 31) on Wormhole)
    const uint32_t drafts_l1 = scratch_l1 + align_up(32, DRAM_ALIGNMENT);
    const uint32_t seeds_l1 = drafts_l1 + align_up(k * sizeof(int32_t), DRAM_ALIGNMENT);
    const uint32_t num_draft_l1 = seeds_l1 + align_up(batch * sizeof(uint32_t), DRAM_ALIGNMENT);
    volatile tt_l1_ptr int32_t* draft = reinterpret_cast<volatile tt_l1_ptr int32_t*>(drafts_l1);
    volatile tt_l1_ptr uint32_t* seeds = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(seeds_l1);
    volatile tt_l1_ptr int32_t* k_eff = reinterpret_cast<volatile tt_l1_ptr int32_t*>(num_draft_l1);
    const auto drafts =
        TensorAccessor(drafts_args, get_arg_val<uint32_t>(SRT_WRITER_DRAFTS_ADDR), k * sizeof(int32_t));
    const auto draft_probs = TensorAccessor(draft_probs_args, get_arg_val<uint32_t>(SRT_WRITER_DRAFT_PROBS_ADDR));
    const auto seeds_acc =
        TensorAccessor(seeds_args, get_arg_val<uint32_t>(SRT_WRITER_SEEDS_ADDR), batch * sizeof(uint32_t));
    const auto num_draft =
        TensorAccessor(num_draft_args, get_arg_val<uint32_t>(SRT_WRITER_NUM_DRAFT_ADDR), batch * sizeof(int32_t));
    const auto num_accepted = TensorAccessor(
        num_accepted_args, get_arg_val<uint32_t>(SRT_WRITER_NUM_ACCEPTED_ADDR), batch * sizeof(int32_t));
    const auto output =
        TensorAccessor(output_args, get_arg_val<uint32_t>(SRT_WRITER_OUTPUT_ADDR), rows * sizeof(int32_t));
    noc_async_read(get_noc_addr(0, seeds_acc), seeds_l1, batch * sizeof(uint32_t));
    noc_async_read(get_noc_addr(0, num_draft), num_draft_l1, batch * sizeof(int32_t));
    noc_async_read_barrier();

    const uint32_t out_l1 = get_write_ptr(cb_out);
    const uint32_t accepted_l1 = out_l1 + (((rows > batch ? rows : batch) * sizeof(int32_t) + 15) / 16 * 16);
    volatile tt_l1_ptr int32_t* out = reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1);
    volatile tt_l1_ptr int32_t* accepted = reinterpret_cast<volatile tt_l1_ptr int32_t*>(accepted_l1);
    for (uint32_t b = 0; b < batch; ++b) {
        const int32_t k_b = clamp_num_draft(k_eff[b], k);
        for (uint32_t t = 0; t < rows; ++t) {
            out[t] = PLACEHOLDER;
        }
        int32_t n = PLACEHOLDER;  // a skipped row emits nothing
        if (k_b >= 0) {
            if (k_b > 0) {
                noc_async_read(get_noc_addr(b, drafts), drafts_l1, k * sizeof(int32_t));
                noc_async_read_barrier();
            }
            for (n = 0;; ++n) {
                const uint32_t t = static_cast<uint32_t>(n);
                if (n == k_b) {  // every draft accepted: the bonus token from p itself
                    rounds.decide_row(b * rows + t, NO_TOKEN);
                    out[t] = static_cast<int32_t>(
                        rounds.sample(RESIDUAL_P, 0, uniform_bits(seeds[b], STREAM_SAMPLE, 0)));
                    break;
                }
                const uint32_t d = static_cast<uint32_t>(draft[t]);
                const uint32_t w_d = rounds.decide_row(b * rows + t, d);
                const uint32_t q_d = q_of_draft<has_draft_probs>(draft_probs, b * k + t, d, scratch_l1);
                if (!accepts(uniform_bits(seeds[b], STREAM_ACCEPT, t), q_d, rounds.row.z, w_d)) {  // u * q < p, exactly
                    out[t] = static_cast<int32_t>(rounds.sample(has_draft_probs ? RESIDUAL_Q : RESIDUAL_ONE_HOT,
                                                                b * k + t, uniform_bits(seeds[b], STREAM_SAMPLE, 0)));
                    break;
                }
                out[t] = draft[t];
            }
        }
        accepted[b] = n;
        noc_async_write(out_l1, get_noc_addr(b, output), rows * sizeof(int32_t));
        noc_async_write_barrier();  // the staging row is reused for the next sequence
    }
    noc_async_write(accepted_l1, get_noc_addr(0, num_accepted), batch * sizeof(int32_t));
    noc_async_write_barrier();

    rounds.finish();
}
