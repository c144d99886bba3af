// The rounds of the sampling writers, chain (writer_accept_prefix_sampling.cpp) and tree
// (writer_accept_tree_sampling.cpp): one row's slice per core in L1, core 0 decides, in integers only
// (tt_specdec/sampling.py, fixed_params; the helpers of accept_prefix_common.hpp). The data-movement
// RISC-Vs are RV32IM without an FPU: no float or double here (tests/emu/test_emu_rules.py).
//
// A round: core 0 writes a RoundCommand to every core's mailbox; every core (core 0 too) scans its
// slice and sends a RoundPartial back; core 0 combines them and decides the next round. Only V-sized
// work is spread over cores; combining num_cores partials is small.
//   START: max key (the softmax max), the draft's key and tie rank (by its owner), and with top-k
//          a count histogram of the key's top digit.
//   TOP_K: with the digits found so far as prefix, a count histogram of the next digit: radix
//          select of the k-th largest key, 2 rounds in all for bf16 keys, 4 for fp32.
//   MASS:  sum of w over the top-k set (z_k), and with top-p a mass histogram of the top digit;
//          TOP_P rounds refine it to the nucleus key: the key whose weight above it is < the
//          target and with it >= the target. Tokens sharing that key are kept in index order
//          while the sum stays < the target: core 0 gives each core a quota of them, in core order.
//   RESIDUAL: every core's sums of max(0, w - floor(q * z)) and of w (q: its slice of q's row,
//          one-hot on the draft, or 0 on the bonus row); core 0 finds the slice where
//          floor(u * total / 2^24) falls.
//   SAMPLE: that core scans its slice for the first token whose running sum exceeds it, as
//          torch_impl.sample_fixed.
// The tree's recursive rejection carries r from sibling to sibling, so its writer keeps r in L1
// (Config::keeps_residual: two [slice] uint32 buffers per core, cb_residual):
//   KEEP: r = p's weights of the row into one buffer, and its sum: MASS writes the top-k set's weights there,
//          and with top-p a KEEP round zeroes those past the nucleus key (and ties past the quota).
//   SUBTRACT: r' = max(0, r - floor(q_c * sum(r))) into the other buffer (q_c one-hot on the sibling's
//          token without draft probabilities), its sum, and r, r' at the next sibling's token.
//   SAMPLE_KEPT: SAMPLE over the kept r.
//
// Config: the writer's compile-time constants, static constexpr members cb_logits, cb_q, cb_read_cmd,
// cb_round, cb_partial, cb_gather, vocab, num_cores, slice, has_draft_probs, sem_partials, sem_round,
// sem_read, keeps_residual, and with keeps_residual cb_residual.
#pragma once

#include <cstdint>

#include "accept_prefix_common.hpp"
#include "api/dataflow/dataflow_api.h"

