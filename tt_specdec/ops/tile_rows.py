"""The host side of kernels/tile_rows.hpp, the rows of TILE-layout caches that kv_write's kernels and
rollback_kv's compaction kernels gather into a rows page (reader -> writer) and write into a cache."""
from __future__ import annotations

from pathlib import Path

from tt_specdec.runtime import program as P

HEADER = Path(__file__).resolve().parent / "kernels" / "tile_rows.hpp"
NAMES = P.read_arg_indices(HEADER)


def rows_page_bytes(capacity: int, d_tiles: int, face_row_bytes: int) -> int:
    """One rows page of up to `capacity` rows of D = 32 * d_tiles elements: the header (count, K|V, each row's
    destination), then the rows from a DRAM-aligned offset (rows_data_offset in the header)."""
    row_bytes = d_tiles * 2 * face_row_bytes
    return P.dram_align(P.dram_align((NAMES["ROWS_HEADER_DEST"] + 2 * capacity) * 4) + capacity * row_bytes)
