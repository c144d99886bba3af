// verify_attention, reader (NCRISC): one (sequence b, KV head h) per core. Pushes the
// step's position for the compute kernel, the constant tiles (scale, ones), the packed
// query tile row [32 rows = (t, g), D] once, then per 32-key chunk of keys 0 .. pos+span-1 (the
// chain: pos+T-1) the K tiles, the mask when the chunk holds a key some row does not see, and
// the V tiles.
// The mask: row (t, g) sees the cache (keys < pos) and key pos + i iff bit i of row t's bitmask:
// read from the tree tensor (a token tree: its ancestors and itself), or the chain's staircase
// (bits 0 .. t) made here. The chain keeps its own program variant (CT tree = 0) so every chain step
// reads and uploads nothing more, while both build the mask in the same loop from the same bitmasks.
// Each K / V chunk is read once for all T query rows and all heads of the GQA group.
// With KV splits, this core streams only its split's chunks [begin, end) (see
// verify_attention_common.hpp); on the combine core (split 0) it then waits until the other
// active splits' partials have landed in cb_gather and hands them to compute.
// Paged cache: caches are [blocks, Hkv, block, D] and chunk c of sequence b lives in block
// page_table[b][c / block_tiles]; blocks are whole 32-key chunks, so a chunk never straddles two.
#include <cstdint>

#include "api/dataflow/dataflow_api.h"
#include "api/debug/assert.h"
#include "verify_attention_common.hpp"

