// Shared by the host (tt_specdec/ops/verify_attention_program.py reads these names) and the kernels.
#pragma once

#include <cstdint>

namespace verify_attention {

// reader_verify_attention.cpp runtime args
constexpr uint32_t RT_READER_Q_ADDR = 0;    // q packed [B*Hkv, 32 rows (t, g), D], tiles
constexpr uint32_t RT_READER_K_ADDR = 1;    // k_cache [B*Hkv, S, D], tiles
constexpr uint32_t RT_READER_V_ADDR = 2;    // v_cache [B*Hkv, S, D], tiles
constexpr uint32_t RT_READER_POS_ADDR = 3;  // pos [B] int32, one page
constexpr uint32_t RT_READER_BH = 4;        // this core's (sequence, KV head): b * Hkv + h
constexpr uint32_t RT_READER_SCALE_BITS = 5;  // softmax scale, fp32 bits
constexpr uint32_t RT_READER_PAGE_TABLE_ADDR = 6;  // page_table [B, max_blocks] int32, a page per row (paged only)
constexpr uint32_t RT_READER_SPLIT = 7;     // this core's KV split j of (b, h); 0 = the combine core
constexpr uint32_t RT_READER_TREE_ADDR = 8;  // tree [B, T] uint32 row bitmasks, a page per sequence (tree only)

// reader_verify_attention.cpp compile-time args
constexpr uint32_t CT_READER_CB_Q = 0;
constexpr uint32_t CT_READER_CB_K = 1;
constexpr uint32_t CT_READER_CB_V = 2;
constexpr uint32_t CT_READER_CB_MASK = 3;
constexpr uint32_t CT_READER_CB_SCALE = 4;
constexpr uint32_t CT_READER_CB_ONES = 5;
constexpr uint32_t CT_READER_CB_POS = 6;
constexpr uint32_t CT_READER_D_TILES = 7;    // D / 32
constexpr uint32_t CT_READER_S_TILES = 8;    // cache length / 32
constexpr uint32_t CT_READER_T = 9;          // query rows per sequence (k + 1)
constexpr uint32_t CT_READER_GROUP = 10;     // Hq / Hkv
constexpr uint32_t CT_READER_HKV = 11;
constexpr uint32_t CT_READER_Q_TA = 12;      // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_READER_K_TA = 14;
constexpr uint32_t CT_READER_V_TA = 16;
constexpr uint32_t CT_READER_POS_TA = 18;
constexpr uint32_t CT_READER_BLOCK_TILES = 20;  // paged: block size / 32; 0 = contiguous cache
constexpr uint32_t CT_READER_MAX_BLOCKS = 21;   // paged: page_table row length
constexpr uint32_t CT_READER_CB_TABLE = 22;     // paged: one page_table row (scratch)
constexpr uint32_t CT_READER_PAGE_TABLE_TA = 23;
constexpr uint32_t CT_READER_SPLITS = 25;       // KV splits per (b, h): cores that share its chunks
constexpr uint32_t CT_READER_CB_RANGE = 26;     // [shown, begin, end, merges] for the writer
constexpr uint32_t CT_READER_SEM_PARTIALS = 27;  // combine core: counts the partials that landed
constexpr uint32_t CT_READER_TREE = 28;          // 1: row bitmasks from the tree tensor; 0: the chain's staircase
constexpr uint32_t CT_READER_CB_TREE = 29;       // tree: this sequence's T row bitmasks (scratch)
constexpr uint32_t CT_READER_TREE_TA = 30;

// compute_verify_attention.cpp runtime args: none ([shown, begin, end, merges] arrive in cb_pos)
// compute_verify_attention.cpp compile-time args
constexpr uint32_t CT_COMPUTE_D_TILES = 0;

// writer_verify_attention.cpp runtime args
constexpr uint32_t RT_WRITER_OUT_ADDR = 0;  // out packed [B*Hkv, 32, D], tiles
constexpr uint32_t RT_WRITER_BH = 1;
constexpr uint32_t RT_WRITER_SPLIT = 2;           // j; a worker (j > 0) sends its partial to slot j - 1
constexpr uint32_t RT_WRITER_COMBINE_NOC_X = 3;   // the combine core (split 0) of this (b, h)
constexpr uint32_t RT_WRITER_COMBINE_NOC_Y = 4;
// writer_verify_attention.cpp compile-time args
constexpr uint32_t CT_WRITER_CB_OUT = 0;
constexpr uint32_t CT_WRITER_D_TILES = 1;
constexpr uint32_t CT_WRITER_OUT_TA = 2;
constexpr uint32_t CT_WRITER_SEM_PARTIALS = 4;

// Circular buffers (fixed indices: the compute kernel names them directly)
constexpr uint32_t CB_Q = 0;
constexpr uint32_t CB_K = 1;
constexpr uint32_t CB_V = 2;
constexpr uint32_t CB_MASK = 3;
constexpr uint32_t CB_SCALE = 4;
constexpr uint32_t CB_ONES = 5;
constexpr uint32_t CB_POS = 6;
constexpr uint32_t CB_TABLE = 7;
constexpr uint32_t CB_RANGE = 8;    // reader -> writer: [shown, begin, end, merges] uint32
constexpr uint32_t CB_PART = 9;     // worker: its partial [m, l, O_0 .. O_Dt-1], fp32 tiles
constexpr uint32_t CB_GATHER = 10;  // combine core: the workers' partials, slot j - 1 each (written remotely)
constexpr uint32_t CB_TREE = 11;    // tree: one page of row bitmasks, read from DRAM (its base DRAM-aligned)
constexpr uint32_t CB_OUT = 16;
constexpr uint32_t CB_ALPHA = 17;
constexpr uint32_t CB_TMP = 18;
constexpr uint32_t CB_PV = 19;
constexpr uint32_t CB_LC = 20;
constexpr uint32_t CB_S2 = 21;
constexpr uint32_t CB_S = 24;
constexpr uint32_t CB_P = 25;
constexpr uint32_t CB_M0 = 26;
constexpr uint32_t CB_M1 = 27;
constexpr uint32_t CB_L0 = 28;
constexpr uint32_t CB_L1 = 29;
constexpr uint32_t CB_O0 = 30;
constexpr uint32_t CB_O1 = 31;

// element (r, c) of a 32 x 32 tile stored as four 16 x 16 faces
inline uint32_t tile_offset(uint32_t r, uint32_t c) { return ((r >> 4) * 2 + (c >> 4)) * 256 + (r & 15) * 16 + (c & 15); }

// Work split across cores: (b, h) x KV split j; split 0 is the combine core, it merges the
// workers' (m, l, O). The chunks holding keys <= own (the tile's first row's own key; the chain's:
// pos) are dealt ceil(full / splits) per split; the chunks past them join the last active split.
// Every split's first chunk holds a key every row attends, so its running max stays finite: a
// cache key (< pos), or else each row's own key (>= own, < pos + 32: rows see themselves and only
// earlier rows, T <= 32). On a short context the trailing splits are idle.
constexpr uint32_t WORKER = 0xFFFFFFFFu;  // merges word of a split that sends its partial away

struct SplitRange {
    uint32_t begin, end;  // chunks of this split: [begin, end)
    uint32_t active;      // splits with at least one chunk
};

inline SplitRange split_range(uint32_t own, uint32_t chunks, uint32_t splits, uint32_t j) {
    const uint32_t full = own / 32 + 1;
    const uint32_t per = (full + splits - 1) / splits;
    const uint32_t begin = j * per < full ? j * per : full;
    uint32_t end = begin + per < full ? begin + per : full;
    if (end == full && begin < end) {
        end = chunks;
    }
    return {begin, end, (full + per - 1) / per};
}

// The mask: row (t, g) sees the cache (keys < pos) and key pos + i iff bit i of its row bitmask `seen`
// (its ancestors and itself). The chain's row t is the staircase, bits 0 .. t.
inline uint32_t staircase_bits(uint32_t t) { return t >= 31 ? 0xFFFFFFFFu : (2u << t) - 1; }
inline bool key_is_seen(uint32_t key, uint32_t pos, uint32_t seen) {
    return key < pos || (key - pos < 32 && ((seen >> (key - pos)) & 1u));
}

// bits in x up to its highest set one (0 for 0)
inline uint32_t bit_length(uint32_t x) {
    uint32_t n = 0;
    while (n < 32 && (x >> n) != 0) {
        ++n;
    }
    return n;
}

// Keys 0 .. shown - 1 are seen by every row: the cache and the tree keys all rows share (the bitmasks'
// common run of low bits; the chain's: the root alone, so shown = pos + 1).
inline uint32_t shown_keys(uint32_t pos, uint32_t common_bits) {
    uint32_t n = 0;
    while (n < 32 && ((common_bits >> n) & 1u)) {
        ++n;
    }
    return pos + n;
}

// chunk c (keys 32c .. 32c+31) needs the mask when it holds a key some row does not see
inline bool chunk_is_masked(uint32_t c, uint32_t shown) { return 32 * c + 31 >= shown; }

}  // namespace verify_attention
