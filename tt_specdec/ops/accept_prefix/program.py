"""Program descriptions of the accept_prefix kernels (kernels/), greedy and sampling, chain and tree, and
their runs on either executor (`run`; the accept_tree kernels: `run_tree`): inputs converted to the
kernels' tensors, outputs back.

Work split: the vocabulary V is cut into `num_cores` slices of whole 32-entry groups
(core c: [c * slice, min(V, (c+1) * slice))). Greedy: each core's reader streams its slice
of the rows that matter, its writer reduces them to a running (value, index) per row sent
to core 0, which decides and writes the outputs (a chain: the longest agreeing prefix; a tree:
the walk from the root). That argmax pass is one code for both: `argmax_pass` here,
accept_prefix_common.hpp in the kernels. Sampling: core 0 walks the rows one at a
time; each core keeps its slice of the current row in L1 while core 0 runs rounds over
them (softmax max and mass, radix select of the top-k / top-p thresholds, residual, the
sample; a tree's walk keeps the residual r in L1 across sibling rejections). The rounds are one code
for chain and tree: `sampling_pass` here, accept_prefix_sampling.hpp in the kernels. The kernel headers
say which core does what.

Compile-time: B, k+1, V split, chunk, formats. Runtime: buffer addresses, per-core
slices, core coordinates, temperature (as sampling.fixed_params's integer scale and shift), top_k,
top_p (as ceil(top_p * 2^32)); the effective k per row and the seeds
arrive in tensors, so a new step never recompiles.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tt_specdec.errors import is_int
from tt_specdec.ops.dispatch import host_converted, is_ttnn_tensor
from tt_specdec.runtime import device, emu
from tt_specdec.runtime import program as P
from tt_specdec.sampling import fixed_params, row_seed_values, seeds_for_rows

KERNELS = Path(__file__).resolve().parent / "kernels"
ARGS = P.read_arg_indices(KERNELS / "accept_prefix_common.hpp")
MAX_CORES = 8
MIN_SLICE = 2048  # vocabulary entries per core below which another core costs more than it saves
MAX_CHUNK = 2048  # entries per cb_logits page: 4 KiB bf16, 8 KiB fp32


def split_vocab(V: int, max_cores: int = MAX_CORES) -> list[tuple[int, int]]:
    """[v_start, v_end) per core; starts are multiples of 32 entries (DRAM-aligned offsets)."""
    cores = max(1, min(max_cores, -(-V // MIN_SLICE)))
    slice_ = P.align(-(-V // cores), 32)
    return [(s, min(V, s + slice_)) for s in range(0, V, slice_)]


@dataclass
class ArgmaxPass:
    """The greedy argmax pass the chain and the tree kernels share (accept_prefix_common.hpp): V split
    over `cores` (slices), each core's reader streaming `chunk`-entry pages of its slice of every row, its
    writer reducing them to one Partial per row, gathered on core 0."""
    slices: list[tuple[int, int]]
    cores: list[P.CoreRange]
    chunk: int
    cbs: list[P.CircularBuffer]  # cb_logits, cb_partial, cb_gather

    sem_partials = 0  # the semaphore on core 0 counting the partials that arrived

    @property
    def num_cores(self) -> int:
        return len(self.slices)

    def program(self, name: str, reader: str, writer: str, reader_ct: list, writer_ct: list, reader_rt: dict,
                writer_rt: dict, cbs: list[P.CircularBuffer], tensors: list[P.Tensor]) -> P.Program:
        """The reader and writer kernels (files of kernels/) on the pass's cores, its CBs then `cbs`."""
        kernels = [P.Kernel(str(KERNELS / reader), "reader", self.cores, reader_ct, reader_rt),
                   P.Kernel(str(KERNELS / writer), "writer", self.cores, writer_ct, writer_rt)]
        # same L1 address on every core; only core 0 counts
        return P.Program(name, kernels, self.cbs + cbs, tensors, [P.Semaphore(self.sem_partials, self.cores, 0)])


