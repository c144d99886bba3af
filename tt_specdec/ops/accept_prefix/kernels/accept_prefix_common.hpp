// Shared by the host (tt_specdec/ops/accept_prefix/program.py reads these names) and the
// kernels: argument indices, so the two sides cannot drift; and the greedy argmax pass that the
// chain kernels (*_accept_prefix.cpp) and the tree kernels (*_accept_tree.cpp) both run.
#pragma once

#include <cstdint>

#include "api/dataflow/dataflow_api.h"

namespace accept_prefix {

// reader_accept_prefix.cpp runtime args
constexpr uint32_t RT_READER_LOGITS_ADDR = 0;     // logits [B, k+1, V], one page per row
constexpr uint32_t RT_READER_NUM_DRAFT_ADDR = 1;  // num_draft [B] int32, one page
constexpr uint32_t RT_READER_V_START = 2;         // this core's vocabulary slice [v_start, v_end)
constexpr uint32_t RT_READER_V_END = 3;

// reader_accept_prefix.cpp compile-time args
constexpr uint32_t CT_READER_CB_LOGITS = 0;
constexpr uint32_t CT_READER_CB_NUM_DRAFT = 1;
constexpr uint32_t CT_READER_CHUNK = 2;        // vocabulary entries per cb_logits page
constexpr uint32_t CT_READER_BATCH = 3;        // B
constexpr uint32_t CT_READER_ROWS = 4;         // k + 1
constexpr uint32_t CT_READER_LOGITS_TA = 5;    // TensorAccessorArgs of logits (2 args)
constexpr uint32_t CT_READER_NUM_DRAFT_TA = 7; // TensorAccessorArgs of num_draft (2 args)

// writer_accept_prefix.cpp runtime args
constexpr uint32_t RT_WRITER_V_START = 0;
constexpr uint32_t RT_WRITER_V_END = 1;
constexpr uint32_t RT_WRITER_CORE_ID = 2;          // 0 .. num_cores-1; core 0 reduces and writes
constexpr uint32_t RT_WRITER_REDUCE_NOC_X = 3;     // NoC coordinates of core 0
constexpr uint32_t RT_WRITER_REDUCE_NOC_Y = 4;
constexpr uint32_t RT_WRITER_DRAFTS_ADDR = 5;      // draft_tokens [B, k] int32, one page per row
constexpr uint32_t RT_WRITER_NUM_ACCEPTED_ADDR = 6;  // num_accepted [B] int32, one page
constexpr uint32_t RT_WRITER_OUTPUT_ADDR = 7;      // output_tokens [B, k+1] int32, one page per row

// writer_accept_prefix.cpp compile-time args
constexpr uint32_t CT_WRITER_CB_LOGITS = 0;
constexpr uint32_t CT_WRITER_CB_NUM_DRAFT = 1;
constexpr uint32_t CT_WRITER_CB_PARTIAL = 2;   // this core's (value, index) per row
constexpr uint32_t CT_WRITER_CB_GATHER = 3;    // core 0: every core's partials
constexpr uint32_t CT_WRITER_CB_DRAFTS = 4;    // core 0: one row of drafts
constexpr uint32_t CT_WRITER_CB_OUT = 5;       // core 0: one row of output tokens, then num_accepted
constexpr uint32_t CT_WRITER_CHUNK = 6;
constexpr uint32_t CT_WRITER_BATCH = 7;
constexpr uint32_t CT_WRITER_ROWS = 8;
constexpr uint32_t CT_WRITER_NUM_CORES = 9;
constexpr uint32_t CT_WRITER_SEM_PARTIALS = 10;  // semaphore on core 0: partials arrived
constexpr uint32_t CT_WRITER_DRAFTS_TA = 11;       // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_WRITER_NUM_ACCEPTED_TA = 13;
constexpr uint32_t CT_WRITER_OUTPUT_TA = 15;

// reader_accept_tree.cpp runtime args
constexpr uint32_t TRT_READER_LOGITS_ADDR = 0;  // logits [B, T, V], one page per node row
constexpr uint32_t TRT_READER_V_START = 1;      // this core's vocabulary slice [v_start, v_end)
constexpr uint32_t TRT_READER_V_END = 2;

// reader_accept_tree.cpp compile-time args
constexpr uint32_t TCT_READER_CB_LOGITS = 0;
constexpr uint32_t TCT_READER_CHUNK = 1;      // vocabulary entries per cb_logits page
constexpr uint32_t TCT_READER_BATCH = 2;      // B
constexpr uint32_t TCT_READER_NODES = 3;      // T
constexpr uint32_t TCT_READER_LOGITS_TA = 4;  // TensorAccessorArgs of logits (2 args)

// writer_accept_tree.cpp runtime args
constexpr uint32_t TRT_WRITER_V_START = 0;
constexpr uint32_t TRT_WRITER_V_END = 1;
constexpr uint32_t TRT_WRITER_CORE_ID = 2;           // 0 .. num_cores-1; core 0 reduces, walks and writes
constexpr uint32_t TRT_WRITER_REDUCE_NOC_X = 3;      // NoC coordinates of core 0
constexpr uint32_t TRT_WRITER_REDUCE_NOC_Y = 4;
constexpr uint32_t TRT_WRITER_TOKENS_ADDR = 5;       // tree_tokens [B, T] int32, one page per row
constexpr uint32_t TRT_WRITER_PARENTS_ADDR = 6;      // parents [B, T] int32, one page per row
constexpr uint32_t TRT_WRITER_NUM_ACCEPTED_ADDR = 7;  // num_accepted [B] int32, one page
constexpr uint32_t TRT_WRITER_OUTPUT_ADDR = 8;       // output_tokens [B, T] int32, one page per row
constexpr uint32_t TRT_WRITER_SLOTS_ADDR = 9;        // accepted_slots [B, T] int32, one page per row

// writer_accept_tree.cpp compile-time args
constexpr uint32_t TCT_WRITER_CB_LOGITS = 0;
constexpr uint32_t TCT_WRITER_CB_PARTIAL = 1;  // this core's Partial per node row
constexpr uint32_t TCT_WRITER_CB_GATHER = 2;   // core 0: every core's partials
constexpr uint32_t TCT_WRITER_CB_TREE = 3;     // core 0: one row of tree_tokens, then one of parents
constexpr uint32_t TCT_WRITER_CB_OUT = 4;      // core 0: one row of output tokens, one of slots, then num_accepted
constexpr uint32_t TCT_WRITER_CHUNK = 5;
constexpr uint32_t TCT_WRITER_BATCH = 6;
constexpr uint32_t TCT_WRITER_NODES = 7;
constexpr uint32_t TCT_WRITER_NUM_CORES = 8;
constexpr uint32_t TCT_WRITER_SEM_PARTIALS = 9;  // semaphore on core 0: partials arrived
constexpr uint32_t TCT_WRITER_TOKENS_TA = 10;    // TensorAccessorArgs (2 args each)
constexpr uint32_t TCT_WRITER_PARENTS_TA = 12;
constexpr uint32_t TCT_WRITER_NUM_ACCEPTED_TA = 14;
constexpr uint32_t TCT_WRITER_OUTPUT_TA = 16;
constexpr uint32_t TCT_WRITER_SLOTS_TA = 18;

// reader_accept_prefix_sampling.cpp runtime args
constexpr uint32_t SRT_READER_LOGITS_ADDR = 0;       // logits [B, k+1, V], one page per row
constexpr uint32_t SRT_READER_DRAFT_PROBS_ADDR = 1;  // draft_probs [B, k, V] fp32 (unused without them)
constexpr uint32_t SRT_READER_V_START = 2;           // this core's vocabulary slice [v_start, v_end)
constexpr uint32_t SRT_READER_V_END = 3;

// reader_accept_prefix_sampling.cpp compile-time args
constexpr uint32_t SCT_READER_CB_LOGITS = 0;    // one page: this core's slice of one logits row
constexpr uint32_t SCT_READER_CB_Q = 1;         // one page: this core's slice of one draft_probs row
constexpr uint32_t SCT_READER_CB_READ_CMD = 2;  // ReadCommand mailbox, written by core 0
constexpr uint32_t SCT_READER_SEM_READ = 3;     // semaphore on every core: counts ReadCommands
constexpr uint32_t SCT_READER_HAS_DRAFT_PROBS = 4;  // 0: a deterministic drafter, q one-hot on the draft
constexpr uint32_t SCT_READER_LOGITS_TA = 5;    // TensorAccessorArgs (2 args each)
constexpr uint32_t SCT_READER_DRAFT_PROBS_TA = 7;

// writer_accept_prefix_sampling.cpp runtime args
constexpr uint32_t SRT_WRITER_V_START = 0;
constexpr uint32_t SRT_WRITER_V_END = 1;
constexpr uint32_t SRT_WRITER_CORE_ID = 2;         // 0 .. num_cores-1; core 0 decides
constexpr uint32_t SRT_WRITER_REDUCE_NOC_X = 3;    // NoC coordinates of core 0
constexpr uint32_t SRT_WRITER_REDUCE_NOC_Y = 4;
constexpr uint32_t SRT_WRITER_EXP_SCALE = 5;      // c = log2(e) / temperature = scale * 2^-shift (sampling.fixed_params)
constexpr uint32_t SRT_WRITER_EXP_SHIFT = 6;      // shift, an int32
constexpr uint32_t SRT_WRITER_TOP_K = 7;          // 0 (or >= V): no top-k
constexpr uint32_t SRT_WRITER_TOP_P_FIXED = 8;    // ceil(top_p * 2^32); 0: no top-p
constexpr uint32_t SRT_WRITER_LOGITS_ADDR = 9;
constexpr uint32_t SRT_WRITER_DRAFTS_ADDR = 10;
constexpr uint32_t SRT_WRITER_DRAFT_PROBS_ADDR = 11;
constexpr uint32_t SRT_WRITER_SEEDS_ADDR = 12;     // seeds [B] uint32, one page
constexpr uint32_t SRT_WRITER_NUM_DRAFT_ADDR = 13;  // num_draft [B] int32, one page
constexpr uint32_t SRT_WRITER_NUM_ACCEPTED_ADDR = 14;
constexpr uint32_t SRT_WRITER_OUTPUT_ADDR = 15;
constexpr uint32_t SRT_WRITER_NOC_X0 = 16;         // NoC coordinates of every core, x then y
// followed by num_cores (x, y) pairs

// writer_accept_prefix_sampling.cpp compile-time args
constexpr uint32_t SCT_WRITER_CB_LOGITS = 0;     // one page: this core's slice of the current row
constexpr uint32_t SCT_WRITER_CB_Q = 1;          // one page: this core's slice of q's row n
constexpr uint32_t SCT_WRITER_CB_READ_CMD = 2;   // ReadCommand mailbox, then core 0's staging copy
constexpr uint32_t SCT_WRITER_CB_ROUND = 3;      // RoundCommand mailbox, then core 0's staging copy
constexpr uint32_t SCT_WRITER_CB_PARTIAL = 4;    // this core's RoundPartial
constexpr uint32_t SCT_WRITER_CB_GATHER = 5;     // core 0: [num_cores] RoundPartial
constexpr uint32_t SCT_WRITER_CB_DRAFTS = 6;     // core 0: [k] drafts, [B] seeds, [B] num_draft, 32-byte scratch
constexpr uint32_t SCT_WRITER_CB_OUT = 7;        // core 0: [k+1] output tokens, then [B] num_accepted
constexpr uint32_t SCT_WRITER_BATCH = 8;         // B
constexpr uint32_t SCT_WRITER_ROWS = 9;          // k + 1
constexpr uint32_t SCT_WRITER_VOCAB = 10;        // V
constexpr uint32_t SCT_WRITER_NUM_CORES = 11;
constexpr uint32_t SCT_WRITER_SLICE = 12;        // vocabulary entries per core (the last core may have fewer)
constexpr uint32_t SCT_WRITER_HAS_DRAFT_PROBS = 13;
constexpr uint32_t SCT_WRITER_SEM_PARTIALS = 14;  // semaphore on core 0: RoundPartials arrived
constexpr uint32_t SCT_WRITER_SEM_ROUND = 15;     // semaphore on every core: counts RoundCommands
constexpr uint32_t SCT_WRITER_SEM_READ = 16;      // semaphore on every core: counts ReadCommands
constexpr uint32_t SCT_WRITER_LOGITS_TA = 17;     // TensorAccessorArgs (2 args each)
constexpr uint32_t SCT_WRITER_DRAFTS_TA = 19;
constexpr uint32_t SCT_WRITER_DRAFT_PROBS_TA = 21;
constexpr uint32_t SCT_WRITER_SEEDS_TA = 23;
constexpr uint32_t SCT_WRITER_NUM_DRAFT_TA = 25;
constexpr uint32_t SCT_WRITER_NUM_ACCEPTED_TA = 27;
constexpr uint32_t SCT_WRITER_OUTPUT_TA = 29;

// writer_accept_tree_sampling.cpp runtime args (its reader is reader_accept_prefix_sampling.cpp, SRT_READER_*)
constexpr uint32_t STRT_WRITER_V_START = 0;
constexpr uint32_t STRT_WRITER_V_END = 1;
constexpr uint32_t STRT_WRITER_CORE_ID = 2;         // 0 .. num_cores-1; core 0 walks the trees
constexpr uint32_t STRT_WRITER_REDUCE_NOC_X = 3;    // NoC coordinates of core 0
constexpr uint32_t STRT_WRITER_REDUCE_NOC_Y = 4;
constexpr uint32_t STRT_WRITER_EXP_SCALE = 5;      // as SRT_WRITER_EXP_SCALE
constexpr uint32_t STRT_WRITER_EXP_SHIFT = 6;
constexpr uint32_t STRT_WRITER_TOP_K = 7;
constexpr uint32_t STRT_WRITER_TOP_P_FIXED = 8;
constexpr uint32_t STRT_WRITER_TOKENS_ADDR = 9;       // tree_tokens [B, T] int32, one page per row
constexpr uint32_t STRT_WRITER_PARENTS_ADDR = 10;     // parents [B, T] int32, one page per row
constexpr uint32_t STRT_WRITER_DRAFT_PROBS_ADDR = 11;  // draft_probs [B, T, V] fp32 (unused without them)
constexpr uint32_t STRT_WRITER_SEEDS_ADDR = 12;       // seeds [B] uint32, one page
constexpr uint32_t STRT_WRITER_NUM_ACCEPTED_ADDR = 13;  // num_accepted [B] int32, one page
constexpr uint32_t STRT_WRITER_OUTPUT_ADDR = 14;      // output_tokens [B, T] int32, one page per row
constexpr uint32_t STRT_WRITER_SLOTS_ADDR = 15;       // accepted_slots [B, T] int32, one page per row
constexpr uint32_t STRT_WRITER_NOC_X0 = 16;           // NoC coordinates of every core, x then y
// followed by num_cores (x, y) pairs

// writer_accept_tree_sampling.cpp compile-time args
constexpr uint32_t STCT_WRITER_CB_LOGITS = 0;     // one page: this core's slice of the current node row
constexpr uint32_t STCT_WRITER_CB_Q = 1;          // one page: this core's slice of a rejected node's q
constexpr uint32_t STCT_WRITER_CB_READ_CMD = 2;   // ReadCommand mailbox, then core 0's staging copy
constexpr uint32_t STCT_WRITER_CB_ROUND = 3;      // RoundCommand mailbox, then core 0's staging copy
constexpr uint32_t STCT_WRITER_CB_PARTIAL = 4;    // this core's RoundPartial
constexpr uint32_t STCT_WRITER_CB_GATHER = 5;     // core 0: [num_cores] RoundPartial
constexpr uint32_t STCT_WRITER_CB_RESIDUAL = 6;   // two [slice] uint32 buffers: the kept residual r
constexpr uint32_t STCT_WRITER_CB_TREE = 7;       // core 0: 32-byte scratch, [T] tokens, [T] parents, [B] seeds
constexpr uint32_t STCT_WRITER_CB_OUT = 8;        // core 0: [T] output tokens, [T] slots, then [B] num_accepted
constexpr uint32_t STCT_WRITER_BATCH = 9;         // B
constexpr uint32_t STCT_WRITER_NODES = 10;        // T
constexpr uint32_t STCT_WRITER_VOCAB = 11;        // V
constexpr uint32_t STCT_WRITER_NUM_CORES = 12;
constexpr uint32_t STCT_WRITER_SLICE = 13;        // vocabulary entries per core (the last core may have fewer)
constexpr uint32_t STCT_WRITER_HAS_DRAFT_PROBS = 14;
constexpr uint32_t STCT_WRITER_SEM_PARTIALS = 15;  // semaphore on core 0: RoundPartials arrived
constexpr uint32_t STCT_WRITER_SEM_ROUND = 16;     // semaphore on every core: counts RoundCommands
constexpr uint32_t STCT_WRITER_SEM_READ = 17;      // semaphore on every core: counts ReadCommands
constexpr uint32_t STCT_WRITER_TOKENS_TA = 18;     // TensorAccessorArgs (2 args each)
constexpr uint32_t STCT_WRITER_PARENTS_TA = 20;
constexpr uint32_t STCT_WRITER_DRAFT_PROBS_TA = 22;
constexpr uint32_t STCT_WRITER_SEEDS_TA = 24;
constexpr uint32_t STCT_WRITER_NUM_ACCEPTED_TA = 26;
constexpr uint32_t STCT_WRITER_OUTPUT_TA = 28;
constexpr uint32_t STCT_WRITER_SLOTS_TA = 30;

constexpr int32_t PLACEHOLDER = -1;  // padding of output_tokens, num_accepted of a skipped row
constexpr uint32_t MAX_ROWS = 32;    // k + 1 <= 32: one tile row-block of target rows

// One row's running argmax on one core (its argmax_key and the index): the gather CB holds
// num_cores arrays of [B * (k+1)].
struct Partial {
    uint32_t key;
    uint32_t index;
};

// Effective k of a row from num_draft: -1 (or below) a finished row, at most k. A value past k from a
// bad tensor would otherwise walk the loops past the drafts and the logits rows.
constexpr uint32_t align_up(uint32_t bytes, uint32_t align) { return (bytes + align - 1) / align * align; }

inline int32_t clamp_num_draft(int32_t num_draft, uint32_t k) {
    return num_draft > static_cast<int32_t>(k) ? static_cast<int32_t>(k) : num_draft;
}

// Sampling. Logits are ordered by an unsigned key (a larger logit has a larger key, -0 and +0
// share one), 16 bits for bf16 and 32 for fp32. The k-th largest logit and the top-p threshold
// are found by radix select over the key, RADIX_BITS per round, most significant digit first.
constexpr uint32_t RADIX_BITS = 8;
constexpr uint32_t RADIX_BINS = 1u << RADIX_BITS;
constexpr uint32_t MAX_SAMPLING_CORES = 8;  // RoundCommand carries one tie quota per core
constexpr uint32_t NO_TOKEN = 0xFFFFFFFFu;  // RoundCommand::draft of the bonus row

inline uint32_t fp32_key(uint32_t bits) {
    bits = (bits << 1) == 0 ? 0 : bits;  // -0 sorts as +0: they are equal logits
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}
inline uint32_t fp32_key_bits(uint32_t key) { return (key & 0x80000000u) ? key & 0x7FFFFFFFu : ~key; }
inline uint32_t bf16_key(uint32_t bits) {
    bits = (bits & 0x7FFFu) == 0 ? 0 : bits;
    return (bits & 0x8000u) ? ~bits & 0xFFFFu : bits | 0x8000u;
}
inline uint32_t bf16_key_bits(uint32_t key) { return (key & 0x8000u) ? key & 0x7FFFu : ~key & 0xFFFFu; }

// Greedy argmax order, ttnn's (reduction/argmax/device/kernels/argmax_common.hpp, argmax_*_greater) and
// torch.argmax's: a NaN outranks every number and the first NaN keeps its place, +0 equals -0,
// otherwise the larger logit; ties keep the lower index (strictly greater replaces). Integer compares
// only: the data-movement RISC-Vs are RV32IM without an FPU.
// The key is the sign-magnitude value made offset binary without branches: middle + magnitude, or
// middle - magnitude when negative (both zeros land on the middle); a NaN takes the top key.
constexpr uint32_t NAN_KEY = 0xFFFFFFFFu;
inline uint32_t fp32_argmax_key(uint32_t bits) {
    const uint32_t mag = bits & 0x7FFFFFFFu, neg = 0u - (bits >> 31);
    return mag > 0x7F800000u ? NAN_KEY : 0x80000000u + ((mag ^ neg) - neg);
}
inline uint32_t bf16_argmax_key(uint32_t bits) {
    const uint32_t mag = bits & 0x7FFFu, neg = 0u - ((bits >> 15) & 1u);
    return mag > 0x7F80u ? NAN_KEY : 0x8000u + ((mag ^ neg) - neg);
}

// ---- The greedy argmax pass, chain and tree alike: each core's reader streams its vocabulary slice
// of the rows, its writer reduces them to one Partial per row, core 0 gathers every core's. ----------

// One gather page: a core's Partials of `rows` rows (the host sizes cb_partial / cb_gather alike).
constexpr uint32_t partials_bytes(uint32_t rows) { return align_up(rows * sizeof(Partial), 16); }

// Reader: [v_start, v_end) of logits page `page` into cb_logits, one chunk per CB page. The slice's
// byte offset is DRAM-aligned because the host splits V in multiples of 32 entries.
template <uint32_t cb_logits, uint32_t chunk, uint32_t elem_size, typename Accessor>
inline void read_row_slice(const Accessor& logits, uint32_t page, uint32_t v_start, uint32_t v_end) {
    for (uint32_t v = v_start; v < v_end; v += chunk) {
        const uint32_t n = (v_end - v < chunk ? v_end - v : chunk);
        cb_reserve_back(cb_logits, 1);  // wait for one free page
        noc_async_read(get_noc_addr(page, logits, v * elem_size), get_write_ptr(cb_logits), n * elem_size);
        noc_async_read_barrier();  // the chunk has landed
        cb_push_back(cb_logits, 1);  // hand it to the writer
    }
}

// One chunk into the running argmax: first the chunk's top key in a branch-light pass, then, only when
// it beats the best so far (rare after the first chunks), the first index holding it. Ties keep the
// earlier index: an equal key never replaces.
template <typename Vals, typename KeyOf>
inline void scan_chunk(Vals vals, uint32_t n, uint32_t v, KeyOf key_of, Partial& best) {
    uint32_t top = 0, top_odd = 0;  // two running maxima: half the loop steps
    uint32_t i = 0;
    for (; i + 1 < n; i += 2) {
        const uint32_t even = key_of(vals[i]), odd = key_of(vals[i + 1]);
        top = even > top ? even : top;
        top_odd = odd > top_odd ? odd : top_odd;
    }
    if (i < n) {
        const uint32_t key = key_of(vals[i]);
        top = key > top ? key : top;
    }
    top = top_odd > top ? top_odd : top;
    if (top > best.key) {
        uint32_t i = 0;
        while (key_of(vals[i]) != top) {
            ++i;
        }
        best.key = top;
        best.index = v + i;
    }
}

// Writer: the argmax of one row's slice [v_start, v_end), consuming the chunks its reader pushed.
template <uint32_t cb_logits, uint32_t chunk>
inline Partial argmax_row_slice(uint32_t v_start, uint32_t v_end) {
    constexpr DataFormat logits_format = get_dataformat(cb_logits);
    static_assert(logits_format == DataFormat::Float16_b || logits_format == DataFormat::Float32,
                  "logits must be bf16 or fp32");
    Partial best{0, v_start};  // key 0 is below every key: the first entry always takes it
    for (uint32_t v = v_start; v < v_end; v += chunk) {
        const uint32_t n = (v_end - v < chunk ? v_end - v : chunk);
        cb_wait_front(cb_logits, 1);  // one chunk of the row
        const uint32_t l1 = get_read_ptr(cb_logits);
        if constexpr (logits_format == DataFormat::Float16_b) {
            scan_chunk(reinterpret_cast<volatile tt_l1_ptr uint16_t*>(l1), n, v, bf16_argmax_key, best);
        } else {
            scan_chunk(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(l1), n, v, fp32_argmax_key, best);
        }
        cb_pop_front(cb_logits, 1);  // free the page for the reader
    }
    return best;
}

// Writer: this core's partials (one gather page at partial_l1) to slot core_id of core 0's gather CB
// (the same L1 address on every core), then counted in on core 0's semaphore at sem_l1.
inline void send_partials(uint32_t partial_l1, uint32_t gather_l1, uint32_t page_bytes, uint32_t core_id,
                          uint32_t reduce_noc_x, uint32_t reduce_noc_y, uint32_t sem_l1) {
    noc_async_write(partial_l1, get_noc_addr(reduce_noc_x, reduce_noc_y, gather_l1 + core_id * page_bytes),
                    page_bytes);
    noc_async_write_barrier();  // data lands before the count
    noc_semaphore_inc(get_noc_addr(reduce_noc_x, reduce_noc_y, sem_l1), 1);
    noc_async_atomic_barrier();  // acked before this core goes on or exits (the firmware asserts it at exit)
}

// Core 0: the argmax of row `row` over every core's partial, in core order: a later core wins only with
// a strictly greater key, so ties keep the lowest index (torch.argmax's first maximum).
template <uint32_t num_cores>
inline int32_t gathered_argmax(uint32_t gather_l1, uint32_t page_bytes, uint32_t row) {
    uint32_t best = 0;
    uint32_t best_index = 0;
    for (uint32_t c = 0; c < num_cores; ++c) {
        volatile tt_l1_ptr Partial* p = reinterpret_cast<volatile tt_l1_ptr Partial*>(gather_l1 + c * page_bytes) + row;
        if (c == 0 || p->key > best) {
            best = p->key;
            best_index = p->index;
        }
    }
    return static_cast<int32_t>(best_index);
}

// ---- Core 0's staging in the tree writers, greedy and sampled: one sequence's [T] tree_tokens and [T] parents
// read in at tree_l1, its [T] output tokens and [T] accepted slots written out from out_l1, then every sequence's
// num_accepted behind them. Slots row_slot apart: each takes a DRAM read or write at its start. ---------------
template <uint32_t nodes>
struct TreeStaging {
    static constexpr uint32_t row_bytes = nodes * sizeof(int32_t);
    static constexpr uint32_t row_slot = align_up(row_bytes, DRAM_ALIGNMENT);
    static constexpr uint32_t tree_bytes = 2 * row_slot;  // at tree_l1: tokens, parents

