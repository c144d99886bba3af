// Shared by the host (tt_specdec/ops/rollback_kv_program.py reads these names) and the kernels.
#pragma once

#include <cstdint>

namespace rollback_kv {

// reader_rollback_kv.cpp runtime args
constexpr uint32_t RT_READER_POS_ADDR = 0;           // pos [B] int32, one page
constexpr uint32_t RT_READER_LAST_ADDR = 1;          // last [B] int32, one page
constexpr uint32_t RT_READER_NUM_ACCEPTED_ADDR = 2;  // num_accepted [B] int32, one page
constexpr uint32_t RT_READER_OUTPUT_ADDR = 3;        // output_tokens [B, k+1] int32, one page per row
constexpr uint32_t RT_READER_PAGE_TABLE_ADDR = 4;    // page_table [B, max_blocks] int32, one page per row

// reader_rollback_kv.cpp compile-time args
constexpr uint32_t CT_READER_CB_STATE = 0;   // 3 pages: pos, last, num_accepted [B]
constexpr uint32_t CT_READER_CB_TOKENS = 1;  // one output_tokens row per page
constexpr uint32_t CT_READER_CB_TABLE = 2;   // one page_table row per page
constexpr uint32_t CT_READER_BATCH = 3;
constexpr uint32_t CT_READER_ROWS = 4;        // k + 1
constexpr uint32_t CT_READER_MAX_BLOCKS = 5;  // 0: contiguous cache, no page table
constexpr uint32_t CT_READER_POS_TA = 6;      // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_READER_LAST_TA = 8;
constexpr uint32_t CT_READER_NUM_ACCEPTED_TA = 10;
constexpr uint32_t CT_READER_OUTPUT_TA = 12;
constexpr uint32_t CT_READER_PAGE_TABLE_TA = 14;

// writer_rollback_kv.cpp runtime args
constexpr uint32_t RT_WRITER_NEW_POS_ADDR = 0;
constexpr uint32_t RT_WRITER_NEW_LAST_ADDR = 1;
constexpr uint32_t RT_WRITER_NEW_TABLE_ADDR = 2;  // page_table after release [B, max_blocks]
constexpr uint32_t RT_WRITER_FREED_ADDR = 3;      // freed block ids [B, max_blocks], -1 elsewhere

// writer_rollback_kv.cpp compile-time args
constexpr uint32_t CT_WRITER_CB_STATE = 0;
constexpr uint32_t CT_WRITER_CB_TOKENS = 1;
constexpr uint32_t CT_WRITER_CB_TABLE = 2;
constexpr uint32_t CT_WRITER_CB_OUT = 3;  // 2 pages of staging: new table row and freed row, or new pos and last
constexpr uint32_t CT_WRITER_BATCH = 4;
constexpr uint32_t CT_WRITER_ROWS = 5;
constexpr uint32_t CT_WRITER_MAX_BLOCKS = 6;
constexpr uint32_t CT_WRITER_BLOCK_SIZE = 7;  // KV slots per block (paged cache)
constexpr uint32_t CT_WRITER_NEW_POS_TA = 8;  // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_WRITER_NEW_LAST_TA = 10;
constexpr uint32_t CT_WRITER_NEW_TABLE_TA = 12;
constexpr uint32_t CT_WRITER_FREED_TA = 14;

// reader_rollback_kv_compact.cpp runtime args
constexpr uint32_t RT_COMPACT_READER_POS_ADDR = 0;
constexpr uint32_t RT_COMPACT_READER_NUM_ACCEPTED_ADDR = 1;
constexpr uint32_t RT_COMPACT_READER_SLOTS_ADDR = 2;       // accepted_slots [B, k+1] int32, one page per row
constexpr uint32_t RT_COMPACT_READER_PAGE_TABLE_ADDR = 3;  // 0 when contiguous
constexpr uint32_t RT_COMPACT_READER_K_ADDR = 4;           // K cache, tiles, updated in place
constexpr uint32_t RT_COMPACT_READER_V_ADDR = 5;
constexpr uint32_t RT_COMPACT_READER_UNIT_BEGIN = 6;  // this core's units [begin, end) of (b, layer, K|V, head)
constexpr uint32_t RT_COMPACT_READER_UNIT_END = 7;

// reader_rollback_kv_compact.cpp compile-time args
constexpr uint32_t CT_COMPACT_READER_CB_SCRATCH = 0;  // one page: pos [B], num_accepted [B], slots row, table row
constexpr uint32_t CT_COMPACT_READER_CB_ROWS = 1;     // one page per unit: header + its moved KV rows
constexpr uint32_t CT_COMPACT_READER_BATCH = 2;
constexpr uint32_t CT_COMPACT_READER_ROWS = 3;  // k + 1
constexpr uint32_t CT_COMPACT_READER_LAYERS = 4;
constexpr uint32_t CT_COMPACT_READER_HKV = 5;
constexpr uint32_t CT_COMPACT_READER_D_TILES = 6;         // head dim / 32
constexpr uint32_t CT_COMPACT_READER_MATRIX_TILES = 7;    // tile rows of one cache matrix: S / 32, or block / 32
constexpr uint32_t CT_COMPACT_READER_SEQ_MATRICES = 8;    // matrices per layer and head: B, or num_blocks (paged)
constexpr uint32_t CT_COMPACT_READER_BLOCK_SIZE = 9;      // 0: contiguous cache
constexpr uint32_t CT_COMPACT_READER_MAX_BLOCKS = 10;
constexpr uint32_t CT_COMPACT_READER_FACE_ROW_BYTES = 11;  // 16 elements: one row of one face
constexpr uint32_t CT_COMPACT_READER_POS_TA = 12;          // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_COMPACT_READER_NUM_ACCEPTED_TA = 14;
constexpr uint32_t CT_COMPACT_READER_SLOTS_TA = 16;
constexpr uint32_t CT_COMPACT_READER_PAGE_TABLE_TA = 18;
constexpr uint32_t CT_COMPACT_READER_K_TA = 20;
constexpr uint32_t CT_COMPACT_READER_V_TA = 22;

// writer_rollback_kv_compact.cpp runtime args
constexpr uint32_t RT_COMPACT_WRITER_K_ADDR = 0;
constexpr uint32_t RT_COMPACT_WRITER_V_ADDR = 1;
constexpr uint32_t RT_COMPACT_WRITER_UNIT_BEGIN = 2;
constexpr uint32_t RT_COMPACT_WRITER_UNIT_END = 3;

// writer_rollback_kv_compact.cpp compile-time args
constexpr uint32_t CT_COMPACT_WRITER_CB_ROWS = 0;
constexpr uint32_t CT_COMPACT_WRITER_ROWS = 1;
constexpr uint32_t CT_COMPACT_WRITER_D_TILES = 2;
constexpr uint32_t CT_COMPACT_WRITER_FACE_ROW_BYTES = 3;
constexpr uint32_t CT_COMPACT_WRITER_K_TA = 4;  // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_COMPACT_WRITER_V_TA = 6;

constexpr int32_t SKIP = -1;  // num_accepted of a finished row; an empty page-table entry

// Slots that take a DRAM read start at multiples of `align` (the kernels pass DRAM_ALIGNMENT): a read
// from a DRAM page start lands only where (l1 & (align - 1)) == 0 (hw/inc/internal/debug/sanitize.h).
constexpr uint32_t align_up(uint32_t bytes, uint32_t align) { return (bytes + align - 1) / align * align; }

// The rows page (reader -> writer) and the row reads and writes: ../../kernels/tile_rows.hpp, shared with
// kv_write's kernels.

// Index of the [rows, D] matrix of (layer, sequence or block, head) in a cache stacked as
// [layers, B or num_blocks, Hkv] x [rows, D].
constexpr uint32_t cache_matrix(uint32_t layer, uint32_t seq_matrices, uint32_t seq_or_block, uint32_t hkv,
                                uint32_t head) {
    return (layer * seq_matrices + seq_or_block) * hkv + head;
}

// Tile id of the first column tile holding row `row_in_matrix` of cache matrix `matrix`.
constexpr uint32_t row_tile(uint32_t matrix, uint32_t row_in_matrix, uint32_t matrix_tiles, uint32_t d_tiles) {
    return (matrix * matrix_tiles + row_in_matrix / 32) * d_tiles;
}

}  // namespace rollback_kv