def argmax_pass(rows: int, V: int, logits_dtype: torch.dtype, max_cores: int, *, cb_logits: int, cb_partial: int,
                cb_gather: int) -> ArgmaxPass:
    """The argmax pass over `rows` logits rows of V (bf16 or fp32) on up to max_cores cores."""
    if logits_dtype not in (torch.bfloat16, torch.float32):
        raise TypeError(f"target_logits: got dtype {logits_dtype}, expected bfloat16 or float32 for the kernels")
    slices = split_vocab(V, max_cores)
    cores = [P.CoreRange((0, 0), (len(slices) - 1, 0))]
    chunk = min(MAX_CHUNK, P.align(slices[0][1] - slices[0][0], 32))
    elem = torch.empty((), dtype=logits_dtype).element_size()
    partial_bytes = P.align(rows * 8, P.L1_ALIGNMENT)  # partials_bytes: Partial {uint32 key; uint32 index}
    cbs = [P.CircularBuffer(cb_logits, cores, 2, chunk * elem, P.data_format(logits_dtype), "logits"),
           P.CircularBuffer(cb_partial, cores, 1, partial_bytes, P.DataFormat.UInt32, "partial"),
           P.CircularBuffer(cb_gather, cores, len(slices), partial_bytes, P.DataFormat.UInt32, "gather")]
    return ArgmaxPass(slices, cores, chunk, cbs)


def accept_prefix_program(B: int, k: int, V: int, logits_dtype: torch.dtype, *,
                          max_cores: int = MAX_CORES) -> P.Program:
    """Greedy accept_prefix for logits [B, k+1, V] (bf16 or fp32)."""
    rows = k + 1
    cb = dict(logits=0, num_draft=1, partial=2, gather=3, drafts=4, out=16)
    pas = argmax_pass(B * rows, V, logits_dtype, max_cores, cb_logits=cb["logits"], cb_partial=cb["partial"],
                      cb_gather=cb["gather"])
    logits = P.Tensor("logits", (B, rows, V), logits_dtype)
    drafts = P.Tensor("drafts", (B, k), torch.int32)
    num_draft = P.Tensor("num_draft", (1, B), torch.int32)
    num_accepted = P.Tensor("num_accepted", (1, B), torch.int32, is_output=True)
    output = P.Tensor("output_tokens", (B, rows), torch.int32, is_output=True)

    slices, cores, chunk, num_cores = pas.slices, pas.cores, pas.chunk, pas.num_cores
    reduce_core = (0, 0)
    cbs = [
        P.CircularBuffer(cb["num_draft"], cores, 1, P.align(B * 4, 16), P.DataFormat.Int32, "num_draft"),
        P.CircularBuffer(cb["drafts"], cores, 1, P.align(k * 4, 16), P.DataFormat.Int32, "drafts"),
        P.CircularBuffer(cb["out"], cores, 2, P.align(max(rows, B) * 4, 16), P.DataFormat.Int32, "out"),
    ]

    reader_ct = P.arg_vector(ARGS, "CT_READER_", cb_logits=cb["logits"], cb_num_draft=cb["num_draft"], chunk=chunk,
                             batch=B, rows=rows, logits_ta=P.tensor_accessor_args(logits),
                             num_draft_ta=P.tensor_accessor_args(num_draft))
    writer_ct = P.arg_vector(ARGS, "CT_WRITER_", cb_logits=cb["logits"], cb_num_draft=cb["num_draft"],
                             cb_partial=cb["partial"], cb_gather=cb["gather"], cb_drafts=cb["drafts"],
                             cb_out=cb["out"], chunk=chunk, batch=B, rows=rows, num_cores=num_cores,
                             sem_partials=pas.sem_partials, drafts_ta=P.tensor_accessor_args(drafts),
                             num_accepted_ta=P.tensor_accessor_args(num_accepted),
                             output_ta=P.tensor_accessor_args(output))

    reader_rt, writer_rt = {}, {}
    for c, (v0, v1) in enumerate(slices):
        core = (c, 0)
        reader_rt[core] = P.arg_vector(ARGS, "RT_READER_", logits_addr=P.BufferAddress("logits"),
                                       num_draft_addr=P.BufferAddress("num_draft"), v_start=v0, v_end=v1)
        writer_rt[core] = P.arg_vector(ARGS, "RT_WRITER_", v_start=v0, v_end=v1, core_id=c,
                                       reduce_noc_x=P.NocX(reduce_core), reduce_noc_y=P.NocY(reduce_core),
                                       drafts_addr=P.BufferAddress("drafts"),
                                       num_accepted_addr=P.BufferAddress("num_accepted"),
                                       output_addr=P.BufferAddress("output_tokens"))
    return pas.program("accept_prefix", "reader_accept_prefix.cpp", "writer_accept_prefix.cpp", reader_ct, writer_ct,
                       reader_rt, writer_rt, cbs, [logits, drafts, num_draft, num_accepted, output])