namespace accept_prefix {

// q(d)'s fp32 bits from page `page` of the draft probabilities (the 32-byte DRAM block holding it, read into
// scratch_l1); 1.0 for a deterministic drafter (q one-hot on its token).
template <bool has_draft_probs, typename Accessor>
inline uint32_t q_of_draft(const Accessor& draft_probs, uint32_t page, uint32_t d, uint32_t scratch_l1) {
    if constexpr (has_draft_probs) {
        const uint32_t offset = d * sizeof(uint32_t);
        noc_async_read(get_noc_addr(page, draft_probs, offset & ~31u), scratch_l1, 32);
        noc_async_read_barrier();
        return *reinterpret_cast<volatile tt_l1_ptr uint32_t*>(scratch_l1 + (offset & 31u));
    }
    return ONE_BITS;
}

template <typename Config>
class SamplingRounds {
public:
    static constexpr uint32_t num_cores = Config::num_cores;
    static constexpr uint32_t slice = Config::slice;
    static constexpr uint32_t vocab = Config::vocab;
    static constexpr DataFormat logits_format = get_dataformat(Config::cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    static constexpr uint32_t key_bits = logits_format == DataFormat::Float32 ? 32 : 16;
    static constexpr uint32_t top_shift = key_bits - RADIX_BITS;  // the most significant digit
    static_assert(slice % 32 == 0, "slices are whole 32-entry groups (DRAM-aligned offsets)");
    static_assert(num_cores >= 1 && num_cores <= MAX_SAMPLING_CORES && (num_cores - 1) * slice < vocab &&
                      num_cores * slice >= vocab,
                  "num_cores <= MAX_SAMPLING_CORES slices of `slice` entries cover V, none empty");

    // noc_coords_arg: the runtime arg index of core 0's NoC x, followed by its y and every other core's (x, y)
    SamplingRounds(uint32_t v_start, uint32_t v_end, uint32_t core_id, uint32_t reduce_noc_x, uint32_t reduce_noc_y,
                   uint32_t exp_scale, int32_t exp_shift, uint32_t top_k, uint32_t top_p_fixed,
                   uint32_t noc_coords_arg)
        : v_start(v_start),
          v_end(v_end),
          count(v_end - v_start),
          core_id(core_id),
          reduce_noc_x(reduce_noc_x),
          reduce_noc_y(reduce_noc_y),
          exp_scale(exp_scale),
          exp_shift(exp_shift),
          top_k(top_k),
          top_p_fixed(top_p_fixed),
          use_top_k(top_k > 0 && top_k < vocab),
          use_top_p(top_p_fixed != 0),
          noc_coords_arg(noc_coords_arg),
          // L1: mailboxes (same address on every core), then core 0's staging copies behind them
          read_cmd_l1(get_write_ptr(Config::cb_read_cmd)),
          read_staging_l1(read_cmd_l1 + READ_COMMAND_BYTES),
          round_l1(get_write_ptr(Config::cb_round)),
          round_staging_l1(round_l1 + ROUND_COMMAND_BYTES),
          partial_l1(get_write_ptr(Config::cb_partial)),
          gather_l1(get_write_ptr(Config::cb_gather)),
          mine(reinterpret_cast<RoundPartial*>(partial_l1)),
          gathered(reinterpret_cast<volatile tt_l1_ptr RoundPartial*>(gather_l1)),
          sem_round_ptr(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(Config::sem_round))),
          sem_partials_l1(get_semaphore(Config::sem_partials)),
          sem_read_l1(get_semaphore(Config::sem_read)) {}

    // ---- every core ------------------------------------------------------------------------------

    // Cores other than 0: serve core 0's rounds until ROUND_DONE.
    void serve() {
        for (uint32_t received = 1;; ++received) {
            noc_semaphore_wait(sem_round_ptr, received);  // core 0's next round has landed
            if (!work()) {
                return;
            }
        }
    }

    // ---- core 0: the decisions -------------------------------------------------------------------

    RoundCommand row;  // the current row's round, and after decide_row its sets and normalisers

    // Every reader brings page `page` of the logits (READ_ROW) or of the draft probabilities (READ_Q) into L1.
    void send_read(uint32_t op, uint32_t page) {
        const ReadCommand cmd{op, page, {0, 0}};
        __builtin_memcpy(reinterpret_cast<void*>(read_staging_l1), &cmd, sizeof cmd);
        broadcast(read_staging_l1, read_cmd_l1, READ_COMMAND_BYTES, sem_read_l1);
    }

