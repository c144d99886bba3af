// accept_prefix sampling, writer (BRISC): the lossless speculative-sampling rule
// (Leviathan et al. 2023) with temperature, V split over cores.
//
// Which core does what, and why:
// 1. every core: softmax statistics (max s, sum exp(s - max), s = logit / temperature) of
//    its slice of rows 0..k_eff[b], online in one pass; sent to core 0. Only V-sized work
//    is spread: it is the only work proportional to the vocabulary.
// 2. core 0: per sequence, the accept test of draft t: u_t * q_t(d_t) < p_t(d_t), stopping
//    at the first rejection (n). It needs p at one token per row, so it reads that single
//    logit (and q_t(d_t)) itself. It then writes the plan (row n, its statistics, residual
//    or not) to every core and raises their plan semaphore.
// 3. every core, only for a rejection with the draft's probabilities: the residual mass
//    sum max(0, p - q) of its slice of row n, sent to core 0. A bonus row (p itself) or a
//    one-hot q (p minus the draft token) takes its slice masses from step 1's statistics:
//    no second read of the row.
// 4. core 0: threshold = u * total mass; the core whose slice crosses it is found from the
//    partial sums, and core 0 scans that one slice (1 / num_cores of a row) for the token:
//    the first index whose running sum exceeds the threshold, as torch.searchsorted(right).
// Math is float64 with the same formulas as tt_specdec.ops.sampling, so seeded results
// match the torch op token for token. On a card this runs soft-float on the RISC: correct,
// not fast; moving the exp to a compute kernel (SFPU, fp32) is the follow-up.
#include <cmath>
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
    const uint64_t temperature_bits = (static_cast<uint64_t>(get_arg_val<uint32_t>(SRT_WRITER_TEMPERATURE_HI)) << 32) |
                                      get_arg_val<uint32_t>(SRT_WRITER_TEMPERATURE_LO);
    double temperature;
    __builtin_memcpy(&temperature, &temperature_bits, sizeof temperature);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(SCT_WRITER_CB_LOGITS);        // [chunk] logits
    constexpr uint32_t cb_num_draft = get_compile_time_arg_val(SCT_WRITER_CB_NUM_DRAFT);  // [B] int32
    constexpr uint32_t cb_q = get_compile_time_arg_val(SCT_WRITER_CB_Q);                  // [chunk] fp32
    constexpr uint32_t cb_plan = get_compile_time_arg_val(SCT_WRITER_CB_PLAN);            // [B] Plan
    constexpr uint32_t cb_partial = get_compile_time_arg_val(SCT_WRITER_CB_PARTIAL);  // [B*(k+1)] SoftmaxPartial
    constexpr uint32_t cb_gather = get_compile_time_arg_val(SCT_WRITER_CB_GATHER);    // [cores][B*(k+1)] SoftmaxPartial
    constexpr uint32_t cb_gather_res = get_compile_time_arg_val(SCT_WRITER_CB_GATHER_RES);  // [cores][B] ResidualPartial
    constexpr uint32_t cb_drafts = get_compile_time_arg_val(SCT_WRITER_CB_DRAFTS);  // [k] int32, then [B] seeds
    constexpr uint32_t cb_out = get_compile_time_arg_val(SCT_WRITER_CB_OUT);        // [k+1] int32, then [B] int32
    constexpr uint32_t cb_scratch = get_compile_time_arg_val(SCT_WRITER_CB_SCRATCH);      // [chunk] logits
    constexpr uint32_t cb_scratch_q = get_compile_time_arg_val(SCT_WRITER_CB_SCRATCH_Q);  // [chunk] fp32
    constexpr uint32_t chunk = get_compile_time_arg_val(SCT_WRITER_CHUNK);
    constexpr uint32_t batch = get_compile_time_arg_val(SCT_WRITER_BATCH);  // B
    constexpr uint32_t rows = get_compile_time_arg_val(SCT_WRITER_ROWS);    // k + 1
    constexpr uint32_t vocab = get_compile_time_arg_val(SCT_WRITER_VOCAB);  // V
    constexpr uint32_t num_cores = get_compile_time_arg_val(SCT_WRITER_NUM_CORES);
    constexpr uint32_t slice = get_compile_time_arg_val(SCT_WRITER_SLICE);
    constexpr bool has_draft_probs = get_compile_time_arg_val(SCT_WRITER_HAS_DRAFT_PROBS) == 1;
    constexpr uint32_t sem_partials = get_compile_time_arg_val(SCT_WRITER_SEM_PARTIALS);
    constexpr uint32_t sem_plan = get_compile_time_arg_val(SCT_WRITER_SEM_PLAN);
    constexpr auto logits_args = TensorAccessorArgs<SCT_WRITER_LOGITS_TA>();
    constexpr auto drafts_args = TensorAccessorArgs<SCT_WRITER_DRAFTS_TA>();
    constexpr auto draft_probs_args = TensorAccessorArgs<SCT_WRITER_DRAFT_PROBS_TA>();
    constexpr auto seeds_args = TensorAccessorArgs<SCT_WRITER_SEEDS_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<SCT_WRITER_NUM_ACCEPTED_TA>();
    constexpr auto output_args = TensorAccessorArgs<SCT_WRITER_OUTPUT_TA>();

    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    constexpr uint32_t elem_size = logits_format == DataFormat::Float32 ? 4 : 2;
    static_assert(chunk % 32 == 0 && slice % 32 == 0, "slices and chunks are whole 32-entry groups");
    static_assert(rows >= 2 && rows <= MAX_ROWS, "k + 1 target rows must fit one 32-row tile");
    static_assert(num_cores >= 1 && (num_cores - 1) * slice < vocab && num_cores * slice >= vocab,
                  "num_cores slices of `slice` entries cover V, none empty");
    constexpr uint32_t k = rows - 1;
    constexpr uint32_t softmax_bytes = (batch * rows * sizeof(SoftmaxPartial) + 15) / 16 * 16;
    constexpr uint32_t residual_bytes = (batch * sizeof(ResidualPartial) + 15) / 16 * 16;
    constexpr uint32_t plan_bytes = (batch * sizeof(Plan) + 15) / 16 * 16;

    // logit `i` of an L1 chunk, as float64
    auto logit_at = [](uint32_t l1, uint32_t i) -> double {
        if constexpr (logits_format == DataFormat::Float16_b) {
            return bfloat16_to_float(reinterpret_cast<volatile tt_l1_ptr uint16_t*>(l1)[i]);
        } else {
            return reinterpret_cast<volatile tt_l1_ptr float*>(l1)[i];
        }
    };

    cb_wait_front(cb_num_draft, 1);
    volatile tt_l1_ptr int32_t* k_eff = reinterpret_cast<volatile tt_l1_ptr int32_t*>(get_read_ptr(cb_num_draft));
    const uint32_t sem_partials_l1 = get_semaphore(sem_partials);
    const uint32_t sem_plan_l1 = get_semaphore(sem_plan);

    // 1. softmax statistics of this slice, per streamed row: online max and rescaled sum
    const uint32_t partial_l1 = get_write_ptr(cb_partial);
    volatile tt_l1_ptr SoftmaxPartial* stats = reinterpret_cast<volatile tt_l1_ptr SoftmaxPartial*>(partial_l1);
    for (uint32_t b = 0; b < batch; ++b) {
        for (uint32_t t = 0; t < rows; ++t) {
            double mx = -__builtin_inf(), sum = 0.0;
            if (static_cast<int32_t>(t) <= k_eff[b]) {
                for (uint32_t v = v_start; v < v_end; v += chunk) {
                    const uint32_t n = (v_end - v < chunk ? v_end - v : chunk);
                    cb_wait_front(cb_logits, 1);
                    const uint32_t l1 = get_read_ptr(cb_logits);
                    for (uint32_t i = 0; i < n; ++i) {
                        const double s = logit_at(l1, i) / temperature;
                        if (s > mx) {
                            sum = sum * std::exp(mx - s) + 1.0;
                            mx = s;
                        } else {
                            sum += std::exp(s - mx);
                        }
                    }
                    cb_pop_front(cb_logits, 1);
                }
            }
            stats[b * rows + t].max = mx;
            stats[b * rows + t].sum = sum;
        }
    }
    const uint32_t gather_l1 = get_write_ptr(cb_gather);  // same L1 address on every core
    noc_async_write(partial_l1, get_noc_addr(reduce_noc_x, reduce_noc_y, gather_l1 + core_id * softmax_bytes),
                    softmax_bytes);
    noc_async_write_barrier();  // data lands before the count
    noc_semaphore_inc(get_noc_addr(reduce_noc_x, reduce_noc_y, sem_partials_l1), 1);

    const uint32_t plan_l1 = get_write_ptr(cb_plan);
    volatile tt_l1_ptr Plan* plan = reinterpret_cast<volatile tt_l1_ptr Plan*>(plan_l1);
    const auto logits = TensorAccessor(logits_args, get_arg_val<uint32_t>(SRT_WRITER_LOGITS_ADDR));
    const auto draft_probs = TensorAccessor(draft_probs_args, get_arg_val<uint32_t>(SRT_WRITER_DRAFT_PROBS_ADDR));
    const uint32_t scratch_l1 = get_write_ptr(cb_scratch);
    const uint32_t scratch_q_l1 = get_write_ptr(cb_scratch_q);

    // one entry of a DRAM page: read the 32-byte aligned block around it into scratch
    auto read_entry = [&](const auto& src, uint32_t page, uint32_t index, uint32_t bytes, uint32_t l1) -> uint32_t {
        const uint32_t offset = index * bytes;
        noc_async_read(get_noc_addr(page, src, offset & ~31u), l1, 32);
        noc_async_read_barrier();
        return l1 + (offset & 31u);
    };

    // whole-vocabulary statistics of row (b, t) from the gathered partials
    volatile tt_l1_ptr SoftmaxPartial* gathered = reinterpret_cast<volatile tt_l1_ptr SoftmaxPartial*>(gather_l1);
    constexpr uint32_t softmax_stride = softmax_bytes / sizeof(SoftmaxPartial);
    auto row_stats = [&](uint32_t b, uint32_t t, double& mx, double& sum) {
        mx = -__builtin_inf();
        for (uint32_t c = 0; c < num_cores; ++c) {
            const double m = gathered[c * softmax_stride + b * rows + t].max;
            mx = m > mx ? m : mx;
        }
        sum = 0.0;
        for (uint32_t c = 0; c < num_cores; ++c) {
            sum += gathered[c * softmax_stride + b * rows + t].sum *
                   std::exp(gathered[c * softmax_stride + b * rows + t].max - mx);
        }
    };

    const uint32_t drafts_l1 = get_write_ptr(cb_drafts);
    const uint32_t seeds_l1 = drafts_l1 + (k * sizeof(int32_t) + 15) / 16 * 16;
    volatile tt_l1_ptr int32_t* draft = reinterpret_cast<volatile tt_l1_ptr int32_t*>(drafts_l1);
    volatile tt_l1_ptr uint32_t* seeds = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(seeds_l1);
    const auto drafts = TensorAccessor(drafts_args, get_arg_val<uint32_t>(SRT_WRITER_DRAFTS_ADDR), k * sizeof(int32_t));

    // 2. core 0: accept tests, then the plan for every core
    if (core_id == 0) {
        const auto seeds_acc = TensorAccessor(seeds_args, get_arg_val<uint32_t>(SRT_WRITER_SEEDS_ADDR),
                                              batch * sizeof(uint32_t));
        noc_async_read(get_noc_addr(0, seeds_acc), seeds_l1, batch * sizeof(uint32_t));
        noc_async_read_barrier();
        noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_partials_l1), num_cores);
        for (uint32_t b = 0; b < batch; ++b) {
            const int32_t k_b = k_eff[b];
            if (k_b < 0) {
                plan[b].n = PLACEHOLDER;
                plan[b].subtract_q = 0;
                continue;
            }
            if (k_b > 0) {
                noc_async_read(get_noc_addr(b, drafts), drafts_l1, k * sizeof(int32_t));
                noc_async_read_barrier();
            }
            int32_t n = 0;
            double mx, sum;
            while (n < k_b) {
                const uint32_t d = static_cast<uint32_t>(draft[n]);
                row_stats(b, n, mx, sum);
                const double p_d = std::exp(logit_at(read_entry(logits, b * rows + n, d, elem_size, scratch_l1), 0) /
                                                temperature - mx) / sum;  // p_t(d_t)
                double q_d = 1.0;  // a deterministic drafter: q one-hot on its token
                if constexpr (has_draft_probs) {
                    q_d = *reinterpret_cast<volatile tt_l1_ptr float*>(
                        read_entry(draft_probs, b * k + n, d, sizeof(float), scratch_q_l1));
                }
                if (!(uniform(seeds[b], STREAM_ACCEPT, n) * q_d < p_d)) {  // u < p / q without dividing by q = 0
                    break;
                }
                ++n;
            }
            row_stats(b, n, mx, sum);
            plan[b].max = mx;
            plan[b].sum = sum;
            plan[b].n = n;
            plan[b].subtract_q = n < k_b ? 1 : 0;  // rejected: residual; all accepted: the bonus row, p itself
        }
        // the plan lands on every core before its semaphore moves
        for (uint32_t c = 0; c < num_cores; ++c) {
            const uint32_t x = get_arg_val<uint32_t>(SRT_WRITER_NOC_X0 + 2 * c);
            const uint32_t y = get_arg_val<uint32_t>(SRT_WRITER_NOC_X0 + 2 * c + 1);
            noc_async_write(plan_l1, get_noc_addr(x, y, plan_l1), plan_bytes);
        }
        noc_async_write_barrier();
        for (uint32_t c = 0; c < num_cores; ++c) {
            const uint32_t x = get_arg_val<uint32_t>(SRT_WRITER_NOC_X0 + 2 * c);
            const uint32_t y = get_arg_val<uint32_t>(SRT_WRITER_NOC_X0 + 2 * c + 1);
            noc_semaphore_inc(get_noc_addr(x, y, sem_plan_l1), 1);
        }
    }

    // 3. every core: residual mass max(0, p - q) of its slice of row n, for the rows that need
    // it: a rejection with the draft's probabilities. A bonus row (p itself) or a one-hot q
    // (p without the draft token) has its slice masses in the softmax statistics already.
    noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_plan_l1), 1);
    volatile tt_l1_ptr ResidualPartial* mass = reinterpret_cast<volatile tt_l1_ptr ResidualPartial*>(partial_l1);
    for (uint32_t b = 0; b < batch; ++b) {
        double residual = 0.0, total_p = 0.0;
        if (plan[b].n >= 0 && has_draft_probs && plan[b].subtract_q) {
            for (uint32_t v = v_start; v < v_end; v += chunk) {
                const uint32_t n = (v_end - v < chunk ? v_end - v : chunk);
                cb_wait_front(cb_logits, 1);
                cb_wait_front(cb_q, 1);
                const uint32_t l1 = get_read_ptr(cb_logits);
                volatile tt_l1_ptr float* q = reinterpret_cast<volatile tt_l1_ptr float*>(get_read_ptr(cb_q));
                for (uint32_t i = 0; i < n; ++i) {
                    const double p = std::exp(logit_at(l1, i) / temperature - plan[b].max) / plan[b].sum;
                    const double r = p - q[i];
                    residual += r > 0.0 ? r : 0.0;
                    total_p += p;
                }
                cb_pop_front(cb_logits, 1);
                cb_pop_front(cb_q, 1);
            }
        }
        mass[b].residual = residual;
        mass[b].p = total_p;
    }
    const uint32_t gather_res_l1 = get_write_ptr(cb_gather_res);
    noc_async_write(partial_l1, get_noc_addr(reduce_noc_x, reduce_noc_y, gather_res_l1 + core_id * residual_bytes),
                    residual_bytes);
    noc_async_write_barrier();
    noc_semaphore_inc(get_noc_addr(reduce_noc_x, reduce_noc_y, sem_partials_l1), 1);

    if (core_id != 0) {
        cb_pop_front(cb_num_draft, 1);
        return;
    }

    // 4. core 0: the token, by inverse CDF over the residual (or p when the residual is all zero)
    noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_partials_l1), 2 * num_cores);
    const auto num_accepted = TensorAccessor(
        num_accepted_args, get_arg_val<uint32_t>(SRT_WRITER_NUM_ACCEPTED_ADDR), batch * sizeof(int32_t));
    const auto output = TensorAccessor(output_args, get_arg_val<uint32_t>(SRT_WRITER_OUTPUT_ADDR), rows * sizeof(int32_t));
    const uint32_t out_l1 = get_write_ptr(cb_out);
    const uint32_t accepted_l1 = out_l1 + (((rows > batch ? rows : batch) * sizeof(int32_t) + 15) / 16 * 16);
    volatile tt_l1_ptr int32_t* out = reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1);
    volatile tt_l1_ptr int32_t* accepted = reinterpret_cast<volatile tt_l1_ptr int32_t*>(accepted_l1);
    constexpr uint32_t residual_stride = residual_bytes / sizeof(ResidualPartial);
    volatile tt_l1_ptr ResidualPartial* masses = reinterpret_cast<volatile tt_l1_ptr ResidualPartial*>(gather_res_l1);

    for (uint32_t b = 0; b < batch; ++b) {
        const int32_t n = plan[b].n;
        for (uint32_t t = 0; t < rows; ++t) {
            out[t] = PLACEHOLDER;
        }
        if (n >= 0) {
            // per-slice masses of the residual and of p over row n
            double res_c[num_cores], p_c[num_cores];
            if (has_draft_probs && plan[b].subtract_q) {
                for (uint32_t c = 0; c < num_cores; ++c) {
                    res_c[c] = masses[c * residual_stride + b].residual;
                    p_c[c] = masses[c * residual_stride + b].p;
                }
            } else {
                for (uint32_t c = 0; c < num_cores; ++c) {  // softmax mass of slice c, from pass 1
                    const volatile tt_l1_ptr SoftmaxPartial& g = gathered[c * softmax_stride + b * rows + n];
                    p_c[c] = g.sum * std::exp(g.max - plan[b].max) / plan[b].sum;
                    res_c[c] = p_c[c];
                }
                if (plan[b].subtract_q) {  // one-hot q: the residual is p without the rejected draft token
                    noc_async_read(get_noc_addr(b, drafts), drafts_l1, k * sizeof(int32_t));
                    noc_async_read_barrier();
                    const uint32_t d = static_cast<uint32_t>(draft[n]);
                    const double p_d = std::exp(logit_at(read_entry(logits, b * rows + n, d, elem_size, scratch_l1), 0) /
                                                    temperature - plan[b].max) / plan[b].sum;
                    const double r = res_c[d / slice] - p_d;
                    res_c[d / slice] = r > 0.0 ? r : 0.0;
                }
            }
            double total = 0.0;
            for (uint32_t c = 0; c < num_cores; ++c) {
                total += res_c[c];
            }
            const bool use_residual = total > 0.0;  // p == q on the support: rejection had probability 0
            if (!use_residual) {
                total = 0.0;
                for (uint32_t c = 0; c < num_cores; ++c) {
                    total += p_c[c];
                }
            }
            const double threshold = uniform(seeds[b], STREAM_SAMPLE, 0) * total;
            // the slice whose running mass first exceeds the threshold
            double running = 0.0;
            uint32_t c_hit = num_cores;
            for (uint32_t c = 0; c < num_cores; ++c) {
                const double m = use_residual ? res_c[c] : p_c[c];
                if (running + m > threshold) {
                    c_hit = c;
                    break;
                }
                running += m;
            }
            uint32_t token = vocab - 1;  // threshold past the total (rounding): the last entry, as the clamp in torch
            if (c_hit < num_cores) {
                const uint32_t lo = c_hit * slice, hi = (lo + slice < vocab ? lo + slice : vocab);
                const bool subtract = use_residual && plan[b].subtract_q;
                uint32_t one_hot = static_cast<uint32_t>(-1);
                if (subtract && !has_draft_probs) {
                    noc_async_read(get_noc_addr(b, drafts), drafts_l1, k * sizeof(int32_t));
                    noc_async_read_barrier();
                    one_hot = static_cast<uint32_t>(draft[n]);
                }
                bool found = false;
                for (uint32_t v = lo; v < hi && !found; v += chunk) {
                    const uint32_t cnt = (hi - v < chunk ? hi - v : chunk);
                    noc_async_read(get_noc_addr(b * rows + n, logits, v * elem_size), scratch_l1, cnt * elem_size);
                    if (subtract && has_draft_probs) {
                        noc_async_read(get_noc_addr(b * k + n, draft_probs, v * sizeof(float)), scratch_q_l1,
                                       cnt * sizeof(float));
                    }
                    noc_async_read_barrier();
                    for (uint32_t i = 0; i < cnt; ++i) {
                        double p = std::exp(logit_at(scratch_l1, i) / temperature - plan[b].max) / plan[b].sum;
                        if (subtract) {
                            const double q_v = has_draft_probs
                                                   ? reinterpret_cast<volatile tt_l1_ptr float*>(scratch_q_l1)[i]
                                                   : (v + i == one_hot ? 1.0 : 0.0);
                            p = p - q_v > 0.0 ? p - q_v : 0.0;
                        }
                        running += p;
                        if (running > threshold) {
                            token = v + i;
                            found = true;
                            break;
                        }
                    }
                }
                if (!found) {
                    token = hi - 1;
                }
            }
            if (n > 0) {
                noc_async_read(get_noc_addr(b, drafts), drafts_l1, k * sizeof(int32_t));
                noc_async_read_barrier();
                for (int32_t t = 0; t < n; ++t) {
                    out[t] = draft[t];
                }
            }
            out[n] = static_cast<int32_t>(token);
        }
        accepted[b] = n;
        noc_async_write(out_l1, get_noc_addr(b, output), rows * sizeof(int32_t));
        noc_async_write_barrier();  // the staging row is reused for the next sequence
    }
    noc_async_write(accepted_l1, get_noc_addr(0, num_accepted), batch * sizeof(int32_t));
    noc_async_write_barrier();
    cb_pop_front(cb_num_draft, 1);
}