def accept_tree_program(B: int, T: int, V: int, logits_dtype: torch.dtype, *,
                        max_cores: int = MAX_CORES) -> P.Program:
    """Greedy accept_tree for logits [B, T, V] (bf16 or fp32), tree_tokens and parents [B, T] int32: the
    argmax pass of the chain over every node row, then core 0 walks each tree (writer_accept_tree.cpp)."""
    cb = dict(logits=0, partial=1, gather=2, tree=3, out=16)
    pas = argmax_pass(B * T, V, logits_dtype, max_cores, cb_logits=cb["logits"], cb_partial=cb["partial"],
                      cb_gather=cb["gather"])
    logits = P.Tensor("logits", (B, T, V), logits_dtype)
    tokens = P.Tensor("tree_tokens", (B, T), torch.int32)
    parents = P.Tensor("parents", (B, T), torch.int32)
    num_accepted = P.Tensor("num_accepted", (1, B), torch.int32, is_output=True)
    output = P.Tensor("output_tokens", (B, T), torch.int32, is_output=True)
    slots = P.Tensor("accepted_slots", (B, T), torch.int32, is_output=True)

    cores, reduce_core = pas.cores, (0, 0)
    row_slot = P.dram_align(T * 4)  # every staging slot takes a DRAM read or write at its start
    cbs = [
        P.CircularBuffer(cb["tree"], cores, 1, 2 * row_slot, P.DataFormat.Int32, "tree"),  # tokens, parents
        P.CircularBuffer(cb["out"], cores, 1, 2 * row_slot + P.dram_align(B * 4), P.DataFormat.Int32, "out"),
    ]
    reader_ct = P.arg_vector(ARGS, "TCT_READER_", cb_logits=cb["logits"], chunk=pas.chunk, batch=B, nodes=T,
                             logits_ta=P.tensor_accessor_args(logits))
    writer_ct = P.arg_vector(ARGS, "TCT_WRITER_", cb_logits=cb["logits"], cb_partial=cb["partial"],
                             cb_gather=cb["gather"], cb_tree=cb["tree"], cb_out=cb["out"], chunk=pas.chunk, batch=B,
                             nodes=T, num_cores=pas.num_cores, sem_partials=pas.sem_partials,
                             tokens_ta=P.tensor_accessor_args(tokens), parents_ta=P.tensor_accessor_args(parents),
                             num_accepted_ta=P.tensor_accessor_args(num_accepted),
                             output_ta=P.tensor_accessor_args(output), slots_ta=P.tensor_accessor_args(slots))
    reader_rt, writer_rt = {}, {}
    for c, (v0, v1) in enumerate(pas.slices):
        reader_rt[(c, 0)] = P.arg_vector(ARGS, "TRT_READER_", logits_addr=P.BufferAddress("logits"), v_start=v0,
                                         v_end=v1)
        writer_rt[(c, 0)] = P.arg_vector(ARGS, "TRT_WRITER_", v_start=v0, v_end=v1, core_id=c,
                                         reduce_noc_x=P.NocX(reduce_core), reduce_noc_y=P.NocY(reduce_core),
                                         tokens_addr=P.BufferAddress("tree_tokens"),
                                         parents_addr=P.BufferAddress("parents"),
                                         num_accepted_addr=P.BufferAddress("num_accepted"),
                                         output_addr=P.BufferAddress("output_tokens"),
                                         slots_addr=P.BufferAddress("accepted_slots"))
    return pas.program("accept_tree", "reader_accept_tree.cpp", "writer_accept_tree.cpp", reader_ct, writer_ct,
                       reader_rt, writer_rt, cbs, [logits, tokens, parents, num_accepted, output, slots])