    void run_round(const RoundCommand& cmd) {
        __builtin_memcpy(reinterpret_cast<void*>(round_staging_l1), &cmd, sizeof cmd);
        broadcast(round_staging_l1, round_l1, ROUND_COMMAND_BYTES, get_semaphore(Config::sem_round));
        ++rounds;
        noc_semaphore_wait(sem_round_ptr, rounds);
        work();  // core 0's own slice
        noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_partials_l1), rounds * num_cores);
    }

    // The sets and the normaliser z of logits page `page`, left in `row` for its later rounds; returns
    // w(d) (0 outside the sets and for NO_TOKEN).
    uint32_t decide_row(uint32_t page, uint32_t d) {
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
        const uint64_t z_k = gathered_mass();
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
    }

    // One token drawn from `residual` of the row in `row` with uniform u / 2^24 (q's row at q_page for RESIDUAL_Q).
    uint32_t sample(uint32_t residual, uint32_t q_page, uint32_t u) {
        if (residual == RESIDUAL_Q) {
            send_read(READ_Q, q_page);
        }
        row.op = ROUND_RESIDUAL;
        row.histogram = HIST_NONE;
        row.residual = residual;
        run_round(row);
        uint64_t total = gathered_mass();
        const bool use_p = total == 0;  // p == q on the support: rejection had probability 0
        uint64_t slice_mass[num_cores];
        for (uint32_t c = 0; c < num_cores; ++c) {
            slice_mass[c] = use_p ? gathered[c].p_mass : gathered[c].mass;
            total += use_p ? gathered[c].p_mass : 0;
        }
        row.residual = use_p ? RESIDUAL_P : residual;
        return draw(ROUND_SAMPLE, slice_mass, total, u);
    }

    // The tree's kept residual r (Config::keeps_residual): r = p of logits page `page` in buffer 0 (MASS wrote
    // the top-k set's weights there; with top-p a KEEP round cuts them at the nucleus), its sum in row.z;
    // returns r(d) (0 for NO_TOKEN).
    uint32_t keep_row(uint32_t page, uint32_t d) {
        static_assert(Config::keeps_residual, "the kept residual needs cb_residual");
        const uint32_t r_d = decide_row(page, d);  // row.buffer 0
        if (use_top_p) {
            row.op = ROUND_KEEP;
            row.histogram = HIST_NONE;
            row.residual = RESIDUAL_P;
            run_round(row);
        }
        keep_masses();  // the last round's (MASS or KEEP): their sum is row.z, decide_row's
        return r_d;
    }

    // After the draft x (q's row at q_page, or one-hot on x) is rejected against the kept r: r becomes
    // max(0, r - floor(q * sum(r))), unless that is 0 everywhere (the rejection had probability 0: r stays).
    // Returns r at `probe` afterwards (0 for NO_TOKEN).
    uint32_t subtract(uint32_t x, uint32_t q_page, uint32_t probe) {
        static_assert(Config::keeps_residual, "the kept residual needs cb_residual");
        if constexpr (Config::has_draft_probs) {
            send_read(READ_Q, q_page);
        }
        row.op = ROUND_SUBTRACT;
        row.residual = Config::has_draft_probs ? RESIDUAL_Q : RESIDUAL_ONE_HOT;
        row.draft = x;
        row.probe = probe;
        run_round(row);
        const uint64_t total = gathered_mass();
        volatile tt_l1_ptr RoundPartial* owner = gathered + (probe == NO_TOKEN ? 0 : probe / slice);
        if (total == 0) {
            return probe == NO_TOKEN ? 0 : owner->probe_kept;
        }
        row.buffer ^= 1;
        row.z = total;
        keep_masses();
        return probe == NO_TOKEN ? 0 : owner->probe_residual;
    }

    // One token drawn from the kept r with uniform u / 2^24.
    uint32_t sample_kept(uint32_t u) { return draw(ROUND_SAMPLE_KEPT, kept_mass, row.z, u); }

    // Every core lets go of its rows, every reader stops.
    void finish() {
        row = RoundCommand{};
        row.op = ROUND_DONE;
        __builtin_memcpy(reinterpret_cast<void*>(round_staging_l1), &row, sizeof row);
        broadcast(round_staging_l1, round_l1, ROUND_COMMAND_BYTES, get_semaphore(Config::sem_round));
        noc_semaphore_wait(sem_round_ptr, rounds + 1);
        work();  // core 0 lets go of its last row
        send_read(READ_DONE, 0);
    }

