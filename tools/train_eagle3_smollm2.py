"""Recipe for an EAGLE-3 style head on SmolLM2-135M-Instruct, trained on the target's own greedy answers.

Data: ../shared/data/smollm2_teacher/answers_{0,1,2}.npz (its README: 20,192 conversations, 3.94 M
answer tokens, the target's greedy answers to user turns it wrote itself; read in place, never copied).
A conversation is PREFIX + query + SUFFIX + answer (token ids). Held out: the conversations whose user
turn's ids hash (blake2b) into bucket 0 of HELD_BUCKETS, so a repeated user turn is on one side only.

1. `extract`: teacher-forced prefill of the target over whole conversations (no generation), weights
   rounded to bf16 as the CPU engine holds them, the residual stream and norms in fp32 and the matrix
   products in bf16 with fp32 accumulation (torch autocast: AVX-512 BF16 on Zen 4; ~1.8x the fp32 paths
   here, features within ~1 % of fp32, see `check`). Stored per position: the hidden states after
   blocks FEATURE_LAYERS (a low, a middle and a high layer, EAGLE-3's choice 2, L/2, L-3 of L = 30) as
   fp16 [N, 3, d]. The label at position p is the conversation's token p+1: at answer positions that
   is the teacher's greedy token (the target's own next token; `check` measures that our CPU engine's
   argmax agrees). Shards of SHARD_CONVS conversations (a seeded shuffle of all three files) under
   ~/.cache/tt_specdec/eagle3/feat/, each written atomically; finished shards are skipped (resumable).
   --max-shards caps the cache (~250 MB a shard).
2. `train` (tt_specdec/drafters/eagle3.py): EAGLE-3 head, training-time test unrolled --unroll steps.
3. `check`: our CPU engine's greedy token against the teacher's on sampled conversations, and the
   extraction path's features against the engine's.

    nohup nice -n 19 env OMP_NUM_THREADS=1 python tools/train_eagle3_smollm2.py extract > ~/.cache/tt_specdec/eagle3/extract.log 2>&1 &
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import random
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tt_specdec.models.gguf import cache_dir, load_smollm2  # noqa: E402

DATA = pathlib.Path(os.environ.get("TT_SPECDEC_TEACHER") or ROOT.parent / "shared" / "data" / "smollm2_teacher")
FILES = ("answers_0.npz", "answers_1.npz", "answers_2.npz")
# the chat template around the user turn (README of the data), as ids of the GGUF's tokenizer
PREFIX = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712,
          8182, 2, 198, 1, 4093, 198]
SUFFIX = [2, 198, 1, 520, 9531, 198]
FEATURE_LAYERS = (2, 15, 27)  # hidden state after this many blocks (of 30): low, middle, high
HELD_BUCKETS = 50  # 1 in 50 user turns held out
SHARD_CONVS = 256
EXTRACT_TOKENS = 4096  # positions per batched forward
SEED = 0
MAX_LEN = 512


def eagle3_dir() -> pathlib.Path:
    return cache_dir() / "eagle3"


def feat_dir() -> pathlib.Path:
    return eagle3_dir() / "feat"


# ---------------------------------------------------------------------------------------
# the conversations
# ---------------------------------------------------------------------------------------
def read_conversations(data_dir: pathlib.Path = DATA, files=FILES, limit: int | None = None) -> list[dict]:
    """One dict per conversation: `query`, `answer` (int64 ids), `file`, `index` (in its file), `held` (bool)."""
    convs = []
    for name in files:
        with np.load(data_dir / name) as z:  # each key once: an NpzFile decompresses on every access
            q, qo, a, ao = (np.array(z[k]) for k in ("query", "query_off", "answer", "answer_off"))
        if len(qo) != len(ao) or qo[-1] != len(q) or ao[-1] != len(a):
            raise ValueError(f"{name}: got offsets {len(qo)}/{len(ao)} ending {qo[-1]}/{ao[-1]}, expected equal "
                             f"counts ending at {len(q)}/{len(a)}")
        for i in range(len(qo) - 1):
            query = q[qo[i]:qo[i + 1]].astype(np.int64)
            convs.append({"query": query, "answer": a[ao[i]:ao[i + 1]].astype(np.int64), "file": name, "index": i,
                          "held": is_held_out(query)})
            if limit is not None and len(convs) >= limit:
                return convs
    return convs


def is_held_out(query: np.ndarray) -> bool:
    """Bucket 0 of HELD_BUCKETS by a hash of the user turn's ids (stable across runs and machines)."""
    h = hashlib.blake2b(np.asarray(query, dtype="<u4").tobytes(), digest_size=8).digest()
    return int.from_bytes(h, "little") % HELD_BUCKETS == 0