@dataclass
class SamplingPass:
    """The rounds the sampling writers share (kernels/accept_prefix_sampling.hpp) and their reader
    (reader_accept_prefix_sampling.cpp): V split over `cores` (slices of `slice` entries), one row's slice
    per core in L1 at a time, core 0 deciding round by round; its CBs (`cb` names their indices) and
    semaphores."""
    slices: list[tuple[int, int]]
    cores: list[P.CoreRange]
    slice: int
    cb: dict[str, int]
    cbs: list[P.CircularBuffer]
    has_draft_probs: bool
    exp_scale: int  # temperature as sampling.fixed_params's integers: the host's floats end here
    exp_shift: int
    top_k: int
    top_p_fixed: int

    sem_partials, sem_round, sem_read = 0, 1, 2  # same L1 address on every core
    reduce_core = (0, 0)

    @property
    def num_cores(self) -> int:
        return len(self.slices)

    def writer_ct(self) -> dict:
        """The writer's compile-time args of the rounds (its own follow)."""
        return dict(cb_logits=self.cb["logits"], cb_q=self.cb["q"], cb_read_cmd=self.cb["read_cmd"],
                    cb_round=self.cb["round"], cb_partial=self.cb["partial"], cb_gather=self.cb["gather"],
                    num_cores=self.num_cores, slice=self.slice, has_draft_probs=int(self.has_draft_probs),
                    sem_partials=self.sem_partials, sem_round=self.sem_round, sem_read=self.sem_read)

    def writer_rt(self, c: int) -> dict:
        """Core c's runtime args of the rounds (its own follow)."""
        v0, v1 = self.slices[c]
        return dict(v_start=v0, v_end=v1, core_id=c, reduce_noc_x=P.NocX(self.reduce_core),
                    reduce_noc_y=P.NocY(self.reduce_core), exp_scale=self.exp_scale,
                    exp_shift=self.exp_shift & 0xFFFFFFFF, top_k=self.top_k, top_p_fixed=self.top_p_fixed,
                    noc_x0=[a for core in range(self.num_cores) for a in (P.NocX((core, 0)), P.NocY((core, 0)))])

    def program(self, name: str, writer: str, writer_ct: list, writer_rt: dict, cbs: list[P.CircularBuffer],
                logits: P.Tensor, draft_probs: P.Tensor, tensors: list[P.Tensor]) -> P.Program:
        """The reader and `writer` (a file of kernels/) on the pass's cores: its CBs then `cbs`, its semaphores."""
        probs_addr = P.BufferAddress("draft_probs") if self.has_draft_probs else 0
        reader_ct = P.arg_vector(ARGS, "SCT_READER_", cb_logits=self.cb["logits"], cb_q=self.cb["q"],
                                 cb_read_cmd=self.cb["read_cmd"], sem_read=self.sem_read,
                                 has_draft_probs=int(self.has_draft_probs), logits_ta=P.tensor_accessor_args(logits),
                                 draft_probs_ta=P.tensor_accessor_args(draft_probs))
        reader_rt = {(c, 0): P.arg_vector(ARGS, "SRT_READER_", logits_addr=P.BufferAddress("logits"),
                                          draft_probs_addr=probs_addr, v_start=v0, v_end=v1)
                     for c, (v0, v1) in enumerate(self.slices)}
        kernels = [P.Kernel(str(KERNELS / "reader_accept_prefix_sampling.cpp"), "reader", self.cores, reader_ct,
                            reader_rt),
                   P.Kernel(str(KERNELS / writer), "writer", self.cores, writer_ct, writer_rt)]
        # core 0 counts partials, every core counts its rounds and reads
        semaphores = [P.Semaphore(sem, self.cores, 0) for sem in (self.sem_partials, self.sem_round, self.sem_read)]
        return P.Program(name, kernels, self.cbs + cbs, tensors, semaphores)