    const uint32_t tree_l1, out_l1;
    volatile tt_l1_ptr int32_t* const token;
    volatile tt_l1_ptr int32_t* const parent;
    volatile tt_l1_ptr int32_t* const out;
    volatile tt_l1_ptr int32_t* const slot;
    volatile tt_l1_ptr int32_t* const accepted;  // [B] num_accepted

    TreeStaging(uint32_t tree_l1, uint32_t out_l1)
        : tree_l1(tree_l1),
          out_l1(out_l1),
          token(reinterpret_cast<volatile tt_l1_ptr int32_t*>(tree_l1)),
          parent(reinterpret_cast<volatile tt_l1_ptr int32_t*>(tree_l1 + row_slot)),
          out(reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1)),
          slot(reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1 + row_slot)),
          accepted(reinterpret_cast<volatile tt_l1_ptr int32_t*>(out_l1 + 2 * row_slot)) {}

    // sequence b's tokens and parents in; its outputs reset: PLACEHOLDER, and slots the identity (past the path
    // rollback copies nothing)
    template <typename TokensAccessor, typename ParentsAccessor>
    void read(uint32_t b, const TokensAccessor& tokens, const ParentsAccessor& parents) {
        noc_async_read(get_noc_addr(b, tokens), tree_l1, row_bytes);
        noc_async_read(get_noc_addr(b, parents), tree_l1 + row_slot, row_bytes);
        for (uint32_t t = 0; t < nodes; ++t) {
            out[t] = PLACEHOLDER;
            slot[t] = static_cast<int32_t>(t);
        }
        noc_async_read_barrier();
    }

    // sequence b's path of n accepted nodes: out[0 .. n] and slot[0 .. n] filled by the walk
    template <typename OutputAccessor, typename SlotsAccessor>
    void write(uint32_t b, uint32_t n, const OutputAccessor& output, const SlotsAccessor& slots) {
        accepted[b] = static_cast<int32_t>(n);
        noc_async_write(out_l1, get_noc_addr(b, output), row_bytes);
        noc_async_write(out_l1 + row_slot, get_noc_addr(b, slots), row_bytes);
        noc_async_write_barrier();  // the staging rows are reused for the next sequence
    }

    template <typename Accessor>
    void write_num_accepted(const Accessor& num_accepted, uint32_t batch) {
        noc_async_write(out_l1 + 2 * row_slot, get_noc_addr(0, num_accepted), batch * sizeof(int32_t));
        noc_async_write_barrier();
    }
};

