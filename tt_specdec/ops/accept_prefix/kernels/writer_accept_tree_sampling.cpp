// accept_tree sampled, writer (BRISC): recursive rejection over siblings (SpecInfer, Miao et al. 2024;
// tt_specdec/ops/accept_prefix/__init__.py, accept_tree), V split over cores, in integers only: the
// procedure of sampling.fixed_params, bit for bit torch_impl.accept_tree_sampled and reference.accept_tree.
//
// Core 0 walks each sequence's tree from the root, r = p_root. The walk's node's children are tested in
// index order: child c with token x is accepted when u * q_c(x) < r(x) / sum(r) (accepts; u of STREAM_ACCEPT
// index c - 1, q_c(x) one 32-byte DRAM entry, 1 without draft probabilities) and walked into with
// r = p_c; rejected, r becomes max(0, r - floor(q_c * sum(r))) (q_c one-hot on x without draft
// probabilities), or stays where that is 0 everywhere. When every child is rejected, or the node has none,
// the last token is drawn from r (STREAM_SAMPLE index 0). r outlives a row's rounds, so it is kept in L1:
// each core holds its slice of r in one of two buffers, a rejection writes the next into the other
// (accept_prefix_sampling.hpp: KEEP, SUBTRACT, SAMPLE_KEPT; the sets of p, top-k and top-p, by the
// chain's rounds). Each node row the walk reaches is read from DRAM once, a rejected node's q row once.
// The reader is the chain's (reader_accept_prefix_sampling.cpp): it brings the pages core 0 names.
//
// Outputs as the greedy tree writer's: output_tokens = the accepted children's tokens, then the drawn
// token, then -1; accepted_slots = the path's nodes (slot 0 the root), then j past the path; num_accepted.
// Bounded by construction: children come after their parent (the host checks parents[t] in 0 .. t-1), so
// one pass over the nodes in index order walks the whole path. A parent outside 0 .. t-1 or a token outside
// 0 .. V-1 (a device tensor the host never read) makes its node unreachable: no index taken from the tensors.
#include <cstdint>

#include "accept_prefix_common.hpp"
#include "accept_prefix_sampling.hpp"
#include "api/dataflow/dataflow_api.h"

using namespace accept_prefix;

// the compile-time constants of the rounds (accept_prefix_sampling.hpp)
struct TreeConfig {
    static constexpr uint32_t cb_logits = get_compile_time_arg_val(STCT_WRITER_CB_LOGITS);      // [slice] logits
    static constexpr uint32_t cb_q = get_compile_time_arg_val(STCT_WRITER_CB_Q);                // [slice] fp32
    static constexpr uint32_t cb_read_cmd = get_compile_time_arg_val(STCT_WRITER_CB_READ_CMD);  // ReadCommand x 2
    static constexpr uint32_t cb_round = get_compile_time_arg_val(STCT_WRITER_CB_ROUND);        // RoundCommand x 2
    static constexpr uint32_t cb_partial = get_compile_time_arg_val(STCT_WRITER_CB_PARTIAL);    // RoundPartial
    static constexpr uint32_t cb_gather = get_compile_time_arg_val(STCT_WRITER_CB_GATHER);  // [num_cores] RoundPartial
    static constexpr uint32_t cb_residual = get_compile_time_arg_val(STCT_WRITER_CB_RESIDUAL);  // [2][slice] uint32
    static constexpr uint32_t vocab = get_compile_time_arg_val(STCT_WRITER_VOCAB);  // V
    static constexpr uint32_t num_cores = get_compile_time_arg_val(STCT_WRITER_NUM_CORES);
    static constexpr uint32_t slice = get_compile_time_arg_val(STCT_WRITER_SLICE);
    static constexpr bool has_draft_probs = get_compile_time_arg_val(STCT_WRITER_HAS_DRAFT_PROBS) == 1;
    static constexpr uint32_t sem_partials = get_compile_time_arg_val(STCT_WRITER_SEM_PARTIALS);
    static constexpr uint32_t sem_round = get_compile_time_arg_val(STCT_WRITER_SEM_ROUND);
    static constexpr uint32_t sem_read = get_compile_time_arg_val(STCT_WRITER_SEM_READ);
    static constexpr bool keeps_residual = true;  // r carries over from sibling to sibling
};