def sampling_pass(V: int, logits: P.Tensor, temperature: float, top_k: int, top_p: float, max_cores: int, *,
                  has_draft_probs: bool, keeps_residual: bool, cb: dict[str, int]) -> SamplingPass:
    """The sampling rounds over logits rows of V (bf16 or fp32) on up to max_cores cores; with keeps_residual
    (the tree) two [slice] uint32 buffers per core hold the residual r. cb: the CB indices of logits, q,
    read_cmd, round, partial, gather (and residual)."""
    if logits.dtype not in (torch.bfloat16, torch.float32):
        raise TypeError(f"target_logits: got dtype {logits.dtype}, expected bfloat16 or float32 for the kernels")
    if not 1 <= max_cores <= ARGS["MAX_SAMPLING_CORES"]:
        raise ValueError(f"max_cores: got {max_cores}, expected 1..{ARGS['MAX_SAMPLING_CORES']} for the sampling "
                         "kernels (one tie quota per core in their RoundCommand)")
    slices = split_vocab(V, max_cores)
    num_cores = len(slices)
    slice_ = slices[0][1] - slices[0][0] if num_cores > 1 else P.align(V, 32)
    cores = [P.CoreRange((0, 0), (num_cores - 1, 0))]
    elem = logits.page_size // V
    row_bytes = P.align(slice_ * elem, 32)  # one row's slice stays in L1 for all its rounds
    q_bytes = P.align(slice_ * 4, 32) if has_draft_probs else 32
    f32, u32 = P.DataFormat.Float32, P.DataFormat.UInt32
    cbs = [
        P.CircularBuffer(cb["logits"], cores, 1, row_bytes, P.data_format(logits.dtype), "logits_row"),
        P.CircularBuffer(cb["q"], cores, 1, q_bytes, f32, "draft_probs_row"),
        P.CircularBuffer(cb["read_cmd"], cores, 1, 2 * ARGS["READ_COMMAND_BYTES"], u32, "read_command"),
        P.CircularBuffer(cb["round"], cores, 1, 2 * ARGS["ROUND_COMMAND_BYTES"], u32, "round_command"),
        P.CircularBuffer(cb["partial"], cores, 1, ARGS["ROUND_PARTIAL_BYTES"], u32, "partial"),
        P.CircularBuffer(cb["gather"], cores, 1, num_cores * ARGS["ROUND_PARTIAL_BYTES"], u32, "gather"),
    ]
    if keeps_residual:
        cbs.append(P.CircularBuffer(cb["residual"], cores, 1, 2 * P.align(slice_ * 4, 32), u32, "kept_residual"))
    exp_scale, exp_shift, top_p_fixed = fixed_params(temperature, top_p)
    return SamplingPass(slices, cores, slice_, cb, cbs, has_draft_probs, exp_scale, exp_shift, int(top_k), top_p_fixed)


def accept_prefix_sampling_program(B: int, k: int, V: int, logits_dtype: torch.dtype, temperature: float, *,
                                   has_draft_probs: bool, top_k: int = 0, top_p: float = 1.0,
                                   max_cores: int = MAX_CORES) -> P.Program:
    """Sampling accept_prefix (temperature > 0, optional top-k / top-p) for logits [B, k+1, V];
    draft_probs [B, k, V] fp32 when the drafter samples, seeds [B] uint32 (as int32).
    Temperature, top_k and top_p are runtime args: changing them compiles nothing."""
    rows = k + 1
    logits = P.Tensor("logits", (B, rows, V), logits_dtype)
    drafts = P.Tensor("drafts", (B, k), torch.int32)
    num_draft = P.Tensor("num_draft", (1, B), torch.int32)
    seeds = P.Tensor("seeds", (1, B), torch.int32)
    # without draft probabilities the accessor args still need a page size: a one-entry stand-in
    draft_probs = P.Tensor("draft_probs", (B, k, V) if has_draft_probs else (1, 1), torch.float32)
    num_accepted = P.Tensor("num_accepted", (1, B), torch.int32, is_output=True)
    output = P.Tensor("output_tokens", (B, rows), torch.int32, is_output=True)
    tensors = [logits, drafts, num_draft, seeds] + ([draft_probs] if has_draft_probs else []) + [num_accepted, output]

    cb = dict(logits=0, q=1, read_cmd=2, round=3, partial=4, gather=5, drafts=6, out=16)
    pas = sampling_pass(V, logits, temperature, top_k, top_p, max_cores, has_draft_probs=has_draft_probs,
                        keeps_residual=False, cb=cb)
    i32 = P.DataFormat.Int32
    cbs = [
        # 32-byte scratch, [k] drafts, [B] seeds, [B] num_draft
        P.CircularBuffer(cb["drafts"], pas.cores, 1, P.dram_align(32) + P.dram_align(k * 4) + 2 * P.dram_align(B * 4),
                         i32, "drafts_seeds"),
        P.CircularBuffer(cb["out"], pas.cores, 1, P.align(max(rows, B) * 4, 16) + P.align(B * 4, 16), i32, "out"),
    ]
    writer_ct = P.arg_vector(ARGS, "SCT_WRITER_", **pas.writer_ct(), cb_drafts=cb["drafts"], cb_out=cb["out"],
                             batch=B, rows=rows, vocab=V, logits_ta=P.tensor_accessor_args(logits),
                             drafts_ta=P.tensor_accessor_args(drafts),
                             draft_probs_ta=P.tensor_accessor_args(draft_probs),
                             seeds_ta=P.tensor_accessor_args(seeds), num_draft_ta=P.tensor_accessor_args(num_draft),
                             num_accepted_ta=P.tensor_accessor_args(num_accepted),
                             output_ta=P.tensor_accessor_args(output))
    probs_addr = P.BufferAddress("draft_probs") if has_draft_probs else 0
    writer_rt = {(c, 0): P.arg_vector(ARGS, "SRT_WRITER_", **pas.writer_rt(c), logits_addr=P.BufferAddress("logits"),
                                      drafts_addr=P.BufferAddress("drafts"), draft_probs_addr=probs_addr,
                                      seeds_addr=P.BufferAddress("seeds"), num_draft_addr=P.BufferAddress("num_draft"),
                                      num_accepted_addr=P.BufferAddress("num_accepted"),
                                      output_addr=P.BufferAddress("output_tokens"))
                 for c in range(pas.num_cores)}
    return pas.program("accept_prefix_sampling", "writer_accept_prefix_sampling.cpp", writer_ct, writer_rt, cbs,
                       logits, draft_probs, tensors)