// core 0 -> every core's reader: what to bring into L1 next
enum ReadOp : uint32_t { READ_ROW = 1, READ_Q = 2, READ_DONE = 3 };
struct ReadCommand {
    uint32_t op;
    // READ_ROW: logits page b * (k+1) + t (a tree: b * T + node);
    // READ_Q: draft_probs page b * k + n (a tree: b * T + the rejected node)
    uint32_t page;
    uint32_t pad[2];
};

// core 0 -> every core's writer: one round of work on the row held in L1
enum RoundOp : uint32_t {
    ROUND_START = 1,  // new row: max key, the draft's logit and tie rank [, top-k digit histogram]
    ROUND_TOP_K,      // count histogram of the next digit (top-k)
    ROUND_MASS,       // sum of the weights w over the top-k set [, top-p digit histogram]
    ROUND_TOP_P,      // mass histogram of the next digit (top-p)
    ROUND_RESIDUAL,   // residual and p masses of the slice
    ROUND_SAMPLE,     // the core holding the sample scans its slice for it
    ROUND_DONE,
    // the tree's rounds (writer_accept_tree_sampling.cpp): r kept in L1 across sibling rejections
    ROUND_KEEP,         // top-p: the kept r (MASS's top-k weights) cut at the nucleus key and quotas; its sum
    ROUND_SUBTRACT,     // r' = max(0, r - floor(q * z)) into the other buffer; its sum, r and r' at the probe
    ROUND_SAMPLE_KEPT,  // the core holding the sample scans its kept r for it
};
enum Residual : uint32_t { RESIDUAL_P = 0, RESIDUAL_Q = 1, RESIDUAL_ONE_HOT = 2 };  // what is subtracted from p
enum Histogram : uint32_t { HIST_NONE = 0, HIST_COUNT = 1, HIST_MASS = 2 };

