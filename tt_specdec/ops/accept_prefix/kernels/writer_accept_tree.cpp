// accept_tree (greedy), writer (BRISC): argmax of this core's slice of every node row, then on core 0
// the cross-core reduction, the walk down the tree and the outputs.
//
// Every core scans its vocabulary slice of the B * T rows its reader streams (argmax_row_slice) and
// sends one Partial per row to core 0's gather CB (send_partials), as the chain's writer does. Core 0
// reduces them (gathered_argmax: ties keep the lowest index, like torch.argmax) and walks each sequence
// b from the root: the child of the current node, in index order, whose token equals the node's argmax
// is accepted and walked into; the walk ends at a node with no such child. Outputs: output_tokens =
// the accepted children's tokens, then the end node's argmax (recovered, or bonus at a leaf), then -1;
// accepted_slots = the path's nodes (slot 0 the root), then j at j past the path; num_accepted = n,
// the path's depth.
//
// Bounded by construction: children come after their parent (the host checks parents[t] in 0 .. t-1),
// so one pass over the nodes in index order walks the whole path. A parent outside 0 .. t-1 (a device
// tensor the host never read) is never the walk's node there, so that node is unreachable: at most
// T - 1 steps, no index taken from the tensors.
#include <cstdint>

#include "accept_prefix_common.hpp"

using namespace accept_prefix;

void kernel_main() {
    // Runtime args
    // ------------
    const uint32_t v_start = get_arg_val<uint32_t>(TRT_WRITER_V_START);
    const uint32_t v_end = get_arg_val<uint32_t>(TRT_WRITER_V_END);
    const uint32_t core_id = get_arg_val<uint32_t>(TRT_WRITER_CORE_ID);
    const uint32_t reduce_noc_x = get_arg_val<uint32_t>(TRT_WRITER_REDUCE_NOC_X);
    const uint32_t reduce_noc_y = get_arg_val<uint32_t>(TRT_WRITER_REDUCE_NOC_Y);

    // Compile-time args
    // -----------------
    constexpr uint32_t cb_logits = get_compile_time_arg_val(TCT_WRITER_CB_LOGITS);    // [chunk] per page
    constexpr uint32_t cb_partial = get_compile_time_arg_val(TCT_WRITER_CB_PARTIAL);  // [B * T] Partial
    constexpr uint32_t cb_gather = get_compile_time_arg_val(TCT_WRITER_CB_GATHER);    // [num_cores][B * T] Partial
    constexpr uint32_t cb_tree = get_compile_time_arg_val(TCT_WRITER_CB_TREE);  // [T] tokens, [T] parents
    constexpr uint32_t cb_out = get_compile_time_arg_val(TCT_WRITER_CB_OUT);    // [T] output, [T] slots, [B] n
    constexpr uint32_t chunk = get_compile_time_arg_val(TCT_WRITER_CHUNK);
    constexpr uint32_t batch = get_compile_time_arg_val(TCT_WRITER_BATCH);  // B
    constexpr uint32_t nodes = get_compile_time_arg_val(TCT_WRITER_NODES);  // T
    constexpr uint32_t num_cores = get_compile_time_arg_val(TCT_WRITER_NUM_CORES);
    constexpr uint32_t sem_partials = get_compile_time_arg_val(TCT_WRITER_SEM_PARTIALS);
    constexpr auto tokens_args = TensorAccessorArgs<TCT_WRITER_TOKENS_TA>();
    constexpr auto parents_args = TensorAccessorArgs<TCT_WRITER_PARENTS_TA>();
    constexpr auto num_accepted_args = TensorAccessorArgs<TCT_WRITER_NUM_ACCEPTED_TA>();
    constexpr auto output_args = TensorAccessorArgs<TCT_WRITER_OUTPUT_TA>();
    constexpr auto slots_args = TensorAccessorArgs<TCT_WRITER_SLOTS_TA>();

    static_assert(chunk % 32 == 0, "chunk must be a multiple of 32 entries");
    static_assert(nodes >= 1 && nodes <= MAX_ROWS, "T tree rows must fit one 32-row tile");
    static_assert(num_cores >= 1, "at least one core");
    constexpr uint32_t partial_bytes = partials_bytes(batch * nodes);  // one gather page
    constexpr uint32_t row_bytes = TreeStaging<nodes>::row_bytes;

    // 1. argmax of this core's slice of every node row
    const uint32_t partial_l1 = get_write_ptr(cb_partial);
    volatile tt_l1_ptr Partial* partial = reinterpret_cast<volatile tt_l1_ptr Partial*>(partial_l1);
    for (uint32_t r = 0; r < batch * nodes; ++r) {
        const Partial best = argmax_row_slice<cb_logits, chunk>(v_start, v_end);
        partial[r].key = best.key;
        partial[r].index = best.index;
    }

    // 2. send the partials to slot core_id of core 0's gather CB, then count them in
    const uint32_t gather_l1 = get_write_ptr(cb_gather);  // same L1 address on every core
    const uint32_t sem_l1 = get_semaphore(sem_partials);
    send_partials(partial_l1, gather_l1, partial_bytes, core_id, reduce_noc_x, reduce_noc_y, sem_l1);
    if (core_id != 0) {
        return;
    }

    // 3. core 0: reduce, walk each tree, write output_tokens, accepted_slots and num_accepted
    const auto tokens_acc = TensorAccessor(tokens_args, get_arg_val<uint32_t>(TRT_WRITER_TOKENS_ADDR), row_bytes);
    const auto parents_acc = TensorAccessor(parents_args, get_arg_val<uint32_t>(TRT_WRITER_PARENTS_ADDR), row_bytes);
    const auto num_accepted = TensorAccessor(
        num_accepted_args, get_arg_val<uint32_t>(TRT_WRITER_NUM_ACCEPTED_ADDR), batch * sizeof(int32_t));
    const auto output = TensorAccessor(output_args, get_arg_val<uint32_t>(TRT_WRITER_OUTPUT_ADDR), row_bytes);
    const auto slots_acc = TensorAccessor(slots_args, get_arg_val<uint32_t>(TRT_WRITER_SLOTS_ADDR), row_bytes);

    noc_semaphore_wait(reinterpret_cast<volatile tt_l1_ptr uint32_t*>(sem_l1), num_cores);  // all partials in

    TreeStaging<nodes> tree(get_write_ptr(cb_tree), get_write_ptr(cb_out));
    for (uint32_t b = 0; b < batch; ++b) {
        tree.read(b, tokens_acc, parents_acc);
        int32_t node = 0;  // the walk's node, and its argmax
        int32_t want = gathered_argmax<num_cores>(gather_l1, partial_bytes, b * nodes);
        uint32_t n = 0;
        for (uint32_t c = 1; c < nodes; ++c) {  // children after their parent: one pass in index order
            if (tree.parent[c] == node && tree.token[c] == want) {  // accepted: the target's token at its parent
                tree.out[n] = want;
                ++n;
                tree.slot[n] = static_cast<int32_t>(c);
                node = static_cast<int32_t>(c);
                want = gathered_argmax<num_cores>(gather_l1, partial_bytes, b * nodes + c);
            }
        }
        tree.out[n] = want;  // recovered (the end node has children) or bonus (a leaf)
        tree.write(b, n, output, slots_acc);
    }
    tree.write_num_accepted(num_accepted, batch);
}
