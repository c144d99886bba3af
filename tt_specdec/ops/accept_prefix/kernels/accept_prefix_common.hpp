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
constexpr uint32_t SRT_WRITER_TEMPERATURE_LO = 5;  // temperature as a double: low and high words
constexpr uint32_t SRT_WRITER_TEMPERATURE_HI = 6;
constexpr uint32_t SRT_WRITER_TOP_K = 7;           // 0 (or >= V): no top-k
constexpr uint32_t SRT_WRITER_TOP_P_LO = 8;        // top_p as a double; 1.0: no top-p
constexpr uint32_t SRT_WRITER_TOP_P_HI = 9;
constexpr uint32_t SRT_WRITER_LOGITS_ADDR = 10;
constexpr uint32_t SRT_WRITER_DRAFTS_ADDR = 11;
constexpr uint32_t SRT_WRITER_DRAFT_PROBS_ADDR = 12;
constexpr uint32_t SRT_WRITER_SEEDS_ADDR = 13;     // seeds [B] uint32, one page
constexpr uint32_t SRT_WRITER_NUM_DRAFT_ADDR = 14;  // num_draft [B] int32, one page
constexpr uint32_t SRT_WRITER_NUM_ACCEPTED_ADDR = 15;
constexpr uint32_t SRT_WRITER_OUTPUT_ADDR = 16;
constexpr uint32_t SRT_WRITER_NOC_X0 = 17;         // NoC coordinates of every core, x then y
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
    uint32_t top = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const uint32_t key = key_of(vals[i]);
        top = key > top ? key : top;
    }
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

// core 0 -> every core's reader: what to bring into L1 next
enum ReadOp : uint32_t { READ_ROW = 1, READ_Q = 2, READ_DONE = 3 };
struct ReadCommand {
    uint32_t op;
    uint32_t page;  // READ_ROW: logits page b * (k+1) + t; READ_Q: draft_probs page b * k + n
    uint32_t pad[2];
};

// core 0 -> every core's writer: one round of work on the row held in L1
enum RoundOp : uint32_t {
    ROUND_START = 1,  // new row: max key, the draft's logit and tie rank [, top-k digit histogram]
    ROUND_TOP_K,      // count histogram of the next digit (top-k)
    ROUND_MASS,       // sum of w = exp(s - max_s) over the top-k set [, top-p digit histogram]
    ROUND_TOP_P,      // mass histogram of the next digit (top-p)
    ROUND_RESIDUAL,   // residual and p masses of the slice
    ROUND_SAMPLE,     // the core holding the sample scans its slice for it
    ROUND_DONE,
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
    uint32_t pad;
    double max_s;          // p(v) = exp(s(v) - max_s) / z_k / z_p on the top-p set, s = logit / temperature
    double z_k;
    double z_p;
    double threshold;      // ROUND_SAMPLE: the first token where the running mass exceeds it
    double running;        // ROUND_SAMPLE: mass of the slices before sample_core
    uint32_t tie_quota[MAX_SAMPLING_CORES];
};

struct Bin {
    uint32_t count;
    uint32_t pad;
    double mass;  // sum of w (HIST_MASS)
};

// every core -> core 0, one per round; bins are sent only in histogram rounds
struct RoundPartial {
    uint32_t max_key;     // ROUND_START
    uint32_t draft_key;   // ROUND_START, the core holding the draft: its key
    uint32_t draft_rank;  // ... and how many earlier tokens of this slice share that key
    uint32_t token;       // ROUND_SAMPLE
    double draft_logit;   // ROUND_START, the core holding the draft
    double mass;          // ROUND_MASS: sum of w over the top-k set; ROUND_RESIDUAL: residual mass
    double p_mass;        // ROUND_RESIDUAL: mass of p
    double pad;
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

inline double uniform(uint32_t seed, uint32_t stream, uint32_t index) {
    uint32_t h = mix32(seed);
    h = mix32(h ^ (stream * 0x9E3779B9u));
    h = mix32(h ^ (index * 0x9E3779B9u));
    return static_cast<double>(h >> 8) * (1.0 / (1 << 24));
}

// Ties keep the earlier index, like torch.argmax: strict '>' while scanning in index order.
inline float bfloat16_to_float(uint16_t bits) {
    union {
        uint32_t u;
        float f;
    } v{static_cast<uint32_t>(bits) << 16};
    return v.f;
}

}  // namespace accept_prefix
