// Rows of TILE-layout caches, shared by the kernels of several ops (kv_write, rollback_kv's compaction):
// one row of a [rows, D] matrix stored as 32 x 32 tiles is, per 32-column tile, two 16-element face rows.
// A reader gathers whole rows into a "rows page" (below) and a writer writes each into its destination tile.
// Included by a path relative to the including kernel (e.g. "../../kernels/tile_rows.hpp"): the real JIT
// includes a kernel by its own path (tt_metal/jit_build/genfiles.cpp, get_kernel_source_to_include) and adds
// -I<the kernel's folder> (tt_metal/jit_build/build.cpp, process_include_paths), and no -I names this folder.
#pragma once

#include <cstdint>

#include "api/dataflow/dataflow_api.h"

namespace tile_rows {

// A rows page (reader -> writer), int32 words: [count, is_v, -, -] then (tile, row in tile) of each
// row's destination, then from byte rows_data_offset(capacity) the rows themselves, D elements each.
constexpr uint32_t ROWS_HEADER_COUNT = 0;
constexpr uint32_t ROWS_HEADER_IS_V = 1;
constexpr uint32_t ROWS_HEADER_DEST = 4;

// The rows start at a multiple of `align` (the kernels pass DRAM_ALIGNMENT: 32 on Wormhole, 64 on Blackhole):
// a DRAM read lands only where (l1 & (align - 1)) == (dram & (align - 1)) (hw/inc/internal/debug/sanitize.h).
constexpr uint32_t rows_data_offset(uint32_t capacity, uint32_t align) {
    return ((ROWS_HEADER_DEST + 2 * capacity) * 4 + align - 1) / align * align;
}

// Byte offset of half `half` (columns 0-15 or 16-31) of row `row` inside a 32 x 32 tile of four 16 x 16
// faces, row-major inside a face.
constexpr uint32_t face_row_offset(uint32_t row, uint32_t half, uint32_t face_row_bytes) {
    return ((row / 16) * 2 + half) * 16 * face_row_bytes + (row % 16) * face_row_bytes;
}

// Where slot `slot` of sequence b lives: its cache matrix and row there, b's own matrix of matrix_rows rows or,
// when block_size > 0, the block b's page-table row (`table`) names. False for a slot past the cache or in an
// unallocated block: device tensors are not validated by the host, and nothing outside the cache is touched.
template <uint32_t block_size, uint32_t max_blocks, uint32_t matrix_rows, uint32_t seq_matrices>
inline bool locate_slot(volatile tt_l1_ptr int32_t* table, uint32_t b, uint32_t slot, uint32_t& matrix,
                        uint32_t& row) {
    if constexpr (block_size > 0) {
        if (slot >= max_blocks * block_size) {
            return false;
        }
        const int32_t block = table[slot / block_size];
        if (block < 0 || block >= static_cast<int32_t>(seq_matrices)) {
            return false;
        }
        matrix = static_cast<uint32_t>(block);
        row = slot % block_size;
    } else {
        if (slot >= matrix_rows) {
            return false;
        }
        matrix = b;
        row = slot;
    }
    return true;
}

// Row `row` (0..31) of the tile row starting at tile `first_tile` (d_tiles tiles: D columns) -> L1 at
// row_l1, D contiguous elements. Asynchronous: the caller issues noc_async_read_barrier().
template <uint32_t d_tiles, uint32_t face_row_bytes, typename Accessor>
inline void read_row(const Accessor& tiles, uint32_t first_tile, uint32_t row, uint32_t row_l1) {
    for (uint32_t c = 0; c < d_tiles; ++c) {
        for (uint32_t half = 0; half < 2; ++half) {
            const uint64_t src = get_noc_addr(first_tile + c, tiles, face_row_offset(row, half, face_row_bytes));
            noc_async_read(src, row_l1 + (2 * c + half) * face_row_bytes, face_row_bytes);
        }
    }
}

// The inverse of read_row: D contiguous elements at row_l1 -> row `row` of the tile row at `first_tile`.
template <uint32_t d_tiles, uint32_t face_row_bytes, typename Accessor>
inline void write_row(const Accessor& tiles, uint32_t first_tile, uint32_t row, uint32_t row_l1) {
    for (uint32_t c = 0; c < d_tiles; ++c) {
        for (uint32_t half = 0; half < 2; ++half) {
            const uint64_t dst = get_noc_addr(first_tile + c, tiles, face_row_offset(row, half, face_row_bytes));
            noc_async_write(row_l1 + (2 * c + half) * face_row_bytes, dst, face_row_bytes);
        }
    }
}

// Reader side: row number `count` of a rows page goes to (dst_tile, dst_row) and is read from
// (src_tile, src_row) of K or V, whose page the header marks.
template <uint32_t capacity, uint32_t d_tiles, uint32_t face_row_bytes, typename KAccessor, typename VAccessor>
inline void gather_row(uint32_t page, uint32_t count, bool is_v, const KAccessor& k, const VAccessor& v,
                       uint32_t src_tile, uint32_t src_row, uint32_t dst_tile, uint32_t dst_row) {
    volatile tt_l1_ptr int32_t* header = reinterpret_cast<volatile tt_l1_ptr int32_t*>(page);
    header[ROWS_HEADER_DEST + 2 * count] = static_cast<int32_t>(dst_tile);
    header[ROWS_HEADER_DEST + 2 * count + 1] = static_cast<int32_t>(dst_row);
    constexpr uint32_t row_bytes = d_tiles * 2 * face_row_bytes;
    const uint32_t row_l1 = page + rows_data_offset(capacity, DRAM_ALIGNMENT) + count * row_bytes;
    if (is_v) {
        read_row<d_tiles, face_row_bytes>(v, src_tile, src_row, row_l1);
    } else {
        read_row<d_tiles, face_row_bytes>(k, src_tile, src_row, row_l1);
    }
}

// Reader side, after a unit's rows: the header's count and K|V, and the page to the writer once every read
// has landed.
inline void push_rows_page(uint32_t cb_rows, uint32_t page, uint32_t count, bool is_v) {
    volatile tt_l1_ptr int32_t* header = reinterpret_cast<volatile tt_l1_ptr int32_t*>(page);
    header[ROWS_HEADER_COUNT] = static_cast<int32_t>(count);
    header[ROWS_HEADER_IS_V] = is_v ? 1 : 0;
    noc_async_read_barrier();  // every row of the unit is in L1 before the writer writes any
    cb_push_back(cb_rows, 1);
}

// Writer side: one rows page per unit [unit_begin, unit_end), each of its rows written into the K or V
// cache at its destination tile and row. Nothing else is written.
template <uint32_t cb_rows, uint32_t capacity, uint32_t d_tiles, uint32_t face_row_bytes, typename KAccessor,
          typename VAccessor>
inline void write_rows_pages(const KAccessor& k, const VAccessor& v, uint32_t unit_begin, uint32_t unit_end) {
    constexpr uint32_t row_bytes = d_tiles * 2 * face_row_bytes;
    for (uint32_t unit = unit_begin; unit < unit_end; ++unit) {
        cb_wait_front(cb_rows, 1);  // the unit's rows, all read
        const uint32_t page = get_read_ptr(cb_rows);
        volatile tt_l1_ptr int32_t* header = reinterpret_cast<volatile tt_l1_ptr int32_t*>(page);
        const uint32_t count = static_cast<uint32_t>(header[ROWS_HEADER_COUNT]);
        const bool is_v = header[ROWS_HEADER_IS_V] != 0;
        for (uint32_t i = 0; i < count; ++i) {
            const uint32_t dst_tile = static_cast<uint32_t>(header[ROWS_HEADER_DEST + 2 * i]);
            const uint32_t dst_row = static_cast<uint32_t>(header[ROWS_HEADER_DEST + 2 * i + 1]);
            const uint32_t row_l1 = page + rows_data_offset(capacity, DRAM_ALIGNMENT) + i * row_bytes;
            if (is_v) {
                write_row<d_tiles, face_row_bytes>(v, dst_tile, dst_row, row_l1);
            } else {
                write_row<d_tiles, face_row_bytes>(k, dst_tile, dst_row, row_l1);
            }
        }
        noc_async_write_barrier();  // the page is the reader's again after the pop
        cb_pop_front(cb_rows, 1);
    }
}

}  // namespace tile_rows