private:
    const uint32_t v_start, v_end, count, core_id, reduce_noc_x, reduce_noc_y;
    const uint32_t exp_scale;  // c = log2(e) / temperature = exp_scale * 2^-exp_shift (sampling.fixed_params)
    const int32_t exp_shift;
    const uint32_t top_k, top_p_fixed;
    const bool use_top_k, use_top_p;
    const uint32_t noc_coords_arg;
    const uint32_t read_cmd_l1, read_staging_l1, round_l1, round_staging_l1, partial_l1, gather_l1;
    RoundPartial* const mine;
    volatile tt_l1_ptr RoundPartial* const gathered;
    volatile tt_l1_ptr uint32_t* const sem_round_ptr;
    const uint32_t sem_partials_l1, sem_read_l1;
    bool holding_row = false, holding_q = false;
    uint32_t rounds = 0;
    uint64_t kept_mass[num_cores] = {};  // core 0: each slice's sum of the kept r

    // key of entry i of an L1 slice; the fp32 bits of a key's logit (bf16 widened exactly)
    static uint32_t key_at(uint32_t l1, uint32_t i) {
        if constexpr (logits_format == DataFormat::Float16_b) {
            return bf16_key(reinterpret_cast<volatile tt_l1_ptr uint16_t*>(l1)[i]);
        } else {
            return fp32_key(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(l1)[i]);
        }
    }
    static uint32_t logit_bits(uint32_t key) {
        if constexpr (logits_format == DataFormat::Float16_b) {
            return bf16_key_bits(key) << 16;
        } else {
            return fp32_key_bits(key);
        }
    }
    // w of a token by its key, below the row's largest key
    uint32_t weight(uint32_t key, uint32_t max_key) const {
        return fixed_weight(logit_bits(key), logit_bits(max_key), exp_scale, exp_shift);
    }
    static bool in_prefix(uint32_t key, uint32_t shift, uint32_t prefix) {
        return shift + RADIX_BITS >= key_bits || (key >> (shift + RADIX_BITS)) == (prefix >> (shift + RADIX_BITS));
    }
    // [slice] uint32: kept residual buffer 0 or 1
    static volatile tt_l1_ptr uint32_t* kept(uint32_t buffer) {
        if constexpr (Config::keeps_residual) {
            return reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_write_ptr(Config::cb_residual)) + buffer * slice;
        } else {
            return nullptr;
        }
    }

    // the cores' masses of the last round, summed
    uint64_t gathered_mass() const {
        uint64_t total = 0;
        for (uint32_t c = 0; c < num_cores; ++c) {
            total += gathered[c].mass;
        }
        return total;
    }

    void keep_masses() {
        for (uint32_t c = 0; c < num_cores; ++c) {
            kept_mass[c] = gathered[c].mass;
        }
    }

    void release() {
        if (holding_row) {
            cb_pop_front(Config::cb_logits, 1);  // the reader may bring the next row
            holding_row = false;
        }
        if (holding_q) {
            cb_pop_front(Config::cb_q, 1);
            holding_q = false;
        }
    }

    // r of p's weight p at entry i: p less floor(q(i) * z) (q's row in cb_q), or 0 at the one-hot draft
    uint32_t residual_of(const RoundCommand& cmd, uint32_t i, uint32_t p) const {
        if (cmd.residual == RESIDUAL_Q && p != 0) {  // p == 0: r is 0 whatever q (outside top-k / top-p: most tokens)
            if constexpr (Config::has_draft_probs) {
                const uint64_t qz =
                    q_times_z(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_read_ptr(Config::cb_q))[i], cmd.z);
                return p > qz ? p - static_cast<uint32_t>(qz) : 0;
            }
        } else if (cmd.residual == RESIDUAL_ONE_HOT && v_start + i == cmd.draft) {
            return 0;  // q = 1 at the draft: floor(q * z) = z >= p
        }
        return p;
    }

    // One round of work on the row in L1; returns false on ROUND_DONE.
    bool work() {
        RoundCommand cmd;
        __builtin_memcpy(&cmd, reinterpret_cast<const void*>(round_l1), sizeof cmd);
        if (cmd.op == ROUND_DONE) {
            release();
            return false;
        }
        if (cmd.op == ROUND_START) {
            release();
            cb_wait_front(Config::cb_logits, 1);  // this core's slice of the row
            holding_row = true;
        }
        if (cmd.residual == RESIDUAL_Q && (cmd.op == ROUND_SUBTRACT || (cmd.op == ROUND_RESIDUAL && !holding_q))) {
            if (holding_q) {  // a tree's earlier sibling's q: its reader waits to bring the next
                cb_pop_front(Config::cb_q, 1);
            }
            cb_wait_front(Config::cb_q, 1);  // q's row beside the logits
            holding_q = true;
        }
        const uint32_t row_l1 = get_read_ptr(Config::cb_logits);
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
        // p's weight of entry i, in index order (ties: nucleus-key tokens seen so far)
        const uint32_t quota = cmd.tie_quota[core_id];
        auto in_sets = [&](uint32_t key, uint32_t& ties) -> bool {
            bool kept = key >= cmd.kth_key && key >= cmd.nucleus_key;
            if (kept && key == cmd.nucleus_key) {
                kept = ties++ < quota;
            }
            return kept;
        };
        auto p_weight = [&](uint32_t i, uint32_t& ties) -> uint32_t {
            const uint32_t key = key_at(row_l1, i);
            return in_sets(key, ties) ? weight(key, cmd.max_key) : 0;
        };
        // the first entry whose running sum of r(i) passes the threshold (not crossed, rounding: the last)
        auto find_sample = [&](auto r_of) {
            uint32_t token = v_end - 1;
            uint64_t running = cmd.running;
            for (uint32_t i = 0; i < count; ++i) {
                running += r_of(i);
                if (running > cmd.threshold) {
                    token = v_start + i;
                    break;
                }
            }
            mine->token = token;
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
            // the tree keeps MASS's weights: r = p's after the nucleus cut (KEEP), without top-p as they are
            volatile tt_l1_ptr uint32_t* keep = kept(cmd.buffer);
            for (uint32_t i = 0; i < count; ++i) {
                const uint32_t key = key_at(row_l1, i);
                if (key < cmd.kth_key || !(total || in_prefix(key, cmd.shift, cmd.prefix))) {
                    if constexpr (Config::keeps_residual) {
                        if (total) {
                            keep[i] = 0;
                        }
                    }
                    continue;  // outside the top-k set, or a TOP_P round's prefix: no weight needed
                }
                const uint32_t w = weight(key, cmd.max_key);
                mine->mass += total ? w : 0;
                if constexpr (Config::keeps_residual) {
                    if (total) {
                        keep[i] = w;
                    }
                }
                bin(key, w);
            }
        } else if (cmd.op == ROUND_RESIDUAL) {
            uint32_t ties = 0;
            for (uint32_t i = 0; i < count; ++i) {
                const uint32_t p = p_weight(i, ties);
                mine->mass += residual_of(cmd, i, p);
                mine->p_mass += p;
            }
        } else if (cmd.op == ROUND_SAMPLE) {
            if (cmd.sample_core == core_id) {
                uint32_t ties = 0;
                find_sample([&](uint32_t i) { return residual_of(cmd, i, p_weight(i, ties)); });
            }
        } else if constexpr (Config::keeps_residual) {
            volatile tt_l1_ptr uint32_t* r = kept(cmd.buffer);
            if (cmd.op == ROUND_KEEP) {
                uint32_t ties = 0;
                for (uint32_t i = 0; i < count; ++i) {
                    if (r[i] != 0 && !in_sets(key_at(row_l1, i), ties)) {
                        r[i] = 0;  // past the nucleus key, or a tie past this core's quota
                    }
                    mine->mass += r[i];
                }
            } else if (cmd.op == ROUND_SUBTRACT) {
                volatile tt_l1_ptr uint32_t* next = kept(cmd.buffer ^ 1);
                for (uint32_t i = 0; i < count; ++i) {
                    next[i] = residual_of(cmd, i, r[i]);
                    mine->mass += next[i];
                }
                if (cmd.probe != NO_TOKEN && cmd.probe >= v_start && cmd.probe < v_end) {
                    mine->probe_kept = r[cmd.probe - v_start];
                    mine->probe_residual = next[cmd.probe - v_start];
                }
            } else if (cmd.op == ROUND_SAMPLE_KEPT && cmd.sample_core == core_id) {
                find_sample([&](uint32_t i) -> uint32_t { return r[i]; });
            }
        }
        const uint32_t bytes = binned ? ROUND_PARTIAL_BYTES : ROUND_PARTIAL_HEADER;
        noc_async_write(partial_l1, get_noc_addr(reduce_noc_x, reduce_noc_y, gather_l1 + core_id * ROUND_PARTIAL_BYTES),
                        bytes);
        noc_async_write_barrier();  // data lands before the count
        noc_semaphore_inc(get_noc_addr(reduce_noc_x, reduce_noc_y, sem_partials_l1), 1);
        noc_async_atomic_barrier();  // acked before the next round or the exit (the firmware asserts it)
        return true;
    }

    uint64_t core_noc(uint32_t c, uint32_t addr) const {
        return get_noc_addr(get_arg_val<uint32_t>(noc_coords_arg + 2 * c),
                            get_arg_val<uint32_t>(noc_coords_arg + 2 * c + 1), addr);
    }
    // staging -> every core's mailbox, then each core's semaphore moves
    void broadcast(uint32_t staging_l1, uint32_t mailbox_l1, uint32_t bytes, uint32_t sem_l1) {
        for (uint32_t c = 0; c < num_cores; ++c) {
            noc_async_write(staging_l1, core_noc(c, mailbox_l1), bytes);
        }
        noc_async_write_barrier();
        for (uint32_t c = 0; c < num_cores; ++c) {
            noc_semaphore_inc(core_noc(c, sem_l1), 1);
        }
        noc_async_atomic_barrier();
    }

    // radix select: the digit whose bin holds the target, scanning from the largest keys down;
    // amount = count (top-k) or weight sum (top-p); `above` gathers the amounts of the bins passed
    uint32_t select_digit(bool by_mass, uint64_t target, uint64_t& above) {
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
    }

    // radix select from the top digit, whose histogram the last round gathered: the key holding the
    // target, one more round per lower digit (next_op)
    uint32_t radix_select(uint32_t next_op, bool by_mass, uint64_t target, uint64_t& above) {
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
    }

    // The token where floor(u * total / 2^24) falls, slices' masses [num_cores]: the core holding it scans
    // its slice in a `sample_op` round.
    uint32_t draw(uint32_t sample_op, const uint64_t* slice_mass, uint64_t total, uint32_t u) {
        const uint64_t threshold = sample_threshold(u, total);
        uint64_t running = 0;
        for (uint32_t c = 0; c < num_cores; ++c) {
            if (running + slice_mass[c] > threshold) {
                row.op = sample_op;
                row.sample_core = c;
                row.threshold = threshold;
                row.running = running;
                run_round(row);
                return gathered[c].token;
            }
            running += slice_mass[c];
        }
        return vocab - 1;  // not reached (threshold < total); the last entry, as torch_impl.sample_fixed's clamp
    }
};

}  // namespace accept_prefix