struct RoundCommand {
    uint32_t op;           // RoundOp
    uint32_t draft;        // d_t of this row (NO_TOKEN on the bonus row)
    uint32_t histogram;    // Histogram of keys >= kth_key and under `prefix`, binned by digit `shift`
    uint32_t shift;
    uint32_t prefix;       // key digits decided above `shift`
    uint32_t kth_key;      // top-k set: key >= kth_key (0 keeps every token)
    uint32_t nucleus_key;  // top-p set: key > nucleus_key, and the first tie_quota[c] with key == nucleus_key
    uint32_t residual;     // Residual
    uint32_t sample_core;  // ROUND_SAMPLE: the core whose slice holds the sample
    uint32_t max_key;      // the row's largest key: every weight is fixed_weight(logit, its logit)
    uint64_t z;            // ROUND_RESIDUAL / ROUND_SAMPLE: p(v) = w(v) / z on the kept set
    uint64_t threshold;    // ROUND_SAMPLE: the first token where the running sum exceeds it
    uint64_t running;      // ROUND_SAMPLE: the sum over the slices before sample_core
    uint32_t buffer;       // tree rounds: which of the two kept-residual buffers holds r (the other takes the next)
    uint32_t probe;        // ROUND_SUBTRACT: the token whose r before and after the owner reports (NO_TOKEN: none)
    uint64_t pad;
    uint32_t tie_quota[MAX_SAMPLING_CORES];
};

