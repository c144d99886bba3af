"""Instructions per vocabulary entry of the sampling accept_prefix writers (writer_accept_prefix_sampling.cpp, and
the tree's writer_accept_tree_sampling.cpp: integers only) on a data-movement RISC-V, per round kind and per
accepted / rejected / bonus row (the tree: per node row it reads): the kernel built for rv32im with clang-19 and
the JIT's flags and run under Unicorn (bench/rv32_machine.py: only the kernel's own instructions count; NoC
transfers, their latency and the waits do not) on one core (max_cores = 1: core 0 scans the whole vocabulary and
decides; the harness stands in for its reader, pointing the CBs at the rows it commands). A round's
scan is per vocabulary entry on every core alike; on C cores each scans V / C of them, and core 0's
decisions (radix selects, the accept test, the combines) are listed apart.

Vocabularies: SmolLM2's 49,152 (bf16) and Llama 3's 128,256 (fp32); B = 3, k = 4 (the tree: T = 8,
TREE_PARENTS), temperature 0.7, alone and with top-k 50 and top-p 0.9; logits N(0, 3^2), draft probabilities
from the target's logits (at the parent, for a tree) plus N(0, 0.3^2) (drafts sampled from them). The reader's
instructions per element: one READ_ROW. The kernel's tokens are checked against the torch op's for the same seed.

    python bench/rv32_sampling.py [--json] [--quick]

Needs clang-19, riscv64-unknown-elf-ld and its rv32im libgcc (Debian's gcc-riscv64-unknown-elf) and `unicorn`.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rv32_machine import Machine  # noqa: E402
from tt_specdec.ops import accept_prefix as accept_prefix_op  # noqa: E402
from tt_specdec.ops.accept_prefix import accept_tree as accept_tree_op  # noqa: E402
from tt_specdec.ops.accept_prefix import program as AP  # noqa: E402

ROUND_NAMES = {1: "START", 2: "TOP_K", 3: "MASS", 4: "TOP_P", 5: "RESIDUAL", 6: "SAMPLE", 7: "DONE", 8: "KEEP",
               9: "SUBTRACT", 10: "SAMPLE_KEPT"}
READ_ROW = 1


def slots(kernel, prefix: str, *names: str) -> list[int]:
    """The CB indices / semaphore ids the kernel was given (its compile-time args, by accept_prefix_common.hpp's names)."""
    return [kernel.compile_time_args[AP.ARGS[prefix + name]] for name in names]


def inputs(B: int, k: int, V: int, dtype: torch.dtype, temperature: float, seed: int = 0, noise: float = 0.3) -> dict:
    """Target logits N(0, 3^2), a drafter whose logits are the target's plus N(0, noise^2): q its softmax at
    `temperature`, the drafts sampled from q (accepted, rejected and bonus rows all occur)."""
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, k + 1, V, generator=g)).to(dtype)
    q = torch.softmax((logits[:, :k].float() + noise * torch.randn(B, k, V, generator=g)) / temperature, dim=-1)
    drafts = torch.multinomial(q.view(B * k, V), 1, generator=g).view(B, k).to(torch.int32)
    return {"logits": logits, "drafts": drafts, "draft_probs": q}


