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
// - A round: core 0 writes a RoundCommand to every core's mailbox; every core (core 0 too) scans
//   its slice and sends a RoundPartial back; core 0 combines them and decides the next round.
//   Only V-sized work is spread over cores; combining num_cores partials is small.
//   START: max key (the softmax max), the draft's key and tie rank (by its owner), and with top-k
//          a count histogram of the key's top digit.
//   TOP_K: with the digits found so far as prefix, a count histogram of the next digit: radix
//          select of the k-th largest key, 2 rounds in all for bf16 keys, 4 for fp32.
//   MASS:  sum of w over the top-k set (z_k), and with top-p a mass histogram of the top digit;
//          TOP_P rounds refine it to the nucleus key: the key whose weight above it is < the
//          target and with it >= the target. Tokens sharing that key are kept in index order
//          while the sum stays < the target: core 0 gives each core a quota of them, in core order.
//   Core 0 then has w(d_t) and z and runs the exact accept test u * q_t(d_t) < w(d_t) / z
//   (accepts), q_t(d_t) read as one 32-byte entry (1 without draft probabilities). On the row n
//   that ends the sequence:
//   RESIDUAL: every core's sums of max(0, w - floor(q * z)) and of w (q: its slice of q's row n,
//          one-hot on the draft, or 0 on the bonus row); core 0 finds the slice where
//          floor(u * total / 2^24) falls.
//   SAMPLE: that core scans its slice for the first token whose running sum exceeds it, as
//          torch_impl.sample_fixed.
// Seeded results equal the torch op's and the plain-loop reference's token for token. A row costs
// a few NoC round trips per round; rows of several sequences per round are the follow-up.
#include <cstdint>

#include "accept_prefix_common.hpp"
#include "api/dataflow/dataflow_api.h"