struct Bin {
    uint32_t count;
    uint32_t pad;
    uint64_t mass;  // sum of w (HIST_MASS)
};

// every core -> core 0, one per round; bins are sent only in histogram rounds
struct RoundPartial {
    uint32_t max_key;     // ROUND_START
    uint32_t draft_key;   // ROUND_START, the core holding the draft: its key
    uint32_t draft_rank;  // ... and how many earlier tokens of this slice share that key
    uint32_t token;       // ROUND_SAMPLE
    uint64_t mass;        // ROUND_MASS: sum of w over the top-k set; ROUND_RESIDUAL: residual sum
    uint64_t p_mass;      // ROUND_RESIDUAL: sum of p's weights
    uint32_t probe_kept;      // ROUND_SUBTRACT, the core holding the probe: r at it before the round
    uint32_t probe_residual;  // ... and after
    uint64_t pad;
    Bin bins[RADIX_BINS];
};
constexpr uint32_t ROUND_PARTIAL_HEADER = sizeof(RoundPartial) - RADIX_BINS * sizeof(Bin);
// sizes the host gives the mailboxes and the gather CB (tt_specdec/ops/accept_prefix_program.py)
constexpr uint32_t READ_COMMAND_BYTES = 16;
constexpr uint32_t ROUND_COMMAND_BYTES = 112;
constexpr uint32_t ROUND_PARTIAL_BYTES = 4144;
static_assert(sizeof(ReadCommand) == READ_COMMAND_BYTES && sizeof(RoundCommand) == ROUND_COMMAND_BYTES &&
                  sizeof(RoundPartial) == ROUND_PARTIAL_BYTES,
              "the host sizes L1 with these: update them together");

// Counter-based uniforms of tt_specdec/ops/sampling.py, bit for bit.
constexpr uint32_t STREAM_ACCEPT = 2;
constexpr uint32_t STREAM_SAMPLE = 3;