def measure(V: int, dtype: torch.dtype, temperature: float, top_k: int, top_p: float, B: int = 3, k: int = 4,
            seed: int = 7) -> dict:
    x = inputs(B, k, V, dtype, temperature)
    prog = AP.accept_prefix_sampling_program(B, k, V, dtype, temperature, has_draft_probs=True, top_k=top_k,
                                             top_p=top_p, max_cores=1)
    writer = next(kk for kk in prog.kernels if kk.role == "writer")
    tensors = {**x, "num_draft": torch.full((1, B), k, dtype=torch.int32),
               "seeds": torch.tensor(AP.seed_words(seed, B), dtype=torch.int32).view(1, B)}
    cb_logits, cb_q, cb_read_cmd, cb_round, sem_partials, sem_round, sem_read = slots(
        writer, "SCT_WRITER_", "CB_LOGITS", "CB_Q", "CB_READ_CMD", "CB_ROUND", "SEM_PARTIALS", "SEM_ROUND", "SEM_READ")
    machine = Machine(prog, writer, (0, 0), tensors, mailboxes={sem_round: cb_round},
                      reader=(sem_read, cb_read_cmd, [(cb_logits, "logits", 0), (cb_q, "draft_probs", 0)]))
    run = machine.run(outputs=("num_accepted", "output_tokens"))
    if run.stopped:
        raise RuntimeError(f"{writer.path.name}: {run.stopped}")
    n = run.outputs["num_accepted"].view(B).long()
    out = run.outputs["output_tokens"].long()
    n_ref, out_ref = accept_prefix_op(x["logits"], x["drafts"].long(), draft_probs=x["draft_probs"],
                                      temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    if not (torch.equal(n, n_ref) and torch.equal(out, out_ref)):
        raise RuntimeError(f"the kernel under the harness disagrees with the torch op: {n.tolist()} {out.tolist()} "
                           f"against {n_ref.tolist()} {out_ref.tolist()}")

    def row_kind(page: int) -> str:
        b, t = divmod(page, k + 1)
        return "accepted" if t < n[b] else ("bonus" if t == k else "rejected")

    per_round, core0, rows = account(run, V, sem_round, sem_partials, sem_read, row_kind)
    per_row = {}
    for kind in ("accepted", "rejected", "bonus"):
        got = [r["instructions"] for r in rows if r["kind"] == kind]
        if got:
            per_row[kind] = {"rows": len(got), "per_entry": sum(got) / (len(got) * V)}
    return {"kernel": writer.path.name, "V": V, "dtype": str(dtype).replace("torch.", ""), "B": B, "k": k,
            "temperature": temperature, "top_k": top_k, "top_p": top_p, "num_accepted": n.tolist(),
            "instructions": run.instructions, "core0_decisions": core0, "rounds": per_round, "rows": per_row}


def account(run, V: int, sem_round: int, sem_partials: int, sem_read: int, row_kind) -> tuple[dict, int, list[dict]]:
    """A run's instructions by segment between marks: a round's scan runs from its broadcast to its partial's count,
    the rest is core 0's (setup, combines, decisions); a row runs from its READ_ROW to the next one (or the end),
    row_kind(page) names it. Returns ({round: rounds, per_entry}, core 0's instructions, [{kind, instructions}])."""
    scan, rounds, core0 = defaultdict(int), defaultdict(int), 0
    rows: list[dict] = []
    current_op, last = None, 0
    for m in [*run.marks, None]:
        at = run.instructions if m is None else m.instructions
        delta, last = at - last, at
        if current_op is not None:
            scan[current_op] += delta
        else:
            core0 += delta
        if rows:
            rows[-1]["instructions"] += delta
        if m is None:
            break
        if m.sem == sem_round:
            current_op = ROUND_NAMES[m.word]
            rounds[current_op] += 1
        elif m.sem == sem_partials:
            current_op = None
        elif m.sem == sem_read and m.word == READ_ROW:
            rows.append({"kind": row_kind(m.page), "instructions": 0})
    per_round = {op: {"rounds": rounds[op], "per_entry": scan[op] / (rounds[op] * V)} for op in rounds if op != "DONE"}
    return per_round, core0 - scan.get("DONE", 0), rows


TREE_PARENTS = [-1, 0, 0, 0, 1, 1, 2, 4]  # three children at the root, two under node 1: T = 8


def measure_tree(V: int, dtype: torch.dtype, temperature: float, top_k: int, top_p: float, B: int = 3,
                 seed: int = 7, noise: float = 0.3) -> dict:
    """writer_accept_tree_sampling.cpp on one core: logits N(0, 3^2) [B, T, V], each node's token drawn from q, the
    target's logits at its parent plus N(0, noise^2) at `temperature`; per round kind (KEEP, SUBTRACT: the tree's
    own) instructions per vocabulary entry. The kernel's tokens are checked against the torch op's."""
    T = len(TREE_PARENTS)
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, T, V, generator=g)).to(dtype)
    parents = torch.tensor(TREE_PARENTS).repeat(B, 1)
    at_parent = logits.float()[:, torch.tensor(TREE_PARENTS).clamp(min=0)]
    q = torch.softmax((at_parent + noise * torch.randn(B, T, V, generator=g)) / temperature, dim=-1)
    tokens = torch.multinomial(q.view(B * T, V), 1, generator=g).view(B, T)
    prog = AP.accept_tree_sampling_program(B, T, V, dtype, temperature, has_draft_probs=True, top_k=top_k,
                                           top_p=top_p, max_cores=1)
    writer = next(kk for kk in prog.kernels if kk.role == "writer")
    tensors = {"logits": logits, "tree_tokens": tokens.to(torch.int32), "parents": parents.to(torch.int32),
               "draft_probs": q, "seeds": torch.tensor(AP.seed_words(seed, B), dtype=torch.int32).view(1, B)}
    cb_logits, cb_q, cb_read_cmd, cb_round, sem_partials, sem_round, sem_read = slots(
        writer, "STCT_WRITER_", "CB_LOGITS", "CB_Q", "CB_READ_CMD", "CB_ROUND", "SEM_PARTIALS", "SEM_ROUND", "SEM_READ")
    machine = Machine(prog, writer, (0, 0), tensors, mailboxes={sem_round: cb_round},
                      reader=(sem_read, cb_read_cmd, [(cb_logits, "logits", 0), (cb_q, "draft_probs", 0)]))
    run = machine.run(outputs=("num_accepted", "output_tokens", "accepted_slots"))
    if run.stopped:
        raise RuntimeError(f"{writer.path.name}: {run.stopped}")
    got = (run.outputs["num_accepted"].view(B).long(), run.outputs["output_tokens"].long(),
           run.outputs["accepted_slots"].long())
    want = accept_tree_op(logits, tokens, parents, draft_probs=q, temperature=temperature, top_k=top_k, top_p=top_p,
                          seed=seed)
    if not all(torch.equal(a, b) for a, b in zip(got, want)):
        raise RuntimeError(f"the kernel under the harness disagrees with the torch op: {[x.tolist() for x in got]} "
                           f"against {[x.tolist() for x in want]}")
    per_round, core0, rows = account(run, V, sem_round, sem_partials, sem_read, lambda page: "node row")
    return {"kernel": writer.path.name, "V": V, "dtype": str(dtype).replace("torch.", ""), "B": B, "T": T,
            "temperature": temperature, "top_k": top_k, "top_p": top_p, "num_accepted": got[0].tolist(),
            "instructions": run.instructions, "core0_decisions": core0, "rounds": per_round,
            "rows": {"node row": {"rows": len(rows),
                                  "per_entry": sum(r["instructions"] for r in rows) / (len(rows) * V)}}}