def sequence(conv: dict) -> tuple[np.ndarray, int]:
    """(ids [L] of PREFIX + query + SUFFIX + answer, index of the first answer token)."""
    start = len(PREFIX) + len(conv["query"]) + len(SUFFIX)
    return np.concatenate([PREFIX, conv["query"], SUFFIX, conv["answer"]]).astype(np.int64), start


def shard_plan(convs: list[dict]) -> list[tuple[str, list[int]]]:
    """[(shard name, conversation indices)]: the held-out ones first (held_*), then a seeded shuffle of
    the rest (train_*), SHARD_CONVS each."""
    held = [i for i, c in enumerate(convs) if c["held"]]
    train = [i for i, c in enumerate(convs) if not c["held"]]
    random.Random(SEED).shuffle(train)
    plan = [(f"held_{j // SHARD_CONVS:03d}", held[j:j + SHARD_CONVS]) for j in range(0, len(held), SHARD_CONVS)]
    plan += [(f"train_{j // SHARD_CONVS:04d}", train[j:j + SHARD_CONVS]) for j in range(0, len(train), SHARD_CONVS)]
    return plan


# ---------------------------------------------------------------------------------------
# 1. features
# ---------------------------------------------------------------------------------------
def load_target(max_seq_len: int = MAX_LEN):
    """The torch Llama with weights rounded to bf16 and back (the values the CPU engine computes with)."""
    target = load_smollm2(torch.float32, max_seq_len=max_seq_len)
    with torch.no_grad():
        for p in target.parameters():
            p.copy_(p.bfloat16().float())
    return target.eval().requires_grad_(False)


@torch.no_grad()
def layer_features(target, tokens: torch.Tensor, layers=FEATURE_LAYERS, bf16_matmul: bool = True) -> torch.Tensor:
    """tokens [B, L] (right-padded) -> hidden states after each of `layers` blocks [B, L, len(layers), d] fp32.
    Causal over whole rows; runs only the blocks it needs. bf16_matmul: autocast's bf16 products (fp32
    accumulation, fp32 residual stream); False: all fp32."""
    import torch.nn.functional as F

    cfg = target.cfg
    B, L = tokens.shape
    cos = target.rope_cos[:L].view(1, L, 1, -1)
    sin = target.rope_sin[:L].view(1, L, 1, -1)
    x = target.embed(tokens)
    out = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_matmul):
        for i, layer in enumerate(target.layers[:max(layers)]):
            q, k, v = layer.qkv(x, cos, sin, cfg)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                               is_causal=True, enable_gqa=True)
            x = x + layer.wo(o.transpose(1, 2).reshape(B, L, -1)).float()
            x = layer.mlp(x).float()
            if i + 1 in layers:
                out.append(x)
    return torch.stack(out, 2)