def accept_tree_sampling_program(B: int, T: int, V: int, logits_dtype: torch.dtype, temperature: float, *,
                                 has_draft_probs: bool, top_k: int = 0, top_p: float = 1.0,
                                 max_cores: int = MAX_CORES) -> P.Program:
    """Sampled accept_tree (recursive rejection over siblings) for logits [B, T, V] (bf16 or fp32),
    tree_tokens and parents [B, T] int32, draft_probs [B, T, V] fp32 when the drafter samples, seeds [B]
    uint32 (as int32): the chain's rounds and reader, the walk of writer_accept_tree_sampling.cpp. Temperature,
    top_k and top_p are runtime args: changing them compiles nothing."""
    logits = P.Tensor("logits", (B, T, V), logits_dtype)
    tokens = P.Tensor("tree_tokens", (B, T), torch.int32)
    parents = P.Tensor("parents", (B, T), torch.int32)
    seeds = P.Tensor("seeds", (1, B), torch.int32)
    # without draft probabilities the accessor args still need a page size: a one-entry stand-in
    draft_probs = P.Tensor("draft_probs", (B, T, V) if has_draft_probs else (1, 1), torch.float32)
    num_accepted = P.Tensor("num_accepted", (1, B), torch.int32, is_output=True)
    output = P.Tensor("output_tokens", (B, T), torch.int32, is_output=True)
    slots = P.Tensor("accepted_slots", (B, T), torch.int32, is_output=True)
    tensors = [logits, tokens, parents, seeds] + ([draft_probs] if has_draft_probs else []) + [num_accepted, output,
                                                                                                slots]

    cb = dict(logits=0, q=1, read_cmd=2, round=3, partial=4, gather=5, residual=6, tree=7, out=16)
    pas = sampling_pass(V, logits, temperature, top_k, top_p, max_cores, has_draft_probs=has_draft_probs,
                        keeps_residual=True, cb=cb)
    row_slot = P.dram_align(T * 4)  # every staging slot takes a DRAM read or write at its start
    i32 = P.DataFormat.Int32
    cbs = [  # 32-byte scratch, [T] tokens, [T] parents, [B] seeds; [T] output, [T] slots, [B] num_accepted
        P.CircularBuffer(cb["tree"], pas.cores, 1, P.dram_align(32) + 2 * row_slot + P.dram_align(B * 4), i32, "tree"),
        P.CircularBuffer(cb["out"], pas.cores, 1, 2 * row_slot + P.dram_align(B * 4), i32, "out"),
    ]
    writer_ct = P.arg_vector(ARGS, "STCT_WRITER_", **pas.writer_ct(), cb_residual=cb["residual"], cb_tree=cb["tree"],
                             cb_out=cb["out"], batch=B, nodes=T, vocab=V, tokens_ta=P.tensor_accessor_args(tokens),
                             parents_ta=P.tensor_accessor_args(parents),
                             draft_probs_ta=P.tensor_accessor_args(draft_probs),
                             seeds_ta=P.tensor_accessor_args(seeds),
                             num_accepted_ta=P.tensor_accessor_args(num_accepted),
                             output_ta=P.tensor_accessor_args(output), slots_ta=P.tensor_accessor_args(slots))
    probs_addr = P.BufferAddress("draft_probs") if has_draft_probs else 0
    writer_rt = {(c, 0): P.arg_vector(ARGS, "STRT_WRITER_", **pas.writer_rt(c),
                                      tokens_addr=P.BufferAddress("tree_tokens"),
                                      parents_addr=P.BufferAddress("parents"), draft_probs_addr=probs_addr,
                                      seeds_addr=P.BufferAddress("seeds"),
                                      num_accepted_addr=P.BufferAddress("num_accepted"),
                                      output_addr=P.BufferAddress("output_tokens"),
                                      slots_addr=P.BufferAddress("accepted_slots"))
                 for c in range(pas.num_cores)}
    return pas.program("accept_tree_sampling", "writer_accept_tree_sampling.cpp", writer_ct, writer_rt, cbs,
                       logits, draft_probs, tensors)