def reader(V: int, dtype: torch.dtype, k: int = 4) -> dict:
    """reader_accept_prefix_sampling.cpp for one READ_ROW command (its mailbox and semaphore preset): the
    run ends at its wait for the next command, which no core sends here."""
    prog = AP.accept_prefix_sampling_program(1, k, V, dtype, 0.7, has_draft_probs=True, max_cores=1)
    kernel = next(kk for kk in prog.kernels if kk.role == "reader")
    command = torch.tensor([READ_ROW, 0, 0, 0], dtype=torch.int32).numpy().tobytes()  # ReadCommand{op, page}
    cb_read_cmd, sem_read = slots(kernel, "SCT_READER_", "CB_READ_CMD", "SEM_READ")
    run = Machine(prog, kernel, (0, 0), {}, fills={cb_read_cmd: command}, sems={sem_read: 1}).run()
    if run.stopped is None or "wait forever" not in run.stopped:
        raise RuntimeError(f"{kernel.path.name}: expected to stop at its wait for a second command, got {run.stopped}")
    return {"kernel": kernel.path.name, "V": V, "dtype": str(dtype).replace("torch.", ""),
            "instructions": run.instructions, "per_entry": run.instructions / V}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quick", action="store_true", help="SmolLM2's vocabulary only")
    args = ap.parse_args(argv)
    shapes = [(49152, torch.bfloat16)] + ([] if args.quick else [(128256, torch.float32)])
    settings = ((0, 1.0), (50, 0.9))
    results = [measure(V, dtype, 0.7, top_k, top_p) for V, dtype in shapes for top_k, top_p in settings]
    results += [measure_tree(V, dtype, 0.7, top_k, top_p) for V, dtype in shapes for top_k, top_p in settings]
    readers = [reader(V, dtype) for V, dtype in shapes]
    if args.json:
        print(json.dumps({"writer": results, "reader": readers}, indent=1))
        return 0
    for r in results:
        shape = f"k={r['k']}" if "k" in r else f"tree T={r['T']}"
        print(f"{r['kernel']} V={r['V']} {r['dtype']} temperature={r['temperature']} top_k={r['top_k']} "
              f"top_p={r['top_p']} B={r['B']} {shape} num_accepted={r['num_accepted']}: {r['instructions']} "
              f"instructions, "
              f"{r['core0_decisions']} of them core 0's decisions")
        print("  round      rounds  instructions per entry")
        for op, v in r["rounds"].items():
            print(f"  {op:10s} {v['rounds']:6d}  {v['per_entry']:.2f}")
        print("  row        rows    instructions per entry")
        for kind, v in r["rows"].items():
            print(f"  {kind:10s} {v['rows']:6d}  {v['per_entry']:.2f}")
    for r in readers:
        print(f"{r['kernel']} V={r['V']} {r['dtype']}: {r['instructions']} instructions for one row, "
              f"{r['per_entry']:.4f} per entry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
