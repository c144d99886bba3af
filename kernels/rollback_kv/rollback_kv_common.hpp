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

constexpr int32_t SKIP = -1;  // num_accepted of a finished row; an empty page-table entry

}  // namespace rollback_kv