void kernel_main() {
    // Compile-time args
    // -----------------
    constexpr uint32_t cb_tree = get_compile_time_arg_val(STCT_WRITER_CB_TREE);
    constexpr uint32_t cb_out = get_compile_time_arg_val(STCT_WRITER_CB_OUT);
    constexpr uint32_t batch = get_compile_time_arg_val(STCT_WRITER_BATCH);  // B
    constexpr uint32_t nodes = get_compile_time_arg_val(STCT_WRITER_NODES);  // T
    constexpr auto tokens_args = TensorAccessorArgs<STCT_WRITER_TOKENS_TA>();
    constexpr auto parents_args = TensorAccessorArgs<STCT_WRITER_PARENTS_TA>();
    constexpr auto draft_probs_args = TensorAccessorArgs<STCT_WRITER_DRAFT_PROBS_TA>();
    constexpr auto seeds_args = TensorAccessorArgs<STCT_WRITER_SEEDS_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<STCT_WRITER_NUM_ACCEPTED_TA>();
    constexpr auto output_args = TensorAccessorArgs<STCT_WRITER_OUTPUT_TA>();
    constexpr auto slots_args = TensorAccessorArgs<STCT_WRITER_SLOTS_TA>();
    static_assert(nodes >= 1 && nodes <= MAX_ROWS, "T tree rows must fit one 32-row tile");
    constexpr uint32_t row_bytes = TreeStaging<nodes>::row_bytes;

    // Runtime args
    // ------------
    SamplingRounds<TreeConfig> rounds(
        get_arg_val<uint32_t>(STRT_WRITER_V_START), get_arg_val<uint32_t>(STRT_WRITER_V_END),
        get_arg_val<uint32_t>(STRT_WRITER_CORE_ID), get_arg_val<uint32_t>(STRT_WRITER_REDUCE_NOC_X),
        get_arg_val<uint32_t>(STRT_WRITER_REDUCE_NOC_Y), get_arg_val<uint32_t>(STRT_WRITER_EXP_SCALE),
        static_cast<int32_t>(get_arg_val<uint32_t>(STRT_WRITER_EXP_SHIFT)), get_arg_val<uint32_t>(STRT_WRITER_TOP_K),
        get_arg_val<uint32_t>(STRT_WRITER_TOP_P_FIXED), STRT_WRITER_NOC_X0);
    if (get_arg_val<uint32_t>(STRT_WRITER_CORE_ID) != 0) {
        rounds.serve();
        return;
    }

    // ---- core 0: the walks ---------------------------------------------------------------------
    const auto tokens_acc = TensorAccessor(tokens_args, get_arg_val<uint32_t>(STRT_WRITER_TOKENS_ADDR), row_bytes);
    const auto parents_acc = TensorAccessor(parents_args, get_arg_val<uint32_t>(STRT_WRITER_PARENTS_ADDR), row_bytes);
    const auto draft_probs = TensorAccessor(draft_probs_args, get_arg_val<uint32_t>(STRT_WRITER_DRAFT_PROBS_ADDR));
    const auto seeds_acc =
        TensorAccessor(seeds_args, get_arg_val<uint32_t>(STRT_WRITER_SEEDS_ADDR), batch * sizeof(uint32_t));
    const auto num_accepted = TensorAccessor(
        num_accepted_args, get_arg_val<uint32_t>(STRT_WRITER_NUM_ACCEPTED_ADDR), batch * sizeof(int32_t));
    const auto output = TensorAccessor(output_args, get_arg_val<uint32_t>(STRT_WRITER_OUTPUT_ADDR), row_bytes);
    const auto slots_acc = TensorAccessor(slots_args, get_arg_val<uint32_t>(STRT_WRITER_SLOTS_ADDR), row_bytes);

    const uint32_t scratch_l1 = get_write_ptr(cb_tree);  // 32 bytes: one DRAM entry, then the tree rows, then seeds
    TreeStaging<nodes> tree(scratch_l1 + align_up(32, DRAM_ALIGNMENT), get_write_ptr(cb_out));
    const uint32_t seeds_l1 = tree.tree_l1 + TreeStaging<nodes>::tree_bytes;
    volatile tt_l1_ptr uint32_t* seeds = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(seeds_l1);
    noc_async_read(get_noc_addr(0, seeds_acc), seeds_l1, batch * sizeof(uint32_t));
    noc_async_read_barrier();

    // the first child of `node` after index `after` (nodes: none); a token outside the vocabulary never is one
    auto next_child = [&](int32_t node, uint32_t after) -> uint32_t {
        for (uint32_t c = after + 1; c < nodes; ++c) {
            if (tree.parent[c] == node && static_cast<uint32_t>(tree.token[c]) < TreeConfig::vocab) {
                return c;
            }
        }
        return nodes;
    };
    auto token_of = [&](uint32_t c) -> uint32_t { return c < nodes ? static_cast<uint32_t>(tree.token[c]) : NO_TOKEN; };

    for (uint32_t b = 0; b < batch; ++b) {
        tree.read(b, tokens_acc, parents_acc);
        const uint32_t seed = seeds[b];
        int32_t node = 0;  // the walk's node
        uint32_t n = 0;
        uint32_t child = next_child(node, 0);
        uint32_t r_x = rounds.keep_row(b * nodes, token_of(child));  // r = p_root; r at the child's token
        while (child < nodes) {  // children after their parent: one pass in index order
            const uint32_t x = token_of(child);
            const uint32_t q_x = q_of_draft<TreeConfig::has_draft_probs>(draft_probs, b * nodes + child, x, scratch_l1);
            if (accepts(uniform_bits(seed, STREAM_ACCEPT, child - 1), q_x, rounds.row.z, r_x)) {  // u * q < r / z
                tree.out[n] = static_cast<int32_t>(x);
                ++n;
                tree.slot[n] = static_cast<int32_t>(child);
                node = static_cast<int32_t>(child);
                child = next_child(node, child);
                r_x = rounds.keep_row(b * nodes + static_cast<uint32_t>(node), token_of(child));  // r = p_node
            } else {
                const uint32_t sibling = next_child(node, child);
                r_x = rounds.subtract(x, b * nodes + child, token_of(sibling));
                child = sibling;
            }
        }
        tree.out[n] = static_cast<int32_t>(rounds.sample_kept(uniform_bits(seed, STREAM_SAMPLE, 0)));  // last token
        tree.write(b, n, output, slots_acc);
    }
    tree.write_num_accepted(num_accepted, batch);

    rounds.finish();
}