def seed_words(seed, B: int) -> list[int]:
    """Per-row seeds (an int: one seed for the call, rows independent: sampling.seeds_for_rows) as the int32
    bits of their low 32 bits, what the kernels read."""
    rows = row_seed_values(seed, B) if is_int(seed) else seeds_for_rows(seed, B)  # an int: no torch needed
    words = [int(s) & 0xFFFFFFFF for s in rows.tolist()]
    return [w - (1 << 32) if w >= 1 << 31 else w for w in words]


def logits_dtype(target_logits) -> torch.dtype:
    """The torch dtype of target_logits (a torch tensor, or a ttnn one on a card: bfloat16 or float32)."""
    dtype = device.torch_dtype(target_logits) if is_ttnn_tensor(target_logits) else target_logits.dtype
    if dtype is None:
        raise TypeError(f"target_logits: got ttnn dtype {target_logits.dtype}, expected bfloat16 or float32")
    return dtype


def sampling_inputs(seed, draft_probs, B: int) -> dict:
    """The sampling programs' extra inputs, chain and tree alike: seeds (words, or a ttnn tensor as given) and
    draft_probs (fp32) when given."""
    tensors = {"seeds": seed if is_ttnn_tensor(seed) else seed_words(seed, B)}
    if draft_probs is not None:
        tensors["draft_probs"] = host_converted(draft_probs, lambda x: x.to(torch.float32).contiguous())
    return tensors


def run(ex, target_logits, draft_tokens, *, draft_probs=None, num_draft=None, temperature: float = 0.0,
        top_k: int = 0, top_p: float = 1.0, seed=None, max_cores: int = MAX_CORES):
    """accept_prefix's kernels on executor `ex` (tt_specdec.runtime.emu or .device), arguments
    validated: ((num_accepted [B], output_tokens [B, k+1]), RunResult). torch inputs give int64 torch
    results; ttnn inputs (on a card) give int32 ttnn results that stay there."""
    on_card = is_ttnn_tensor(target_logits)
    B, rows, V = (int(s) for s in target_logits.shape)
    k = rows - 1
    dtype = logits_dtype(target_logits)
    with ex.aligned():
        if temperature == 0.0:
            prog = accept_prefix_program(B, k, V, dtype, max_cores=max_cores)
        else:
            prog = accept_prefix_sampling_program(B, k, V, dtype, temperature, has_draft_probs=draft_probs is not None,
                                                  top_k=top_k, top_p=top_p, max_cores=max_cores)
    row = lambda x: x.to(torch.int32).view(1, B)  # noqa: E731  [B] -> the kernels' [1, B] int32
    tensors = {"logits": host_converted(target_logits, lambda x: x.contiguous()),
               "drafts": host_converted(draft_tokens, lambda x: x.to(torch.int32)),
               "num_draft": [k] * B if num_draft is None else host_converted(num_draft, row)}
    if temperature > 0:
        tensors.update(sampling_inputs(seed, draft_probs, B))
    r = ex.run(prog, tensors)
    n, out = r.outputs["num_accepted"], r.outputs["output_tokens"]
    if on_card:
        return (device.reshape(n, [B]), out), r
    return (ex.to_torch(n).reshape(B).long(), ex.to_torch(out).reshape(B, rows).long()), r


