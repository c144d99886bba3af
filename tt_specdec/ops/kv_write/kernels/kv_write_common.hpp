// kv_write: names shared by the host (tt_specdec/ops/kv_write/program.py reads these constants) and the
// kernels, so an argument index cannot drift between them.
#pragma once

#include <cstdint>

namespace kv_write {

constexpr uint32_t RT_READER_POS_ADDR = 0;         // pos [B] int32, one page; pos[b] < 0 skips row b
constexpr uint32_t RT_READER_PAGE_TABLE_ADDR = 1;  // page_table [B, max_blocks] int32, one page per row; 0 if contiguous
constexpr uint32_t RT_READER_K_NEW_ADDR = 2;       // new K rows [B * Hkv] x [32, D] tiles: row t = token t
constexpr uint32_t RT_READER_V_NEW_ADDR = 3;
constexpr uint32_t RT_READER_UNIT_BEGIN = 4;       // this core's units [begin, end) of (b, K|V, head)
constexpr uint32_t RT_READER_UNIT_END = 5;

constexpr uint32_t CT_READER_CB_SCRATCH = 0;  // one page: pos [B], then one page-table row
constexpr uint32_t CT_READER_CB_ROWS = 1;     // one page per unit: header + its T rows
constexpr uint32_t CT_READER_BATCH = 2;
constexpr uint32_t CT_READER_T = 3;  // new rows per sequence, <= 32
constexpr uint32_t CT_READER_HKV = 4;
constexpr uint32_t CT_READER_D_TILES = 5;       // head dim / 32
constexpr uint32_t CT_READER_MATRIX_TILES = 6;  // tile rows of one cache matrix: S / 32, or block_size / 32
constexpr uint32_t CT_READER_SEQ_MATRICES = 7;  // cache matrices per head: B, or num_blocks (paged)
constexpr uint32_t CT_READER_BLOCK_SIZE = 8;    // 0: contiguous cache
constexpr uint32_t CT_READER_MAX_BLOCKS = 9;
constexpr uint32_t CT_READER_FACE_ROW_BYTES = 10;  // 16 elements: one row of one face
constexpr uint32_t CT_READER_POS_TA = 11;          // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_READER_PAGE_TABLE_TA = 13;
constexpr uint32_t CT_READER_K_NEW_TA = 15;
constexpr uint32_t CT_READER_V_NEW_TA = 17;

constexpr uint32_t RT_WRITER_K_ADDR = 0;  // K cache, tiles, updated in place
constexpr uint32_t RT_WRITER_V_ADDR = 1;
constexpr uint32_t RT_WRITER_UNIT_BEGIN = 2;
constexpr uint32_t RT_WRITER_UNIT_END = 3;

constexpr uint32_t CT_WRITER_CB_ROWS = 0;
constexpr uint32_t CT_WRITER_T = 1;
constexpr uint32_t CT_WRITER_D_TILES = 2;
constexpr uint32_t CT_WRITER_FACE_ROW_BYTES = 3;
constexpr uint32_t CT_WRITER_K_TA = 4;  // TensorAccessorArgs (2 args each)
constexpr uint32_t CT_WRITER_V_TA = 6;

constexpr int32_t SKIP = -1;  // pos of a finished row; an empty page-table entry

// Slots that take a DRAM read start at multiples of `align` (the kernels pass DRAM_ALIGNMENT: 32 on Wormhole,
// 64 on Blackhole): a read lands only where (l1 & (align - 1)) == (dram & (align - 1))
// (hw/inc/internal/debug/sanitize.h), as in rollback_kv_common.hpp
constexpr uint32_t align_up(uint32_t bytes, uint32_t align) { return (bytes + align - 1) / align * align; }

// The rows page (reader -> writer) and the row reads and writes: ../../kernels/tile_rows.hpp, shared with
// rollback_kv's compaction kernels.

}  // namespace kv_write