using namespace verify_attention;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t q_addr = get_arg_val<uint32_t>(RT_READER_Q_ADDR);
    const uint32_t k_addr = get_arg_val<uint32_t>(RT_READER_K_ADDR);
    const uint32_t v_addr = get_arg_val<uint32_t>(RT_READER_V_ADDR);
    const uint32_t pos_addr = get_arg_val<uint32_t>(RT_READER_POS_ADDR);
    const uint32_t bh = get_arg_val<uint32_t>(RT_READER_BH);
    const uint32_t scale_bits = get_arg_val<uint32_t>(RT_READER_SCALE_BITS);
    const uint32_t page_table_addr = get_arg_val<uint32_t>(RT_READER_PAGE_TABLE_ADDR);
    const uint32_t split = get_arg_val<uint32_t>(RT_READER_SPLIT);
    const uint32_t tree_addr = get_arg_val<uint32_t>(RT_READER_TREE_ADDR);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_q = get_compile_time_arg_val(CT_READER_CB_Q);        // [Dt] tiles of q
    constexpr uint32_t cb_k = get_compile_time_arg_val(CT_READER_CB_K);        // [Dt] tiles per chunk
    constexpr uint32_t cb_v = get_compile_time_arg_val(CT_READER_CB_V);        // [Dt] tiles per chunk
    constexpr uint32_t cb_mask = get_compile_time_arg_val(CT_READER_CB_MASK);  // fp32 tile: 0 or -inf
    constexpr uint32_t cb_scale = get_compile_time_arg_val(CT_READER_CB_SCALE);  // fp32 tile of the scale
    constexpr uint32_t cb_ones = get_compile_time_arg_val(CT_READER_CB_ONES);    // fp32 tile of 1.0
    constexpr uint32_t cb_pos = get_compile_time_arg_val(CT_READER_CB_POS);      // [shown, begin, end, merges] uint32
    constexpr uint32_t d_tiles = get_compile_time_arg_val(CT_READER_D_TILES);
    constexpr uint32_t s_tiles = get_compile_time_arg_val(CT_READER_S_TILES);
    constexpr uint32_t T = get_compile_time_arg_val(CT_READER_T);
    constexpr uint32_t group = get_compile_time_arg_val(CT_READER_GROUP);
    constexpr uint32_t hkv = get_compile_time_arg_val(CT_READER_HKV);
    constexpr auto q_args = TensorAccessorArgs<CT_READER_Q_TA>();
    constexpr auto k_args = TensorAccessorArgs<CT_READER_K_TA>();
    constexpr auto v_args = TensorAccessorArgs<CT_READER_V_TA>();
    constexpr auto pos_args = TensorAccessorArgs<CT_READER_POS_TA>();
    constexpr uint32_t block_tiles = get_compile_time_arg_val(CT_READER_BLOCK_TILES);  // 0: contiguous
    constexpr uint32_t max_blocks = get_compile_time_arg_val(CT_READER_MAX_BLOCKS);
    constexpr uint32_t cb_table = get_compile_time_arg_val(CT_READER_CB_TABLE);
    constexpr auto page_table_args = TensorAccessorArgs<CT_READER_PAGE_TABLE_TA>();
    constexpr uint32_t splits = get_compile_time_arg_val(CT_READER_SPLITS);
    constexpr uint32_t cb_range = get_compile_time_arg_val(CT_READER_CB_RANGE);  // [shown, begin, end, merges]
    constexpr uint32_t sem_partials = get_compile_time_arg_val(CT_READER_SEM_PARTIALS);
    constexpr bool tree = get_compile_time_arg_val(CT_READER_TREE) == 1;
    constexpr uint32_t cb_tree = get_compile_time_arg_val(CT_READER_CB_TREE);  // [T] uint32 row bitmasks
    constexpr auto tree_args = TensorAccessorArgs<CT_READER_TREE_TA>();
    constexpr bool paged = block_tiles > 0;
    static_assert(splits >= 1, "at least one split per (b, h)");
    static_assert(T * group <= 32, "T * Hq/Hkv query rows must fit one 32-row tile");
    static_assert(T >= 1, "at least one query row");
    static_assert(get_dataformat(cb_mask) == DataFormat::Float32 && get_dataformat(cb_scale) == DataFormat::Float32,
                  "constant tiles are fp32");

    const auto q = TensorAccessor(q_args, q_addr, get_tile_size(cb_q));
    const auto k = TensorAccessor(k_args, k_addr, get_tile_size(cb_k));
    const auto v = TensorAccessor(v_args, v_addr, get_tile_size(cb_v));
    const uint32_t b = bh / hkv, h = bh % hkv;

    // pos [B]: this sequence's position
    cb_reserve_back(cb_pos, 1);
    const uint32_t pos_l1 = get_write_ptr(cb_pos);
    const auto pos_acc = TensorAccessor(pos_args, pos_addr);
    noc_async_read(get_noc_addr(0, pos_acc), pos_l1, pos_args.get_aligned_page_size());
    volatile tt_l1_ptr uint32_t* tree_words = nullptr;
    if constexpr (tree) {  // this sequence's row bitmasks: a page read to cb_tree's DRAM-aligned base
        const auto tree_acc = TensorAccessor(tree_args, tree_addr, T * sizeof(uint32_t));
        noc_async_read(get_noc_addr(b, tree_acc), get_write_ptr(cb_tree), T * sizeof(uint32_t));
        tree_words = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_write_ptr(cb_tree));
    }
    noc_async_read_barrier();
    volatile tt_l1_ptr uint32_t* pos_words = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(pos_l1);
    const uint32_t pos = pos_words[b];

    // row r = (t, g) of the tile: its bitmask (padding rows: the last query's); `common`: bits all rows
    // share; tree keys pos .. pos + span - 1 are seen by some row (the chain: T); row 0's own key is its
    // highest bit (the chain: pos)
    uint32_t seen[32];
    uint32_t common = 0xFFFFFFFFu, any = 0;
    for (uint32_t r = 0; r < 32; ++r) {
        const uint32_t t = r < T * group ? r / group : T - 1;
        if constexpr (tree) {
            seen[r] = tree_words[t];
        } else {
            seen[r] = staircase_bits(t);
        }
        common &= seen[r];
        any |= seen[r];
    }
    ASSERT(seen[0] != 0);  // every row sees itself (the host checks tree_mask's diagonal)
    const uint32_t span = bit_length(any), own = pos + bit_length(seen[0]) - 1;

    // the chunks that hold keys 0 .. pos + span - 1, and this split's share of them; the same four
    // words go to compute (cb_pos) and the writer (cb_range)
    const uint32_t shown = shown_keys(pos, common);
    const uint32_t chunks = (pos + span + 31) / 32;
    ASSERT(chunks <= (paged ? max_blocks * block_tiles : s_tiles));  // pos + span - 1 is inside the cache
    const SplitRange share = split_range(own, chunks, splits, split);
    const uint32_t begin = share.begin, end = share.end;
    const uint32_t merges = split == 0 ? share.active - 1 : WORKER;
    cb_reserve_back(cb_range, 1);
    volatile tt_l1_ptr uint32_t* range = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_write_ptr(cb_range));
    range[0] = pos_words[0] = shown;
    range[1] = pos_words[1] = begin;
    range[2] = pos_words[2] = end;
    range[3] = pos_words[3] = merges;
    cb_push_back(cb_pos, 1);
    cb_push_back(cb_range, 1);
    if (begin == end) {
        return;  // an idle split: the context has fewer chunks than splits
    }

    // constant tiles: the scale (every entry) and ones (row sums by matmul, the reduce scaler)
    float scale;
    __builtin_memcpy(&scale, &scale_bits, 4);
    cb_reserve_back(cb_scale, 1);
    cb_reserve_back(cb_ones, 1);
    volatile tt_l1_ptr float* scale_tile = reinterpret_cast<volatile tt_l1_ptr float*>(get_write_ptr(cb_scale));
    volatile tt_l1_ptr float* ones_tile = reinterpret_cast<volatile tt_l1_ptr float*>(get_write_ptr(cb_ones));
    for (uint32_t i = 0; i < 1024; ++i) {
        scale_tile[i] = scale;
        ones_tile[i] = 1.0f;
    }
    cb_push_back(cb_scale, 1);
    cb_push_back(cb_ones, 1);

    // q: one tile row [32, D] of this (b, h)
    cb_reserve_back(cb_q, d_tiles);
    for (uint32_t d = 0; d < d_tiles; ++d) {
        noc_async_read(get_noc_addr(bh * d_tiles + d, q), get_write_ptr(cb_q) + d * get_tile_size(cb_q),
                       get_tile_size(cb_q));
    }
    noc_async_read_barrier();
    cb_push_back(cb_q, d_tiles);

    // paged: this sequence's page-table row, kept in L1 for the whole pass
    volatile tt_l1_ptr int32_t* table = nullptr;
    if constexpr (paged) {
        const auto page_table = TensorAccessor(page_table_args, page_table_addr, max_blocks * sizeof(int32_t));
        const uint32_t table_l1 = get_write_ptr(cb_table);
        noc_async_read(get_noc_addr(b, page_table), table_l1, max_blocks * sizeof(int32_t));
        noc_async_read_barrier();
        table = reinterpret_cast<volatile tt_l1_ptr int32_t*>(table_l1);
    }

    for (uint32_t c = begin; c < end; ++c) {
        uint32_t first_tile = (bh * s_tiles + c) * d_tiles;  // K / V tile (chunk c, d = 0)
        if constexpr (paged) {
            const int32_t block = table[c / block_tiles];
            ASSERT(block >= 0);  // every block up to pos + T - 1 is allocated
            first_tile = ((static_cast<uint32_t>(block) * hkv + h) * block_tiles + c % block_tiles) * d_tiles;
        }
        cb_reserve_back(cb_k, d_tiles);
        for (uint32_t d = 0; d < d_tiles; ++d) {
            noc_async_read(get_noc_addr(first_tile + d, k), get_write_ptr(cb_k) + d * get_tile_size(cb_k),
                           get_tile_size(cb_k));
        }
        noc_async_read_barrier();
        cb_push_back(cb_k, d_tiles);

        if (chunk_is_masked(c, shown)) {  // row r attends the cache and the tree keys of its bitmask
            cb_reserve_back(cb_mask, 1);
            volatile tt_l1_ptr float* mask = reinterpret_cast<volatile tt_l1_ptr float*>(get_write_ptr(cb_mask));
            for (uint32_t r = 0; r < 32; ++r) {
                for (uint32_t col = 0; col < 32; ++col) {
                    mask[tile_offset(r, col)] = key_is_seen(32 * c + col, pos, seen[r]) ? 0.0f : -__builtin_inff();
                }
            }
            cb_push_back(cb_mask, 1);
        }

        cb_reserve_back(cb_v, d_tiles);
        for (uint32_t d = 0; d < d_tiles; ++d) {
            noc_async_read(get_noc_addr(first_tile + d, v), get_write_ptr(cb_v) + d * get_tile_size(cb_v),
                           get_tile_size(cb_v));
        }
        noc_async_read_barrier();
        cb_push_back(cb_v, d_tiles);
    }

    // combine core: the other active splits' partials [m, l, O] land in cb_gather (slot j - 1,
    // written by their writers), each followed by a semaphore increment
    if (split == 0 && merges > 0) {
        const uint32_t sem_l1 = get_semaphore(sem_partials);
        noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_l1), merges);
        noc_semaphore_set(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_l1), 0);  // ready for the next run
        cb_reserve_back(CB_GATHER, merges * (d_tiles + 2));  // already filled remotely
        cb_push_back(CB_GATHER, merges * (d_tiles + 2));
    }
}