inline uint32_t mix32(uint32_t x) {  // lowbias32 (C. Wellons)
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

// U of the uniform U / 2^24 (tt_specdec/sampling.py, uniform_bits)
inline uint32_t uniform_bits(uint32_t seed, uint32_t stream, uint32_t index) {
    uint32_t h = mix32(seed);
    h = mix32(h ^ (stream * 0x9E3779B9u));
    h = mix32(h ^ (index * 0x9E3779B9u));
    return h >> 8;
}

// ---- speculative sampling's accept rule in integers: tt_specdec/sampling.py, fixed_params (steps 1-10) -------
// Bit for bit that procedure; integer only (the data-movement RISC-Vs are RV32IM without an FPU): 32 x 32 -> 64
// multiplies, 64-bit adds and shifts, no division.
constexpr int32_t X_FRAC = 24;      // fractional bits of x
constexpr int32_t ALIGN_BITS = 38;  // a difference's larger-exponent logit is shifted left by this much
constexpr uint32_t W_ONE = 1u << 31;  // the weight of the largest logit
constexpr uint32_t ONE_BITS = 0x3F800000u;  // 1.0f: q of a drafter without probabilities

// round(2^31 * 2^(-i / 2^8)): sampling.exp2_tables (tests/emu/test_emu_accept_prefix_sampling.py compares)
constexpr uint32_t EXP2_T1[256] = {
    2147483648u, 2141676973u, 2135885998u, 2130110682u, 2124350982u, 2118606857u, 2112878262u, 2107165158u,
    2101467502u, 2095785251u, 2090118366u, 2084466803u, 2078830522u, 2073209480u, 2067603638u, 2062012954u,
    2056437387u, 2050876895u, 2045331439u, 2039800978u, 2034285470u, 2028784876u, 2023299156u, 2017828268u,
    2012372174u, 2006930832u, 2001504204u, 1996092249u, 1990694927u, 1985312200u, 1979944027u, 1974590370u,
    1969251188u, 1963926443u, 1958616096u, 1953320108u, 1948038440u, 1942771053u, 1937517909u, 1932278970u,
    1927054196u, 1921843549u, 1916646992u, 1911464486u, 1906295993u, 1901141476u, 1896000896u, 1890874216u,
    1885761398u, 1880662405u, 1875577199u, 1870505744u, 1865448001u, 1860403934u, 1855373507u, 1850356681u,
    1845353420u, 1840363688u, 1835387448u, 1830424663u, 1825475297u, 1820539314u, 1815616678u, 1810707353u,
    1805811301u, 1800928489u, 1796058879u, 1791202437u, 1786359126u, 1781528911u, 1776711757u, 1771907628u,
    1767116489u, 1762338305u, 1757573041u, 1752820662u, 1748081133u, 1743354420u, 1738640488u, 1733939301u,
    1729250827u, 1724575029u, 1719911875u, 1715261330u, 1710623359u, 1705997930u, 1701385007u, 1696784557u,
    1692196547u, 1687620943u, 1683057710u, 1678506817u, 1673968228u, 1669441912u, 1664927835u, 1660425963u,
    1655936265u, 1651458706u, 1646993254u, 1642539877u, 1638098541u, 1633669214u, 1629251865u, 1624846459u,
    1620452965u, 1616071351u, 1611701585u, 1607343634u, 1602997467u, 1598663052u, 1594340357u, 1590029350u,
    1585730000u, 1581442275u, 1577166143u, 1572901575u, 1568648537u, 1564406999u, 1560176931u, 1555958300u,
    1551751076u, 1547555228u, 1543370725u, 1539197537u, 1535035634u, 1530884983u, 1526745556u, 1522617322u,
    1518500250u, 1514394310u, 1510299473u, 1506215708u, 1502142985u, 1498081275u, 1494030547u, 1489990772u,
    1485961921u, 1481943963u, 1477936870u, 1473940611u, 1469955159u, 1465980482u, 1462016553u, 1458063343u,
    1454120821u, 1450188960u, 1446267730u, 1442357104u, 1438457051u, 1434567544u, 1430688553u, 1426820052u,
    1422962010u, 1419114401u, 1415277195u, 1411450365u, 1407633882u, 1403827719u, 1400031848u, 1396246240u,
    1392470869u, 1388705706u, 1384950723u, 1381205894u, 1377471191u, 1373746586u, 1370032052u, 1366327563u,
    1362633090u, 1358948606u, 1355274085u, 1351609500u, 1347954824u, 1344310030u, 1340675091u, 1337049980u,
    1333434672u, 1329829140u, 1326233356u, 1322647296u, 1319070932u, 1315504238u, 1311947188u, 1308399756u,
    1304861917u, 1301333643u, 1297814910u, 1294305692u, 1290805962u, 1287315695u, 1283834865u, 1280363448u,
    1276901417u, 1273448747u, 1270005413u, 1266571390u, 1263146652u, 1259731174u, 1256324931u, 1252927899u,
    1249540052u, 1246161366u, 1242791816u, 1239431376u, 1236080024u, 1232737732u, 1229404479u, 1226080238u,
    1222764986u, 1219458698u, 1216161350u, 1212872918u, 1209593378u, 1206322705u, 1203060876u, 1199807867u,
    1196563654u, 1193328213u, 1190101520u, 1186883552u, 1183674286u, 1180473697u, 1177281762u, 1174098458u,
    1170923762u, 1167757650u, 1164600099u, 1161451085u, 1158310587u, 1155178580u, 1152055042u, 1148939949u,
    1145833280u, 1142735011u, 1139645120u, 1136563583u, 1133490379u, 1130425485u, 1127368878u, 1124320536u,
    1121280436u, 1118248556u, 1115224875u, 1112209370u, 1109202018u, 1106202798u, 1103211687u, 1100228665u,
    1097253708u, 1094286796u, 1091327906u, 1088377016u, 1085434106u, 1082499153u, 1079572136u, 1076653033u};
// round(2^31 * 2^(-i / 2^16))
constexpr uint32_t EXP2_T2[256] = {
    2147483648u, 2147460935u, 2147438222u, 2147415510u, 2147392798u, 2147370086u, 2147347374u, 2147324663u,
    2147301951u, 2147279240u, 2147256530u, 2147233819u, 2147211109u, 2147188399u, 2147165689u, 2147142979u,
    2147120270u, 2147097561u, 2147074852u, 2147052143u, 2147029435u, 2147006727u, 2146984019u, 2146961311u,
    2146938604u, 2146915897u, 2146893190u, 2146870483u, 2146847777u, 2146825071u, 2146802365u, 2146779659u,
    2146756953u, 2146734248u, 2146711543u, 2146688838u, 2146666134u, 2146643430u, 2146620726u, 2146598022u,
    2146575318u, 2146552615u, 2146529912u, 2146507209u, 2146484506u, 2146461804u, 2146439102u, 2146416400u,
    2146393698u, 2146370997u, 2146348296u, 2146325595u, 2146302894u, 2146280194u, 2146257494u, 2146234794u,
    2146212094u, 2146189395u, 2146166695u, 2146143996u, 2146121298u, 2146098599u, 2146075901u, 2146053203u,
    2146030505u, 2146007807u, 2145985110u, 2145962413u, 2145939716u, 2145917019u, 2145894323u, 2145871627u,
    2145848931u, 2145826236u, 2145803540u, 2145780845u, 2145758150u, 2145735455u, 2145712761u, 2145690067u,
    2145667373u, 2145644679u, 2145621986u, 2145599292u, 2145576599u, 2145553907u, 2145531214u, 2145508522u,
    2145485830u, 2145463138u, 2145440446u, 2145417755u, 2145395064u, 2145372373u, 2145349683u, 2145326992u,
    2145304302u, 2145281612u, 2145258923u, 2145236233u, 2145213544u, 2145190855u, 2145168166u, 2145145478u,
    2145122790u, 2145100102u, 2145077414u, 2145054727u, 2145032039u, 2145009352u, 2144986666u, 2144963979u,
    2144941293u, 2144918607u, 2144895921u, 2144873235u, 2144850550u, 2144827865u, 2144805180u, 2144782496u,
    2144759811u, 2144737127u, 2144714443u, 2144691760u, 2144669076u, 2144646393u, 2144623710u, 2144601027u,
    2144578345u, 2144555663u, 2144532981u, 2144510299u, 2144487618u, 2144464936u, 2144442255u, 2144419575u,
    2144396894u, 2144374214u, 2144351534u, 2144328854u, 2144306175u, 2144283495u, 2144260816u, 2144238137u,
    2144215459u, 2144192780u, 2144170102u, 2144147424u, 2144124747u, 2144102069u, 2144079392u, 2144056715u,
    2144034038u, 2144011362u, 2143988686u, 2143966010u, 2143943334u, 2143920659u, 2143897983u, 2143875308u,
    2143852634u, 2143829959u, 2143807285u, 2143784611u, 2143761937u, 2143739263u, 2143716590u, 2143693917u,
    2143671244u, 2143648572u, 2143625899u, 2143603227u, 2143580555u, 2143557884u, 2143535212u, 2143512541u,
    2143489870u, 2143467199u, 2143444529u, 2143421859u, 2143399189u, 2143376519u, 2143353850u, 2143331180u,
    2143308511u, 2143285843u, 2143263174u, 2143240506u, 2143217838u, 2143195170u, 2143172502u, 2143149835u,
    2143127168u, 2143104501u, 2143081834u, 2143059168u, 2143036502u, 2143013836u, 2142991170u, 2142968505u,
    2142945840u, 2142923175u, 2142900510u, 2142877846u, 2142855181u, 2142832518u, 2142809854u, 2142787190u,
    2142764527u, 2142741864u, 2142719201u, 2142696539u, 2142673876u, 2142651214u, 2142628553u, 2142605891u,
    2142583230u, 2142560569u, 2142537908u, 2142515247u, 2142492587u, 2142469927u, 2142447267u, 2142424607u,
    2142401948u, 2142379288u, 2142356629u, 2142333971u, 2142311312u, 2142288654u, 2142265996u, 2142243338u,
    2142220681u, 2142198024u, 2142175367u, 2142152710u, 2142130053u, 2142107397u, 2142084741u, 2142062085u,
    2142039429u, 2142016774u, 2141994119u, 2141971464u, 2141948809u, 2141926155u, 2141903501u, 2141880847u,
    2141858193u, 2141835540u, 2141812887u, 2141790234u, 2141767581u, 2141744929u, 2141722276u, 2141699624u};
// round(2^31 * 2^(-i / 2^24))
constexpr uint32_t EXP2_T3[256] = {
    2147483648u, 2147483559u, 2147483471u, 2147483382u, 2147483293u, 2147483204u, 2147483116u, 2147483027u,
    2147482938u, 2147482849u, 2147482761u, 2147482672u, 2147482583u, 2147482495u, 2147482406u, 2147482317u,
    2147482228u, 2147482140u, 2147482051u, 2147481962u, 2147481874u, 2147481785u, 2147481696u, 2147481607u,
    2147481519u, 2147481430u, 2147481341u, 2147481252u, 2147481164u, 2147481075u, 2147480986u, 2147480898u,
    2147480809u, 2147480720u, 2147480631u, 2147480543u, 2147480454u, 2147480365u, 2147480277u, 2147480188u,
    2147480099u, 2147480010u, 2147479922u, 2147479833u, 2147479744u, 2147479655u, 2147479567u, 2147479478u,
    2147479389u, 2147479301u, 2147479212u, 2147479123u, 2147479034u, 2147478946u, 2147478857u, 2147478768u,
    2147478680u, 2147478591u, 2147478502u, 2147478413u, 2147478325u, 2147478236u, 2147478147u, 2147478058u,
    2147477970u, 2147477881u, 2147477792u, 2147477704u, 2147477615u, 2147477526u, 2147477437u, 2147477349u,
    2147477260u, 2147477171u, 2147477083u, 2147476994u, 2147476905u, 2147476816u, 2147476728u, 2147476639u,
    2147476550u, 2147476461u, 2147476373u, 2147476284u, 2147476195u, 2147476107u, 2147476018u, 2147475929u,
    2147475840u, 2147475752u, 2147475663u, 2147475574u, 2147475486u, 2147475397u, 2147475308u, 2147475219u,
    2147475131u, 2147475042u, 2147474953u, 2147474864u, 2147474776u, 2147474687u, 2147474598u, 2147474510u,
    2147474421u, 2147474332u, 2147474243u, 2147474155u, 2147474066u, 2147473977u, 2147473889u, 2147473800u,
    2147473711u, 2147473622u, 2147473534u, 2147473445u, 2147473356u, 2147473267u, 2147473179u, 2147473090u,
    2147473001u, 2147472913u, 2147472824u, 2147472735u, 2147472646u, 2147472558u, 2147472469u, 2147472380u,
    2147472292u, 2147472203u, 2147472114u, 2147472025u, 2147471937u, 2147471848u, 2147471759u, 2147471670u,
    2147471582u, 2147471493u, 2147471404u, 2147471316u, 2147471227u, 2147471138u, 2147471049u, 2147470961u,
    2147470872u, 2147470783u, 2147470695u, 2147470606u, 2147470517u, 2147470428u, 2147470340u, 2147470251u,
    2147470162u, 2147470073u, 2147469985u, 2147469896u, 2147469807u, 2147469719u, 2147469630u, 2147469541u,
    2147469452u, 2147469364u, 2147469275u, 2147469186u, 2147469098u, 2147469009u, 2147468920u, 2147468831u,
    2147468743u, 2147468654u, 2147468565u, 2147468476u, 2147468388u, 2147468299u, 2147468210u, 2147468122u,
    2147468033u, 2147467944u, 2147467855u, 2147467767u, 2147467678u, 2147467589u, 2147467501u, 2147467412u,
    2147467323u, 2147467234u, 2147467146u, 2147467057u, 2147466968u, 2147466879u, 2147466791u, 2147466702u,
    2147466613u, 2147466525u, 2147466436u, 2147466347u, 2147466258u, 2147466170u, 2147466081u, 2147465992u,
    2147465904u, 2147465815u, 2147465726u, 2147465637u, 2147465549u, 2147465460u, 2147465371u, 2147465282u,
    2147465194u, 2147465105u, 2147465016u, 2147464928u, 2147464839u, 2147464750u, 2147464661u, 2147464573u,
    2147464484u, 2147464395u, 2147464307u, 2147464218u, 2147464129u, 2147464040u, 2147463952u, 2147463863u,
    2147463774u, 2147463685u, 2147463597u, 2147463508u, 2147463419u, 2147463331u, 2147463242u, 2147463153u,
    2147463064u, 2147462976u, 2147462887u, 2147462798u, 2147462710u, 2147462621u, 2147462532u, 2147462443u,
    2147462355u, 2147462266u, 2147462177u, 2147462088u, 2147462000u, 2147461911u, 2147461822u, 2147461734u,
    2147461645u, 2147461556u, 2147461467u, 2147461379u, 2147461290u, 2147461201u, 2147461113u, 2147461024u};

// fp32 bits -> |value| = significand * 2^-sh (step 1; the sign is the caller's)
inline uint32_t fp32_significand(uint32_t bits, int32_t& sh) {
    const uint32_t field = (bits >> 23) & 0xFFu;
    sh = 150 - static_cast<int32_t>(field ? field : 1u);
    return (bits & 0x7FFFFFu) | (field ? 0x800000u : 0u);
}

// a * 2^(e - e0): a left shift (e - e0 <= ALIGN_BITS keeps it below 2^62) or an arithmetic right shift (floor)
inline int64_t at_exponent(uint32_t bits, int32_t e0) {
    int32_t sh;
    const int64_t a = static_cast<int64_t>(fp32_significand(bits, sh)) * ((bits >> 31) ? -1 : 1);
    const int32_t up = -sh - e0;
    if (up >= 0) {
        return static_cast<int64_t>(static_cast<uint64_t>(a) << up);
    }
    return a >> (-up > 63 ? 63 : -up);
}

inline uint32_t bit_length(uint64_t x) {
    const uint32_t hi = static_cast<uint32_t>(x >> 32), lo = static_cast<uint32_t>(x);
    return hi ? 64u - __builtin_clz(hi) : (lo ? 32u - __builtin_clz(lo) : 0u);
}

// w = 2^31 * 2^-x, x = (s_max - s) * log2(e) / temperature, from the fp32 bits of s and s_max (steps 2-4)
inline uint32_t fixed_weight(uint32_t bits, uint32_t max_bits, uint32_t scale, int32_t shift) {
    int32_t sh, sh_max;
    fp32_significand(bits, sh);
    fp32_significand(max_bits, sh_max);
    const int32_t e0 = (sh < sh_max ? -sh : -sh_max) - ALIGN_BITS;
    const uint64_t d = static_cast<uint64_t>(at_exponent(max_bits, e0) - at_exponent(bits, e0));  // [0, 2^63)
    if (d == 0) {
        return W_ONE;
    }
    const uint32_t length = bit_length(d), cut = length > 32 ? length - 32 : 0;
    const int32_t r = shift - X_FRAC - (e0 + static_cast<int32_t>(cut));
    if (r <= 0) {
        return 0;  // x >= 2^30 / 2^24
    }
    const uint64_t product = static_cast<uint64_t>(static_cast<uint32_t>(d >> cut)) * scale;  // < 2^63
    const uint64_t x = ((product >> (r > 64 ? 63 : r - 1)) + 1) >> 1;  // Q24, rounded half up
    if ((x >> X_FRAC) >= 32) {
        return 0;
    }
    const uint32_t xi = static_cast<uint32_t>(x >> X_FRAC), f = static_cast<uint32_t>(x) & 0xFFFFFFu;
    uint64_t m = (static_cast<uint64_t>(EXP2_T1[f >> 16]) * EXP2_T2[(f >> 8) & 0xFFu] + (1u << 30)) >> 31;
    m = (m * EXP2_T3[f & 0xFFu] + (1u << 30)) >> 31;  // m <= 2^31: a 32 x 32 product
    return (static_cast<uint32_t>(m) + ((1u << xi) >> 1)) >> xi;
}

// a * b for a < 2^39, b < 2^24 (the product < 2^63) from 32 x 32 -> 64 multiplies
inline uint64_t mul_u64_u32(uint64_t a, uint32_t b) {
    const uint64_t low = static_cast<uint64_t>(static_cast<uint32_t>(a)) * b;
    return low + (static_cast<uint64_t>(static_cast<uint32_t>(a >> 32)) * b << 32);
}

// floor(q * z) for q's fp32 bits; all ones when q >= 1 (its residual is 0 whatever p) (step 9)
inline uint64_t q_times_z(uint32_t q_bits, uint64_t z) {
    int32_t sh;
    const uint32_t m = fp32_significand(q_bits, sh);
    if (sh <= 23) {
        return ~0ull;
    }
    const uint64_t low = (static_cast<uint64_t>(m) * (static_cast<uint32_t>(z) & 0xFFFFFFu)) >> 24;
    const uint64_t sum = mul_u64_u32(z >> 24, m) + low;
    return sum >> (sh - 24 > 63 ? 63 : sh - 24);
}

// floor(u * total / 2^24) (step 10)
inline uint64_t sample_threshold(uint32_t u, uint64_t total) {
    const uint64_t low = (static_cast<uint64_t>(u) * (static_cast<uint32_t>(total) & 0xFFFFFFu)) >> 24;
    return mul_u64_u32(total >> 24, u) + low;
}

// ceil(top_p_fixed * z / 2^32), z < 2^63 (step 6)
inline uint64_t top_p_target(uint32_t top_p_fixed, uint64_t z) {
    const uint64_t low = (static_cast<uint64_t>(top_p_fixed) * static_cast<uint32_t>(z) + 0xFFFFFFFFull) >> 32;
    return static_cast<uint64_t>(top_p_fixed) * static_cast<uint32_t>(z >> 32) + low;
}

// u * q < w / z exactly: U * M * z * 2^max(0, -g) < w * 2^max(0, g), g = 24 + sh (step 8), in 32-bit words
inline bool accepts(uint32_t u, uint32_t q_bits, uint64_t z, uint32_t w) {
    if (w == 0) {
        return false;
    }
    int32_t sh;
    const uint64_t um = static_cast<uint64_t>(u) * fp32_significand(q_bits, sh);  // < 2^48
    const uint32_t a[2] = {static_cast<uint32_t>(um), static_cast<uint32_t>(um >> 32)};
    const uint32_t b[2] = {static_cast<uint32_t>(z), static_cast<uint32_t>(z >> 32)};
    uint32_t lhs[4] = {0, 0, 0, 0};  // um * z < 2^111, little-endian words
    for (uint32_t i = 0; i < 2; ++i) {
        uint64_t carry = 0;
        for (uint32_t j = 0; j < 2; ++j) {
            const uint64_t t = static_cast<uint64_t>(a[i]) * b[j] + lhs[i + j] + carry;
            lhs[i + j] = static_cast<uint32_t>(t);
            carry = t >> 32;
        }
        lhs[i + 2] = static_cast<uint32_t>(carry);
    }
    const int32_t g = 24 + sh;
    if (g < 0) {  // q >= 2^47: any u > 0 gives u * q > 1 >= p
        return (lhs[0] | lhs[1] | lhs[2] | lhs[3]) == 0;
    }
    // lhs < w * 2^g  <=>  floor(lhs / 2^g) < w
    const uint32_t word = static_cast<uint32_t>(g) / 32, bit = static_cast<uint32_t>(g) % 32;
    uint32_t shifted[4] = {0, 0, 0, 0};
    for (uint32_t i = 0; i + word < 4; ++i) {
        const uint32_t above = i + word + 1 < 4 && bit ? lhs[i + word + 1] << (32 - bit) : 0;
        shifted[i] = (lhs[i + word] >> bit) | above;
    }
    return (shifted[1] | shifted[2] | shifted[3]) == 0 && shifted[0] < w;
}

}  // namespace accept_prefix