using namespace accept_prefix;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t v_start = get_arg_val<uint32_t>(SRT_WRITER_V_START);
    const uint32_t v_end = get_arg_val<uint32_t>(SRT_WRITER_V_END);
    const uint32_t core_id = get_arg_val<uint32_t>(SRT_WRITER_CORE_ID);
    const uint32_t reduce_noc_x = get_arg_val<uint32_t>(SRT_WRITER_REDUCE_NOC_X);
    const uint32_t reduce_noc_y = get_arg_val<uint32_t>(SRT_WRITER_REDUCE_NOC_Y);
    const uint32_t exp_scale = get_arg_val<uint32_t>(SRT_WRITER_EXP_SCALE);
    const int32_t exp_shift = static_cast<int32_t>(get_arg_val<uint32_t>(SRT_WRITER_EXP_SHIFT));
    const uint32_t top_k = get_arg_val<uint32_t>(SRT_WRITER_TOP_K);
    const uint32_t top_p_fixed = get_arg_val<uint32_t>(SRT_WRITER_TOP_P_FIXED);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(SCT_WRITER_CB_LOGITS);      // [slice] logits
    constexpr uint32_t cb_q = get_compile_time_arg_val(SCT_WRITER_CB_Q);                // [slice] fp32
    constexpr uint32_t cb_read_cmd = get_compile_time_arg_val(SCT_WRITER_CB_READ_CMD);  // ReadCommand x 2
    constexpr uint32_t cb_round = get_compile_time_arg_val(SCT_WRITER_CB_ROUND);        // RoundCommand x 2
    constexpr uint32_t cb_partial = get_compile_time_arg_val(SCT_WRITER_CB_PARTIAL);    // RoundPartial
    constexpr uint32_t cb_gather = get_compile_time_arg_val(SCT_WRITER_CB_GATHER);      // [num_cores] RoundPartial
    constexpr uint32_t cb_drafts = get_compile_time_arg_val(SCT_WRITER_CB_DRAFTS);
    constexpr uint32_t cb_out = get_compile_time_arg_val(SCT_WRITER_CB_OUT);
    constexpr uint32_t batch = get_compile_time_arg_val(SCT_WRITER_BATCH);  // B
    constexpr uint32_t rows = get_compile_time_arg_val(SCT_WRITER_ROWS);    // k + 1
    constexpr uint32_t vocab = get_compile_time_arg_val(SCT_WRITER_VOCAB);  // V
    constexpr uint32_t num_cores = get_compile_time_arg_val(SCT_WRITER_NUM_CORES);
    constexpr uint32_t slice = get_compile_time_arg_val(SCT_WRITER_SLICE);
    constexpr bool has_draft_probs = get_compile_time_arg_val(SCT_WRITER_HAS_DRAFT_PROBS) == 1;
    constexpr uint32_t sem_partials = get_compile_time_arg_val(SCT_WRITER_SEM_PARTIALS);
    constexpr uint32_t sem_round = get_compile_time_arg_val(SCT_WRITER_SEM_ROUND);
    constexpr uint32_t sem_read = get_compile_time_arg_val(SCT_WRITER_SEM_READ);
    constexpr auto logits_args = TensorAccessorArgs<SCT_WRITER_LOGITS_TA>();
    constexpr auto drafts_args = TensorAccessorArgs<SCT_WRITER_DRAFTS_TA>();
    constexpr auto draft_probs_args = TensorAccessorArgs<SCT_WRITER_DRAFT_PROBS_TA>();
    constexpr auto seeds_args = TensorAccessorArgs<SCT_WRITER_SEEDS_TA>();
    constexpr auto num_draft_args = TensorAccessorArgs<SCT_WRITER_NUM_DRAFT_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<SCT_WRITER_NUM_ACCEPTED_TA>();
    constexpr auto output_args = TensorAccessorArgs<SCT_WRITER_OUTPUT_TA>();

    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    constexpr uint32_t elem_size = logits_format == DataFormat::Float32 ? 4 : 2;
    constexpr uint32_t key_bits = logits_format == DataFormat::Float32 ? 32 : 16;
    constexpr uint32_t top_shift = key_bits - RADIX_BITS;  // the most significant digit
    static_assert(slice % 32 == 0, "slices are whole 32-entry groups (DRAM-aligned offsets)");
    static_assert(rows >= 2 && rows <= MAX_ROWS, "k + 1 target rows must fit one 32-row tile");
    static_assert(num_cores >= 1 && num_cores <= MAX_SAMPLING_CORES && (num_cores - 1) * slice < vocab &&
                      num_cores * slice >= vocab,
                  "num_cores <= MAX_SAMPLING_CORES slices of `slice` entries cover V, none empty");
    constexpr uint32_t k = rows - 1;
    const bool use_top_k = top_k > 0 && top_k < vocab;
    const bool use_top_p = top_p_fixed != 0;
    const uint32_t count = v_end - v_start;

    // L1: mailboxes (same address on every core), then core 0's staging copies behind them
    const uint32_t read_cmd_l1 = get_write_ptr(cb_read_cmd);
    const uint32_t read_staging_l1 = read_cmd_l1 + READ_COMMAND_BYTES;
    const uint32_t round_l1 = get_write_ptr(cb_round);
    const uint32_t round_staging_l1 = round_l1 + ROUND_COMMAND_BYTES;
    const uint32_t partial_l1 = get_write_ptr(cb_partial);
    const uint32_t gather_l1 = get_write_ptr(cb_gather);
    RoundPartial* mine = reinterpret_cast<RoundPartial*>(partial_l1);
    volatile tt_l1_ptr RoundPartial* gathered = reinterpret_cast<volatile tt_l1_ptr RoundPartial*>(gather_l1);
    volatile tt_l1_ptr uint32_t* sem_round_ptr =
        reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(sem_round));
    const uint32_t sem_partials_l1 = get_semaphore(sem_partials);
    const uint32_t sem_read_l1 = get_semaphore(sem_read);

    // key of entry i of an L1 slice; the fp32 bits of a key's logit (bf16 widened exactly)
    auto key_at = [](uint32_t l1, uint32_t i) -> uint32_t {
        if constexpr (logits_format == DataFormat::Float16_b) {
            return bf16_key(reinterpret_cast<volatile tt_l1_ptr uint16_t*>(l1)[i]);
        } else {
            return fp32_key(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(l1)[i]);
        }
    };
    auto logit_bits = [](uint32_t key) -> uint32_t {
        if constexpr (logits_format == DataFormat::Float16_b) {
            return bf16_key_bits(key) << 16;
        } else {
            return fp32_key_bits(key);
        }
    };
    // w of a token by its key, below the row's largest key
    auto weight = [&](uint32_t key, uint32_t max_key) -> uint32_t {
        return fixed_weight(logit_bits(key), logit_bits(max_key), exp_scale, exp_shift);
    };
    auto in_prefix = [](uint32_t key, uint32_t shift, uint32_t prefix) -> bool {
        return shift + RADIX_BITS >= key_bits || (key >> (shift + RADIX_BITS)) == (prefix >> (shift + RADIX_BITS));
    };

    // ---- every core: one round of work on the row in L1 ----------------------------------------
    bool holding_row = false, holding_q = false;
    auto release = [&]() {
        if (holding_row) {
            cb_pop_front(cb_logits, 1);  // the reader may bring the next row
            holding_row = false;
        }
        if (holding_q) {
            cb_pop_front(cb_q, 1);
            holding_q = false;
        }
    };
    // returns false on ROUND_DONE
    auto work = [&]() -> bool {
        RoundCommand cmd;
        __builtin_memcpy(&cmd, reinterpret_cast<const void*>(round_l1), sizeof cmd);
        if (cmd.op == ROUND_DONE) {
            release();
            return false;
        }
        if (cmd.op == ROUND_START) {
            release();
            cb_wait_front(cb_logits, 1);  // this core's slice of the row
            holding_row = true;
        }
        if (cmd.op == ROUND_RESIDUAL && cmd.residual == RESIDUAL_Q && !holding_q) {
            cb_wait_front(cb_q, 1);  // q's row n beside it
            holding_q = true;
        }
        const uint32_t row_l1 = get_read_ptr(cb_logits);
        const bool binned = cmd.histogram != HIST_NONE;
        if (binned) {
            for (uint32_t j = 0; j < RADIX_BINS; ++j) {
                mine->bins[j].count = 0;
                mine->bins[j].mass = 0;
            }
        }
        // a token goes to its digit's bin when it is in the top-k set and under the prefix
        auto bin = [&](uint32_t key, uint32_t w) {
            if (binned && key >= cmd.kth_key && in_prefix(key, cmd.shift, cmd.prefix)) {
                Bin& b = mine->bins[(key >> cmd.shift) & (RADIX_BINS - 1)];
                b.count += 1;
                b.mass += w;
            }
        };
        // p's weight of entry i and its residual weight, in index order (ties: nucleus-key tokens seen so far)
        const uint32_t quota = cmd.tie_quota[core_id];
        auto weights = [&](uint32_t i, uint32_t& ties, uint32_t& p, uint32_t& r) {
            const uint32_t key = key_at(row_l1, i);
            bool kept = key >= cmd.kth_key && key >= cmd.nucleus_key;
            if (kept && key == cmd.nucleus_key) {
                kept = ties++ < quota;
            }
            p = kept ? weight(key, cmd.max_key) : 0;
            r = p;
            if (cmd.residual == RESIDUAL_Q && p != 0) {  // p == 0: r is 0 whatever q (outside top-k / top-p: most tokens)
                if constexpr (has_draft_probs) {
                    const uint64_t qz = q_times_z(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_read_ptr(cb_q))[i],
                                                  cmd.z);
                    r = p > qz ? p - static_cast<uint32_t>(qz) : 0;
                }
            } else if (cmd.residual == RESIDUAL_ONE_HOT && v_start + i == cmd.draft) {
                r = 0;  // q = 1 at the draft: floor(q * z) = z >= p
            }
        };

        mine->mass = 0;
        mine->p_mass = 0;
        if (cmd.op == ROUND_START) {
            uint32_t max_key = 0;
            for (uint32_t i = 0; i < count; ++i) {
                const uint32_t key = key_at(row_l1, i);
                max_key = key > max_key ? key : max_key;
                bin(key, 0);
            }
            mine->max_key = max_key;
            if (cmd.draft != NO_TOKEN && cmd.draft >= v_start && cmd.draft < v_end) {
                const uint32_t d = cmd.draft - v_start;
                const uint32_t draft_key = key_at(row_l1, d);
                uint32_t rank = 0;  // its place among equal logits, for a tie at the nucleus key
                for (uint32_t i = 0; i < d; ++i) {
                    rank += key_at(row_l1, i) == draft_key ? 1 : 0;
                }
                mine->draft_key = draft_key;
                mine->draft_rank = rank;
            }
        } else if (cmd.op == ROUND_TOP_K) {
            for (uint32_t i = 0; i < count; ++i) {
                bin(key_at(row_l1, i), 0);
            }
        } else if (cmd.op == ROUND_MASS || cmd.op == ROUND_TOP_P) {
            const bool total = cmd.op == ROUND_MASS;
            for (uint32_t i = 0; i < count; ++i) {
                const uint32_t key = key_at(row_l1, i);
                if (key < cmd.kth_key || !(total || in_prefix(key, cmd.shift, cmd.prefix))) {
                    continue;  // outside the top-k set, or a TOP_P round's prefix: no weight needed
                }
                const uint32_t w = weight(key, cmd.max_key);
                mine->mass += total ? w : 0;
                bin(key, w);
            }
        } else if (cmd.op == ROUND_RESIDUAL) {
            uint32_t ties = 0;
            for (uint32_t i = 0; i < count; ++i) {
                uint32_t p, r;
                weights(i, ties, p, r);
                mine->mass += r;
                mine->p_mass += p;
            }
        } else if (cmd.op == ROUND_SAMPLE && cmd.sample_core == core_id) {
            uint32_t ties = 0, token = v_end - 1;  // not crossed (rounding): the slice's last entry
            uint64_t running = cmd.running;
            for (uint32_t i = 0; i < count; ++i) {
                uint32_t p, r;
                weights(i, ties, p, r);
                running += r;
                if (running > cmd.threshold) {
                    token = v_start + i;
                    break;
                }
            }
            mine->token = token;
        }
        const uint32_t bytes = binned ? ROUND_PARTIAL_BYTES : ROUND_PARTIAL_HEADER;
        noc_async_write(partial_l1, get_noc_addr(reduce_noc_x, reduce_noc_y, gather_l1 + core_id * ROUND_PARTIAL_BYTES),
                        bytes);
        noc_async_write_barrier();  // data lands before the count
        noc_semaphore_inc(get_noc_addr(reduce_noc_x, reduce_noc_y, sem_partials_l1), 1);
        noc_async_atomic_barrier();  // acked before the next round or the exit (the firmware asserts it)
        return true;
    };

    if (core_id != 0) {
        for (uint32_t received = 1;; ++received) {
            noc_semaphore_wait(sem_round_ptr, received);  // core 0's next round has landed
            if (!work()) {
                return;
            }
        }
    }

    // ---- core 0: the decisions -----------------------------------------------------------------
    auto core_noc = [](uint32_t c, uint32_t addr) -> uint64_t {
        return get_noc_addr(get_arg_val<uint32_t>(SRT_WRITER_NOC_X0 + 2 * c),
                            get_arg_val<uint32_t>(SRT_WRITER_NOC_X0 + 2 * c + 1), addr);
    };
    // staging -> every core's mailbox, then each core's semaphore moves
    auto broadcast = [&](uint32_t staging_l1, uint32_t mailbox_l1, uint32_t bytes, uint32_t sem_l1) {
        for (uint32_t c = 0; c < num_cores; ++c) {
            noc_async_write(staging_l1, core_noc(c, mailbox_l1), bytes);
        }
        noc_async_write_barrier();
        for (uint32_t c = 0; c < num_cores; ++c) {
            noc_semaphore_inc(core_noc(c, sem_l1), 1);
        }
        noc_async_atomic_barrier();
    };
    auto send_read = [&](uint32_t op, uint32_t page) {
        const ReadCommand cmd{op, page, {0, 0}};
        __builtin_memcpy(reinterpret_cast<void*>(read_staging_l1), &cmd, sizeof cmd);
        broadcast(read_staging_l1, read_cmd_l1, READ_COMMAND_BYTES, sem_read_l1);
    };
    uint32_t rounds = 0;
    auto run_round = [&](const RoundCommand& cmd) {
        __builtin_memcpy(reinterpret_cast<void*>(round_staging_l1), &cmd, sizeof cmd);
        broadcast(round_staging_l1, round_l1, ROUND_COMMAND_BYTES, get_semaphore(sem_round));
        ++rounds;
        noc_semaphore_wait(sem_round_ptr, rounds);
        work();  // core 0's own slice
        noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_partials_l1), rounds * num_cores);
    };
    // radix select: the digit whose bin holds the target, scanning from the largest keys down;
    // amount = count (top-k) or weight sum (top-p); `above` gathers the amounts of the bins passed
    auto select_digit = [&](bool by_mass, uint64_t target, uint64_t& above) -> uint32_t {
        uint32_t lowest = 0;
        uint64_t above_lowest = above;
        for (int32_t j = RADIX_BINS - 1; j >= 0; --j) {
            uint32_t tokens = 0;
            uint64_t mass = 0;
            for (uint32_t c = 0; c < num_cores; ++c) {
                tokens += gathered[c].bins[j].count;
                mass += gathered[c].bins[j].mass;
            }
            if (tokens == 0) {
                continue;
            }
            const uint64_t amount = by_mass ? mass : tokens;
            if (above + amount >= target) {
                return static_cast<uint32_t>(j);
            }
            above_lowest = above;
            lowest = static_cast<uint32_t>(j);
            above += amount;
        }
        above = above_lowest;  // not reached (target <= the total by construction): every key is kept
        return lowest;
    };

    RoundCommand row;  // the current row's round, and after decide_row its sets and normalisers
    // radix select from the top digit, whose histogram the last round gathered: the key holding the
    // target, one more round per lower digit (next_op)
    auto radix_select = [&](uint32_t next_op, bool by_mass, uint64_t target, uint64_t& above) -> uint32_t {
        row.prefix = 0;
        for (uint32_t shift = top_shift;; shift -= RADIX_BITS) {
            row.prefix |= select_digit(by_mass, target, above) << shift;
            if (shift == 0) {
                return row.prefix;
            }
            row.op = next_op;
            row.shift = shift - RADIX_BITS;
            run_round(row);
        }
    };

    const uint32_t scratch_l1 = get_write_ptr(cb_drafts);  // 32 bytes: one DRAM entry
    // each slot takes a DRAM read at its start: DRAM_ALIGNMENT apart ((l1 & 31) == (dram & 31) on Wormhole)
    const uint32_t drafts_l1 = scratch_l1 + align_up(32, DRAM_ALIGNMENT);
    const uint32_t seeds_l1 = drafts_l1 + align_up(k * sizeof(int32_t), DRAM_ALIGNMENT);
    const uint32_t num_draft_l1 = seeds_l1 + align_up(batch * sizeof(uint32_t), DRAM_ALIGNMENT);
    volatile tt_l1_ptr int32_t* draft = reinterpret_cast<volatile tt_l1_ptr int32_t*>(drafts_l1);
    volatile tt_l1_ptr uint32_t* seeds = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(seeds_l1);
    volatile tt_l1_ptr int32_t* k_eff = reinterpret_cast<volatile tt_l1_ptr int32_t*>(num_draft_l1);
    const auto drafts = TensorAccessor(drafts_args, get_arg_val<uint32_t>(SRT_WRITER_DRAFTS_ADDR), k * sizeof(int32_t));
    const auto draft_probs = TensorAccessor(draft_probs_args, get_arg_val<uint32_t>(SRT_WRITER_DRAFT_PROBS_ADDR));
    const auto seeds_acc =
        TensorAccessor(seeds_args, get_arg_val<uint32_t>(SRT_WRITER_SEEDS_ADDR), batch * sizeof(uint32_t));
    const auto num_draft =
        TensorAccessor(num_draft_args, get_arg_val<uint32_t>(SRT_WRITER_NUM_DRAFT_ADDR), batch * sizeof(int32_t));
    const auto num_accepted = TensorAccessor(
        num_accepted_args, get_arg_val<uint32_t>(SRT_WRITER_NUM_ACCEPTED_ADDR), batch * sizeof(int32_t));
    const auto output = TensorAccessor(output_args, get_arg_val<uint32_t>(SRT_WRITER_OUTPUT_ADDR), rows * sizeof(int32_t));
    noc_async_read(get_noc_addr(0, seeds_acc), seeds_l1, batch * sizeof(uint32_t));
    noc_async_read(get_noc_addr(0, num_draft), num_draft_l1, batch * sizeof(int32_t));
    noc_async_read_barrier();

    // The sets and the normaliser z of one row, left in `row` for its RESIDUAL / SAMPLE rounds;
    // returns w(d) (0 outside the sets and for the bonus row).
    auto decide_row = [&](uint32_t page, uint32_t d) -> uint32_t {
        send_read(READ_ROW, page);
        row = RoundCommand{};
        row.op = ROUND_START;
        row.draft = d;
        row.histogram = use_top_k ? HIST_COUNT : HIST_NONE;
        row.shift = top_shift;
        run_round(row);
        uint32_t max_key = 0;
        for (uint32_t c = 0; c < num_cores; ++c) {
            max_key = gathered[c].max_key > max_key ? gathered[c].max_key : max_key;
        }
        const uint32_t owner = d == NO_TOKEN ? 0 : d / slice;
        const uint32_t draft_key = gathered[owner].draft_key, draft_rank = gathered[owner].draft_rank;
        row.max_key = max_key;

        if (use_top_k) {  // the k-th largest key, by counts
            uint64_t above = 0;
            row.kth_key = radix_select(ROUND_TOP_K, false, top_k, above);
        }
        row.op = ROUND_MASS;
        row.histogram = use_top_p ? HIST_MASS : HIST_NONE;
        row.shift = top_shift;
        row.prefix = 0;
        run_round(row);
        uint64_t z_k = 0;
        for (uint32_t c = 0; c < num_cores; ++c) {
            z_k += gathered[c].mass;
        }
        row.z = z_k;
        if (use_top_p) {  // the nucleus key, by weight sums
            const uint64_t target = top_p_target(top_p_fixed, z_k);
            uint64_t above = 0;  // weight of the keys above it
            row.nucleus_key = radix_select(ROUND_TOP_P, true, target, above);
            // tokens with the nucleus key, kept in index order while the weight before them is < target
            const uint32_t w_tie = weight(row.nucleus_key, max_key);
            uint32_t ties_on[num_cores], ties = 0, kept = 0;
            for (uint32_t c = 0; c < num_cores; ++c) {
                ties_on[c] = gathered[c].bins[row.nucleus_key & (RADIX_BINS - 1)].count;  // last round: shift 0
                ties += ties_on[c];
            }
            uint64_t mass = above;
            while (kept < ties && mass < target) {
                mass += w_tie;
                ++kept;
            }
            row.z = mass;
            // the kept ties are the first `kept` in index order: fill the cores' quotas in core order
            uint32_t ties_before_owner = 0, quota_left = kept;
            for (uint32_t c = 0; c < num_cores; ++c) {
                ties_before_owner += c < owner ? ties_on[c] : 0;
                row.tie_quota[c] = ties_on[c] < quota_left ? ties_on[c] : quota_left;
                quota_left -= row.tie_quota[c];
            }
            if (d != NO_TOKEN && draft_key == row.nucleus_key && ties_before_owner + draft_rank >= kept) {
                return 0;  // a tie past the quota
            }
        }
        if (d == NO_TOKEN || draft_key < row.kth_key || draft_key < row.nucleus_key) {
            return 0;
        }
        return weight(draft_key, max_key);
    };

    // one token drawn from `residual` of the row in `row` with uniform u / 2^24
    auto sample = [&](uint32_t residual, uint32_t q_page, uint32_t u) -> uint32_t {
        if (residual == RESIDUAL_Q) {
            send_read(READ_Q, q_page);
        }
        row.op = ROUND_RESIDUAL;
        row.histogram = HIST_NONE;
        row.residual = residual;
        run_round(row);
        uint64_t total = 0;
        for (uint32_t c = 0; c < num_cores; ++c) {
            total += gathered[c].mass;
        }
        const bool use_p = total == 0;  // p == q on the support: rejection had probability 0
        uint64_t slice_mass[num_cores];
        if (use_p) {
            for (uint32_t c = 0; c < num_cores; ++c) {
                total += gathered[c].p_mass;
            }
        }
        for (uint32_t c = 0; c < num_cores; ++c) {
            slice_mass[c] = use_p ? gathered[c].p_mass : gathered[c].mass;
        }
        const uint64_t threshold = sample_threshold(u, total);
        uint64_t running = 0;
        for (uint32_t c = 0; c < num_cores; ++c) {
            if (running + slice_mass[c] > threshold) {
                row.op = ROUND_SAMPLE;
                row.residual = use_p ? RESIDUAL_P : residual;
                row.sample_core = c;
                row.threshold = threshold;
                row.running = running;
                run_round(row);
                return gathered[c].token;
            }
            running += slice_mass[c];
        }
        return vocab - 1;  // not reached (threshold < total); the last entry, as torch_impl.sample_fixed's clamp
    };

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
                    decide_row(b * rows + t, NO_TOKEN);
                    out[t] = static_cast<int32_t>(sample(RESIDUAL_P, 0, uniform_bits(seeds[b], STREAM_SAMPLE, 0)));
                    break;
                }
                const uint32_t d = static_cast<uint32_t>(draft[t]);
                const uint32_t w_d = decide_row(b * rows + t, d);
                uint32_t q_d = ONE_BITS;  // a deterministic drafter: q one-hot on its token
                if constexpr (has_draft_probs) {
                    const uint32_t offset = d * sizeof(uint32_t);  // q's fp32 bits: the 32-byte block holding q_t(d_t)
                    noc_async_read(get_noc_addr(b * k + t, draft_probs, offset & ~31u), scratch_l1, 32);
                    noc_async_read_barrier();
                    q_d = *reinterpret_cast<volatile tt_l1_ptr uint32_t*>(scratch_l1 + (offset & 31u));  // its bits
                }
                if (!accepts(uniform_bits(seeds[b], STREAM_ACCEPT, t), q_d, row.z, w_d)) {  // u * q < p, exactly
                    out[t] = static_cast<int32_t>(sample(has_draft_probs ? RESIDUAL_Q : RESIDUAL_ONE_HOT, b * k + t,
                                                         uniform_bits(seeds[b], STREAM_SAMPLE, 0)));
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

    row = RoundCommand{};
    row.op = ROUND_DONE;
    __builtin_memcpy(reinterpret_cast<void*>(round_staging_l1), &row, sizeof row);
    broadcast(round_staging_l1, round_l1, ROUND_COMMAND_BYTES, get_semaphore(sem_round));
    noc_semaphore_wait(sem_round_ptr, rounds + 1);
    work();  // core 0 lets go of its last row
    send_read(READ_DONE, 0);
}