def run_tree(ex, target_logits, tree_tokens, parents, *, draft_probs=None, temperature: float = 0.0, top_k: int = 0,
             top_p: float = 1.0, seed=None, max_cores: int = MAX_CORES):
    """accept_tree's kernels on executor `ex`, greedy or sampled (temperature > 0), arguments validated:
    ((num_accepted [B], output_tokens [B, T], accepted_slots [B, T]), RunResult). torch inputs give int64 torch
    results; ttnn inputs (on a card) give int32 ttnn results that stay there (accepted_slots goes to rollback_kv
    as is)."""
    on_card = is_ttnn_tensor(target_logits)
    B, T, V = (int(s) for s in target_logits.shape)
    dtype = logits_dtype(target_logits)
    with ex.aligned():
        if temperature == 0.0:
            prog = accept_tree_program(B, T, V, dtype, max_cores=max_cores)
        else:
            prog = accept_tree_sampling_program(B, T, V, dtype, temperature, has_draft_probs=draft_probs is not None,
                                                top_k=top_k, top_p=top_p, max_cores=max_cores)
    int32 = lambda x: x.to(torch.int32)  # noqa: E731
    tensors = {"logits": host_converted(target_logits, lambda x: x.contiguous()),
               "tree_tokens": host_converted(tree_tokens, int32), "parents": host_converted(parents, int32)}
    if temperature > 0:
        tensors.update(sampling_inputs(seed, draft_probs, B))
    r = ex.run(prog, tensors)
    n, out, slots = (r.outputs[name] for name in ("num_accepted", "output_tokens", "accepted_slots"))
    if on_card:
        return (device.reshape(n, [B]), out, slots), r
    return (ex.to_torch(n).reshape(B).long(), ex.to_torch(out).reshape(B, T).long(),
            ex.to_torch(slots).reshape(B, T).long()), r


def accept_tree_emu(target_logits: torch.Tensor, tree_tokens: torch.Tensor, parents: torch.Tensor, *,
                    max_cores: int = MAX_CORES):
    """The greedy tree kernels on the emulator, no argument checks (tests give them what the host would
    refuse): (num_accepted [B], output_tokens [B, T], accepted_slots [B, T], RunResult)."""
    (n, out, slots), r = run_tree(emu, target_logits, tree_tokens, parents, max_cores=max_cores)
    return n, out, slots, r


def accept_tree_sampling_emu(target_logits: torch.Tensor, tree_tokens: torch.Tensor, parents: torch.Tensor, *,
                             draft_probs: torch.Tensor | None, temperature: float, seed: int | torch.Tensor,
                             top_k: int = 0, top_p: float = 1.0, max_cores: int = MAX_CORES):
    """The sampled tree kernels on the emulator, no argument checks: (num_accepted [B], output_tokens [B, T],
    accepted_slots [B, T], RunResult)."""
    (n, out, slots), r = run_tree(emu, target_logits, tree_tokens, parents, draft_probs=draft_probs,
                                  temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, max_cores=max_cores)
    return n, out, slots, r


def accept_prefix_emu(target_logits: torch.Tensor, draft_tokens: torch.Tensor,
                      num_draft: torch.Tensor | None = None, *, max_cores: int = MAX_CORES):
    """The greedy kernels on the emulator: (num_accepted [B], output_tokens [B, k+1], RunResult)."""
    (n, out), r = run(emu, target_logits, draft_tokens, num_draft=num_draft, max_cores=max_cores)
    return n, out, r


def accept_prefix_sampling_emu(target_logits: torch.Tensor, draft_tokens: torch.Tensor, *,
                               draft_probs: torch.Tensor | None, num_draft: torch.Tensor | None, temperature: float,
                               seed: int | torch.Tensor, top_k: int = 0, top_p: float = 1.0,
                               max_cores: int = MAX_CORES):
    """The sampling kernels on the emulator: (num_accepted [B], output_tokens [B, k+1], RunResult)."""
    (n, out), r = run(emu, target_logits, draft_tokens, draft_probs=draft_probs, num_draft=num_draft,
                      temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, max_cores=max_cores)
    return n, out, r