def write_shard(path: pathlib.Path, seqs: list[np.ndarray], starts: list[int], feats: list[np.ndarray],
                meta: dict) -> None:
    """A shard directory: feats.npy fp16 [N, 3, d] (memory-mappable), tokens.npy int32 [N], index.json
    (offsets, answer starts, provenance). Written to a temporary directory, then renamed: present = complete."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        for f in tmp.iterdir():
            f.unlink()
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "feats.npy", np.concatenate(feats))
    np.save(tmp / "tokens.npy", np.concatenate(seqs).astype(np.int32))
    offsets = np.cumsum([0] + [len(s) for s in seqs]).tolist()
    (tmp / "index.json").write_text(json.dumps({**meta, "offsets": offsets, "answer_start": starts}))
    os.replace(tmp, path)


def extract(args) -> None:
    convs = read_conversations()
    plan = shard_plan(convs)
    n_held = sum(c["held"] for c in convs)
    print(f"{len(convs)} conversations, {n_held} held out; {len(plan)} shards of {SHARD_CONVS}", flush=True)
    out = feat_dir()
    out.mkdir(parents=True, exist_ok=True)
    target = load_target()
    t0, n_tok = time.time(), 0
    for s, (name, idx) in enumerate(plan):
        path = out / name
        if path.is_dir() or (args.max_shards is not None and s >= args.max_shards):
            continue
        t1 = time.time()
        seqs, starts = zip(*(sequence(convs[i]) for i in idx))
        order = sorted(range(len(seqs)), key=lambda j: len(seqs[j]))
        feats: list = [None] * len(seqs)
        i = 0
        while i < len(order):  # groups of about one length, ~EXTRACT_TOKENS positions each
            j = i + 1
            while j < len(order) and (j - i + 1) * len(seqs[order[j]]) <= EXTRACT_TOKENS:
                j += 1
            group = order[i:j]
            L = max(len(seqs[g]) for g in group)
            tokens = torch.zeros(len(group), L, dtype=torch.long)
            for b, g in enumerate(group):
                tokens[b, :len(seqs[g])] = torch.from_numpy(seqs[g])
            h = layer_features(target, tokens)
            for b, g in enumerate(group):
                feats[g] = h[b, :len(seqs[g])].half().numpy()
            i = j
        meta = {"files": [convs[i]["file"] for i in idx], "indices": [convs[i]["index"] for i in idx],
                "layers": list(FEATURE_LAYERS), "path": "torch autocast bf16 products, fp32 residual; bf16-rounded weights"}
        write_shard(path, list(seqs), list(starts), feats, meta)
        n = sum(len(x) for x in seqs)
        n_tok += n
        dt = time.time() - t1
        print(f"{name}: {len(seqs)} conversations, {n} tokens, {dt:.0f}s ({n / dt:.0f} tok/s); this run {n_tok} "
              f"tokens in {(time.time() - t0) / 60:.1f} min", flush=True)
    print(f"extract done: {(time.time() - t0) / 60:.1f} min", flush=True)


def check(args) -> None:
    """Our CPU engine's greedy token vs the teacher's answer token on --n sampled training-side
    conversations, and the extraction path's features vs fp32 features (relative error, greedy agreement)."""
    from tt_specdec.models.cpu_llama import CpuLlama, set_threads

    set_threads(args.threads)
    convs = read_conversations()
    rng = random.Random(SEED + 1)
    pick = rng.sample(range(len(convs)), args.n)
    target = load_target()
    engine = CpuLlama(load_target())
    hits = total = hits_x = 0
    rel = []
    for i in pick:
        seq, start = sequence(convs[i])
        engine.allocate_cache(1, len(seq))
        tokens = torch.from_numpy(seq).view(1, -1)
        logits = engine.forward(tokens, torch.zeros(1, dtype=torch.long))[0]  # [L, V]
        greedy = logits[start - 1:-1].argmax(-1)  # the engine's token after each answer prefix
        hits += int((greedy == tokens[0, start:]).sum())
        total += len(seq) - start
        f32 = layer_features(target, tokens, bf16_matmul=False)[0]
        bf = layer_features(target, tokens, bf16_matmul=True)[0]
        rel.append(((bf - f32).norm(dim=-1) / f32.norm(dim=-1)).mean(0))
        hx = target.logits(layer_features(target, tokens, layers=(30,), bf16_matmul=True)[0, :, 0])
        hits_x += int((hx[start - 1:-1].argmax(-1) == tokens[0, start:]).sum())
    print(f"{args.n} conversations, {total} answer tokens: CPU engine greedy == teacher token on {hits}/{total} "
          f"({hits / total:.4f}); bf16-product path greedy == teacher on {hits_x}/{total} ({hits_x / total:.4f}); "
          f"feature relative error (bf16 products vs fp32) per layer {[round(float(x), 4) for x in torch.stack(rel).mean(0)]}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="the target's three-layer features over the teacher conversations")
    ex.add_argument("--max-shards", type=int, default=None, help="stop after this many shards of the plan")
    ck = sub.add_parser("check", help="CPU engine greedy vs teacher tokens; extraction path vs fp32")
    ck.add_argument("--n", type=int, default=16)
    for p in (ex, ck):
        p.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"extract": extract, "check": check}[args.cmd](args)


if __name__ == "__main__":
    main()
