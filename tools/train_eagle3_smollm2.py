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
2. `train` (tt_specdec/drafters/eagle3.py): fuse (3d -> d) of the three features scaled by their
   per-dimension RMS, fc(embed(x_{p+1}), g_p) -> one decoder layer of the target's shapes -> own norm
   and lm_head over the FR-Spec vocabulary (--vocab most frequent tokens of the training answers,
   lm_head rows initialised from the target's). Training-time test: --unroll passes, pass j feeding
   the head's own output and attending exactly what draft step j has in its cache (ttt_forward; a
   test checks pass j == draft step j of the real drafter); CE per pass weighted 0.8^(j-1) on the
   answer positions; AdamW (betas 0.9/0.95), warm-up 30 steps, cosine to 10 % over --steps, clip 1.0;
   batches of ~--batch-tokens positions of conversations of about one length from one random shard;
   --bf16: autocast bf16 products (fp32 master weights). Reads new shards at each checkpoint. Every
   --ckpt-minutes: held-out agreement per draft position (teacher-forced pass j, --held-convs
   conversations), checkpoint ~/.cache/tt_specdec/eagle3/ckpt.pt, and head_best.safetensors when the
   expected accepted drafts (sum of running products of the agreements) beats every earlier one.
3. `check`: our CPU engine's greedy token against the teacher's on sampled conversations, and the
   extraction path's features against fp32 features.
4. `agreement`: a head's real drafter (Eagle3Drafter / the shipped EagleDrafter) on the CPU-engine
   target, teacher-forced on held-out conversations: per draft position, P(draft j right | 1..j-1 right);
   --json writes the figures. The target keeps the head's three layers through Decoder.allocate_cache(...,
   keep_hidden=FEATURE_LAYERS) (the CPU engine copies them out between its blocks). --prompts bench: the same
   on the 24 bench prompts followed by the target's own greedy answers (what the drafter meets in the bench);
   both print a_1 per category and per answer window (0-127, 128+) and the answer tokens' vocabulary coverage.
   `vocab`: held-out answer coverage of vocabularies of several sizes.

Session 1 (2 shared Zen 4 cores, AVX-512 BF16, load 3-9 from other jobs; every job 1 thread, nice 19):
  extract from 18:55 UTC to the session's end (paused 19:58-20:21 and during benchmarks, to give training the
  CPU): 405 held-out conversations (2 shards), training shards as its log shows; 456 tok/s
  beside one other job (held_000), 110-230 tok/s beside training and benchmarks. One-off timings on 8
  conversations (2,336 padded tokens, 1 thread): CPU engine fp32 310 tok/s, torch fp32 301 tok/s, torch
  autocast bf16 products 613 tok/s against fp32 346 tok/s in the same process. `check --n 24`: engine
  greedy == teacher token on 4480/4480 answer tokens; the bf16-product path's greedy 4456/4480;
  feature relative error of that path 0.0035 / 0.0059 / 0.0070 (layers 2 / 15 / 27).
  `vocab`: held-out answer coverage 0.778 / 0.853 / 0.908 / 0.940 / 0.955 / 0.974 / 0.983 / 0.996 for
  N = 1 k / 2 k / 4 k / 6 k / 8 k / 12 k / 16 k / 32 k: N = 8192.
  train --bf16 (lr 1e-3 to step 125, then 6e-4; 128 held-out conversations in the agreement to step
  125, then 64): 50-450 loss positions/s. Held-out agreement per draft position (pass j):
  step 77 [0.227 0.179 0.159 0.150 0.146], 125 [0.285 0.227 0.207 0.194 0.178], 201 [0.304 0.252 0.233
  0.213 0.203], 342 [0.349 0.281 0.263 0.244 0.237], 434 [0.368 0.314 0.303 0.279 0.269], 655 [0.416
  0.367 0.348 0.332 0.318] (1.04 M loss positions, 84.5 min; shipped as smollm2_eagle3.safetensors).
  `agreement --convs 32 --k 5` (real drafters): shipped EAGLE-1 head [0.401 0.360 0.372 0.416 0.485],
  0.632 drafts accepted per proposal; step 342 [0.363 0.347 0.336 0.280 0.300] 0.545; step 655 [0.418
  0.449 0.434 0.400 0.447] 0.730.

Session 2 (the same machine, from 21:30 UTC: extraction and training resumed from session 1's cache,
still run by session 1's checkout, beside the port's tests and measurements): held-out (64 conversations)
step 806 [0.458 0.408 0.387 0.367 0.352] (1.27 M loss positions, 99.7 min), 913 [0.470 0.430 0.413 0.389
0.380], 1036 [0.484 0.439 0.421 0.405 0.394], 1171 [0.509 0.474 0.451 0.426 0.406] (1.85 M loss positions,
145.0 min; shipped). `agreement --convs 32 --k 5` (real drafters): shipped EAGLE-1 head [0.401 0.360 0.372
0.413 0.489] 0.631 drafts accepted per proposal; step 806 [0.480 0.544 0.569 0.577 0.602] 1.023; step 1171
[0.534 0.595 0.623 0.662 0.641] 1.259; step 1358 (held-out [0.532 0.501 0.484 0.454 0.441], 2.14 M loss
positions, 160.0 min of training) [0.564 0.630 0.669 0.701 0.734] 1.440; resumed 23:09-23:27 UTC with the
machine otherwise idle (2.6 s/step, ~690 tok/s extraction): step 1604 (held-out [0.550 0.516 0.488 0.470
0.454], 2.52 M loss positions, 175.0 min of training; shipped) [0.586 0.660 0.718 0.765 0.786] 1.617. Both
jobs stopped at 23:27 UTC with 48 of 80 training shards extracted (session 2's first run: 1.42 M tokens in
86.3 min, 274 tok/s on average beside up to eight helpers' tests, 97-670 tok/s per shard).

Session 3 (2026-12-05, the same CPU model, a fresh machine: no features or checkpoint left): `extract
--from-train-shard 48` made the held-out shards and the 30 training shards the step-1604 head had not seen
(train_0048-0077): 2.00 M tokens in 56.7 min (1,000-1,300 tok/s per shard idle, 180-480 beside helpers' tests).
`train --init <shipped step-1604 head> --bf16 --lr 6e-4 --held-convs 64 --ckpt-minutes 12` (a fresh AdamW, a
30-step warm-up from step 1604 on the same cosine), then `--resume`: held-out (64 conversations) step 1763 [0.559
0.528 0.508 0.478 0.464], 2070 [0.579 0.544 0.525 0.501 0.480], 2584 [0.594 0.560 0.543 0.515 0.497], 3048 [0.617
0.592 0.571 0.551 0.535] (4.80 M loss positions, 224.0 min of training; shipped; ~1.7 s a step idle). A first
try with only 5 new shards on disk overfitted them (train agreement 0.92 within 180 steps) and was discarded.
`agreement --convs 32 --k 5`: step 3048 [0.647 0.710 0.744 0.755 0.801] 1.897; `--prompts bench --convs 24`:
step 1604 [0.451 0.497 0.536 0.706 0.811] 0.936, step 3048 [0.501 0.519 0.590 0.628 0.725] 1.068.

Resume (every job skips or continues what is on disk; one thread each, niced; the checkpoint, shards and
head_best of an earlier run load unchanged; on a machine without them, start from the shipped head with
`train --init tt_specdec/models/weights/smollm2_eagle3.safetensors` and `extract --from-train-shard N`):

    cd <repo> && mkdir -p ~/.cache/tt_specdec/eagle3
    OMP_NUM_THREADS=1 nohup nice -n 19 python tools/train_eagle3_smollm2.py extract >> ~/.cache/tt_specdec/eagle3/extract.log 2>&1 &
    OMP_NUM_THREADS=1 nohup nice -n 19 python tools/train_eagle3_smollm2.py train --resume --bf16 --lr 6e-4 --held-convs 64 --ckpt-minutes 15 >> ~/.cache/tt_specdec/eagle3/train.log 2>&1 &
    python tools/train_eagle3_smollm2.py agreement --kind eagle3 --head ~/.cache/tt_specdec/eagle3/head_best.safetensors --convs 32 --k 5
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
        if name.startswith("train_") and int(name.split("_")[1]) < args.from_train_shard:
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


# ---------------------------------------------------------------------------------------
# 2. the head
# ---------------------------------------------------------------------------------------
class Shard:
    """A finished feature shard: `shard[i]` -> (tokens int64 [n], feats fp16 [n, 3, d] (memory-mapped),
    answer start)."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        index = json.loads((path / "index.json").read_text())
        self.offsets, self.starts = index["offsets"], index["answer_start"]
        self.tokens = np.load(path / "tokens.npy").astype(np.int64)
        self.feats = np.load(path / "feats.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int):
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.tokens[a:b], self.feats[a:b], self.starts[i]


def make_batch(items):
    """[(tokens [n], feats [n, 3, d], answer start)] -> tokens [B, L], feats [B, L, 3d] fp32 (right-padded),
    mask [B, L]: slots p whose label x_{p+2} is an answer token (p = start-2 .. n-3)."""
    L = max(len(t) for t, _, _ in items)
    width = int(np.prod(items[0][1].shape[1:]))
    tokens = torch.zeros(len(items), L, dtype=torch.long)
    feats = torch.zeros(len(items), L, width)
    mask = torch.zeros(len(items), L, dtype=torch.bool)
    for b, (t, f, start) in enumerate(items):
        n = len(t)
        tokens[b, :n] = torch.from_numpy(t)
        feats[b, :n] = torch.from_numpy(np.asarray(f, dtype=np.float32).reshape(n, width))
        mask[b, max(start - 2, 0):n - 2] = True
    return tokens, feats, mask


def frequency_ranked_vocab(convs: list[dict], vocab_size: int) -> torch.Tensor:
    """[V] ids by how often the target emits them in the training answers (ties: lower id first)."""
    counts = np.bincount(np.concatenate([c["answer"] for c in convs if not c["held"]]), minlength=vocab_size)
    return torch.from_numpy(np.lexsort((np.arange(vocab_size), -counts)).astype(np.int64))


def coverage(convs: list[dict], ids: torch.Tensor, vocab_size: int) -> float:
    """Share of the held-out answer tokens inside ids."""
    inside = np.zeros(vocab_size, dtype=bool)
    inside[ids.numpy()] = True
    return float(inside[np.concatenate([c["answer"] for c in convs if c["held"]])].mean())


def vocab(args) -> None:
    """FR-Spec vocabulary sizes: held-out answer coverage of the N most frequent training-answer tokens."""
    convs = read_conversations()
    ranked = frequency_ranked_vocab(convs, 49152)
    for n in (1024, 2048, 4096, 6144, 8192, 12288, 16384, 32768):
        print(f"N = {n}: held-out answer coverage {coverage(convs, ranked[:n], 49152):.4f}", flush=True)


class Pool:
    """The finished shards on disk (train_* / held_*), rescanned as extraction adds more."""

    def __init__(self):
        self.train: list[Shard] = []
        self.held: list[Shard] = []
        self.rescan()

    def rescan(self) -> int:
        known = {s.path.name for s in self.train + self.held}
        new = 0
        for path in sorted(feat_dir().glob("*_*")):
            if path.suffix == ".tmp" or path.name in known or not (path / "index.json").is_file():
                continue
            (self.held if path.name.startswith("held") else self.train).append(Shard(path))
            new += 1
        return new

    def positions(self) -> int:
        return sum(s.offsets[-1] for s in self.train)


def sample_items(pool: Pool, rng: random.Random, batch_tokens: int):
    """~batch_tokens positions: conversations of about one length from one random shard (little padding)."""
    shard = pool.train[rng.randrange(len(pool.train))]
    order = sorted(range(len(shard)), key=lambda i: (shard.offsets[i + 1] - shard.offsets[i], rng.random()))
    i, items, n = rng.randrange(len(order)), [], 0
    while n < batch_tokens:
        items.append(shard[order[i % len(order)]])
        n += len(items[-1][0])
        i += 1
    return items


@torch.no_grad()
def held_out_agreement(head, embed, pool: Pool, unroll: int, max_convs: int) -> list[float]:
    """Per draft position j = 1..unroll: top-1 agreement with the teacher's token at held-out answer
    positions, given drafts 1..j-1 right (training-time-test pass j, teacher-forced)."""
    from tt_specdec.drafters.eagle3 import ttt_loss

    hits, counts = np.zeros(unroll), np.zeros(unroll)
    items = [s[i] for s in pool.held for i in range(len(s))][:max_convs]
    for i in range(0, len(items), 8):
        tokens, feats, mask = make_batch(items[i:i + 8])
        _, h, c = ttt_loss(head, embed, tokens, feats, mask, unroll)
        hits += h
        counts += c
    return (hits / np.maximum(counts, 1)).tolist()


def expected_length(agree: list[float]) -> float:
    """Accepted drafts per proposal of len(agree) drafts if position j is right with probability agree[j]
    given the earlier ones were: sum of the running products."""
    return float(np.cumprod(agree).sum())


def lr_at(step: int, total: int, peak: float, warm_from: int = 0, warmup: int = 30) -> float:
    """The cosine of the whole run (peak to 10 % over `total` steps), ramped up linearly over `warmup` steps from
    step warm_from (0; or where a fresh optimizer starts on trained weights, --init)."""
    import math

    t = min(1.0, max(0, step - warmup) / max(1, total - warmup))
    lr = peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
    return lr * (step - warm_from + 1) / warmup if step < warm_from + warmup else lr


RECIPE = "tools/train_eagle3_smollm2.py (seed 0): EAGLE-3 head on SmolLM2-135M-Instruct's own greedy answers"


def export_head(head, path: pathlib.Path, meta: dict) -> None:
    from tt_specdec.drafters.eagle import save_head

    path.parent.mkdir(parents=True, exist_ok=True)
    save_head(head, path, {k: str(v) for k, v in meta.items()})
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)


def train(args) -> None:
    from tt_specdec.drafters.eagle3 import Eagle3Head, ttt_loss

    ckpt_path = eagle3_dir() / "ckpt.pt"
    best_path = eagle3_dir() / "head_best.safetensors"
    target = load_target()
    embed = target.embed.requires_grad_(False)
    pool = Pool()
    print(f"shards: {len(pool.held)} held-out, {len(pool.train)} training ({pool.positions()} positions)", flush=True)
    while not pool.train or not pool.held:
        time.sleep(60)
        pool.rescan()
    ck = torch.load(ckpt_path, weights_only=False) if ckpt_path.is_file() and args.resume else None
    step, seen, train_s, best = 0, 0, 0.0, -1.0
    rng = random.Random(SEED + 2)
    warm_from = 0  # lr_at's warm-up starts here (a fresh optimizer on trained weights warms up again)
    if ck is None and args.init:
        from safetensors import safe_open
        from tt_specdec.drafters.eagle3 import load_head3

        head = load_head3(args.init, target.max_seq_len)
        with safe_open(args.init, framework="pt") as f:
            meta = f.metadata()
        step, seen = int(meta["steps"]), int(meta["loss_positions_seen"])
        train_s, warm_from = float(meta["train_minutes"]) * 60, int(meta["steps"])
        rng = random.Random(SEED + 3 + step)  # not the first run's batch order again
        print(f"from {args.init}: step {step}, {seen} loss positions seen, {train_s / 60:.1f} min of training", flush=True)
    elif ck is None:
        convs = read_conversations()
        ranked = frequency_ranked_vocab(convs, target.vocab_size)
        print(f"vocabulary {args.vocab}: held-out answer coverage {coverage(convs, ranked[:args.vocab], target.vocab_size):.4f}",
              flush=True)
        f = np.concatenate([np.asarray(pool.train[0][i][1], dtype=np.float32) for i in range(64)])  # [n, 3, d]
        scale = torch.from_numpy(np.sqrt((f ** 2).mean(0))).clamp(min=1e-3)
        torch.manual_seed(SEED)
        head = Eagle3Head.for_target(target, ranked[:args.vocab], FEATURE_LAYERS, scale)
    else:
        head = Eagle3Head(target.cfg, ck["model"]["vocab_ids"], FEATURE_LAYERS)
        head.load_state_dict(ck["model"])
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)
    if ck is not None:
        opt.load_state_dict(ck["opt"])
        step, seen, train_s, best = ck["step"], ck["seen"], ck["train_s"], ck["best"]
        warm_from = ck.get("warm_from", 0)
        rng.setstate(ck["rng"])
        print(f"resumed at step {step}, {seen} loss positions seen, {train_s / 60:.0f} min of training", flush=True)

    def checkpoint() -> None:
        nonlocal best
        head.eval()
        t = time.time()
        agree = held_out_agreement(head, embed, pool, args.eval_unroll, args.held_convs)
        score = expected_length(agree)
        print(f"CKPT step {step}: held-out top-1 agreement per draft position {[round(a, 4) for a in agree]} "
              f"(expected accepted of {args.eval_unroll}: {score:.3f}; {time.time() - t:.0f}s); {seen} loss positions seen, "
              f"{train_s / 60:.1f} min of training", flush=True)
        if score > best:
            best = score
            export_head(head, best_path, {
                "recipe": RECIPE, "steps": step, "loss_positions_seen": seen, "train_minutes": f"{train_s / 60:.1f}",
                "held_out_top1_agreement_per_position": ",".join(f"{a:.4f}" for a in agree),
                "held_out_conversations": min(args.held_convs, sum(len(s) for s in pool.held)),
                "unroll": args.unroll, "vocab_subset": args.vocab, "feature_layers": list(FEATURE_LAYERS),
                "teacher": "../shared/data/smollm2_teacher (SmolLM2-135M-Instruct greedy answers)"})
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": head.state_dict(), "opt": opt.state_dict(), "step": step, "seen": seen,
                    "train_s": train_s, "rng": rng.getstate(), "best": best, "args": vars(args), "warm_from": warm_from,
                    "agreement": agree}, tmp)
        os.replace(tmp, ckpt_path)
        n_new = pool.rescan()
        print(f"  +{n_new} new shards: {len(pool.train)} training shards ({pool.positions()} positions)", flush=True)

    if args.cmd == "evaluate" or (ck is None and args.init):  # a started head's score is the one to beat
        checkpoint()
    if args.cmd == "evaluate":
        return
    last, window = time.time(), []
    while step < args.steps:
        t1 = time.time()
        head.train()
        tokens, feats, mask = make_batch(sample_items(pool, rng, args.batch_tokens))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, warm_from)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss, hits, counts = ttt_loss(head, embed, tokens, feats, mask, args.unroll)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        step += 1
        seen += counts[0]
        train_s += time.time() - t1
        window.append((loss.item(), *(h / max(c, 1) for h, c in zip(hits, counts)), time.time() - t1, counts[0]))
        if step % 10 == 0:
            w = [sum(x) / len(window) for x in zip(*window)]
            print(f"step {step} loss {w[0]:.3f} train-agree {[round(a, 3) for a in w[1:-2]]} {w[-2]:.1f} s/step "
                  f"({w[-1] / w[-2]:.0f} loss positions/s) lr {lr_at(step, args.steps, args.lr, warm_from):.2e} seen {seen}",
                  flush=True)
            window = []
        if time.time() - last > args.ckpt_minutes * 60 or step == args.steps:
            checkpoint()
            last = time.time()


# ---------------------------------------------------------------------------------------
# 4. measurement: the real drafter, teacher-forced on held-out conversations
# ---------------------------------------------------------------------------------------
def agreement_sequences(args, target) -> list[tuple[str, np.ndarray, int]]:
    """[(category, ids [L], first answer index)]: --convs held-out teacher conversations ("held"), or with
    --prompts bench the first --convs bench prompts (chat template) followed by the target's own greedy answer
    of at most --answer-tokens tokens (on this CPU engine: what the drafter must predict there)."""
    if args.prompts == "held":
        return [("held", *sequence(c)) for c in [c for c in read_conversations() if c["held"]][:args.convs]]
    from tt_specdec.bench.harness import prompt_set
    from tt_specdec.models import load_smollm2_tokenizer
    from tt_specdec.speculative import generate_plain

    tok = load_smollm2_tokenizer()
    out = []
    for cat, text in prompt_set("smollm2", args.convs):
        ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}]))
        answer = generate_plain(target, [ids], max_new_tokens=args.answer_tokens, eos_token_id=tok.eos_token_id).tokens[0]
        out.append((cat, np.array(list(ids) + list(answer), dtype=np.int64), len(ids)))
    return out


def agreement(args) -> None:
    """Per draft position j = 1..k, the share of proposals whose draft j is the teacher's token given drafts
    1..j-1 were (a_j), for a shipped-style head run by its real drafter on the CPU engine target: at every
    answer position n of the sequences (agreement_sequences: held-out conversations or the bench prompts with
    the target's answers), the target has run over the whole sequence (teacher-forced), the drafter proposes
    k drafts after tokens 0..n-1. Also E = mean drafts accepted of k, and a_1 per category, per answer window
    (positions 0-127 of an answer, 128 on) and the share of answer tokens inside the head's vocabulary."""
    import tt_specdec
    from tt_specdec.drafters.eagle import load_eagle_drafter
    from tt_specdec.drafters.eagle3 import SMOLLM2_EAGLE3, Eagle3Drafter, load_head3
    from tt_specdec.models.cpu_llama import set_threads
    from tt_specdec.sampling import Sampling, row_seeds

    set_threads(args.threads)
    target = tt_specdec.load_pair("smollm2").target
    if args.kind == "eagle3":
        drafter = Eagle3Drafter(target, load_head3(args.head or SMOLLM2_EAGLE3, target.max_seq_len))
        if args.vocab:
            drafter = Eagle3Drafter(target, drafter.head.with_vocabulary(drafter.head.vocab_ids[:args.vocab]))
    else:
        drafter = load_eagle_drafter(target, *([args.head] if args.head else []))
        if args.vocab:
            drafter = type(drafter)(target, drafter.head.with_vocabulary(drafter.head.vocab_ids[:args.vocab]))
    drafter.stop_reach = 0.0  # always k drafts
    inside = np.zeros(target.vocab_size, dtype=bool)
    inside[drafter.head.vocab_ids.numpy()] = True
    seqs = agreement_sequences(args, target)
    k = args.k
    hits, reach, proposals, t0 = np.zeros(k), np.zeros(k), 0, time.time()
    first: dict[str, list[int]] = {}  # a_1 hits per category / answer window
    in_vocab = []
    for cat, seq, start in seqs:
        L = len(seq)
        target.allocate_cache(1, L + k + 2, keep_hidden=drafter.needs_target_hidden)
        drafter.reset(1, L + k + 2)
        context = torch.zeros(1, L + k + 2, dtype=torch.long)
        context[0, :L] = torch.from_numpy(seq)
        target.forward(context[:, :L], torch.zeros(1, dtype=torch.long))
        for n in range(start, L):  # drafts after tokens 0..n-1; draft j (0-based) is compared with seq[n+j]
            drafts = drafter.propose(context, torch.tensor([n]), k, Sampling(), row_seeds(0, 1)).tokens[0].tolist()
            proposals += 1
            window = "answer 0-127" if n - start < 128 else "answer 128+"
            for key in (cat, window):
                first.setdefault(key, []).append(int(drafts[0] == seq[n]))
            in_vocab.append(bool(inside[seq[n]]))
            for j in range(min(k, L - n)):
                reach[j] += 1
                if drafts[j] != seq[n + j]:
                    break
                hits[j] += 1
    a = hits / np.maximum(reach, 1)
    per_proposal = hits.sum() / max(proposals, 1)
    by = {key: round(float(np.mean(v)), 4) for key, v in first.items()}
    source = "held-out conversations" if args.prompts == "held" else "bench prompts (+ the target's answers)"
    print(f"{args.kind} {args.head or 'shipped'} vocabulary {len(drafter.head.vocab_ids)}: {len(seqs)} {source}, "
          f"{proposals} proposals of k={k} ({time.time() - t0:.0f}s): agreement per draft position "
          f"{[round(float(x), 4) for x in a]}; accepted drafts per proposal {per_proposal:.3f}; a_1 by {by}; "
          f"answer tokens inside the vocabulary {np.mean(in_vocab):.4f}", flush=True)
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps({
            "kind": args.kind, "head": str(args.head or "shipped"), "vocabulary": len(drafter.head.vocab_ids),
            "prompts": args.prompts, "sequences": len(seqs), "proposals": proposals, "k": k, "threads": args.threads,
            "agreement_per_position": [round(float(x), 4) for x in a], "reached_per_position": reach.tolist(),
            "accepted_drafts_per_proposal": round(float(per_proposal), 4), "a1_by": by,
            "answer_tokens_in_vocabulary": round(float(np.mean(in_vocab)), 4), "seconds": round(time.time() - t0, 1)},
            indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="the target's three-layer features over the teacher conversations")
    ex.add_argument("--max-shards", type=int, default=None, help="stop after this many shards of the plan")
    ex.add_argument("--from-train-shard", type=int, default=0,
                    help="skip training shards train_0000 .. before this one (the held-out shards are always made)")
    ck = sub.add_parser("check", help="CPU engine greedy vs teacher tokens; extraction path vs fp32")
    ck.add_argument("--n", type=int, default=16)
    vo = sub.add_parser("vocab", help="held-out coverage of FR-Spec vocabularies of several sizes")
    tr = sub.add_parser("train", help="train the head on the shards, reading new ones as they arrive")
    ev = sub.add_parser("evaluate", help="held-out agreement of the checkpoint")
    for p in (tr, ev):
        p.add_argument("--resume", action="store_true", help="continue from ~/.cache/tt_specdec/eagle3/ckpt.pt")
        p.add_argument("--init", default=None,
                       help="without a checkpoint: start from this head (safetensors, e.g. the shipped one), its "
                            "steps / positions / minutes counted on, with a fresh optimizer and a new warm-up")
        p.add_argument("--steps", type=int, default=20000, help="length of the cosine schedule")
        p.add_argument("--batch-tokens", type=int, default=2048)
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--weight-decay", type=float, default=0.01)
        p.add_argument("--unroll", type=int, default=3, help="training-time-test passes (draft positions)")
        p.add_argument("--eval-unroll", type=int, default=5, help="draft positions of the held-out agreement")
        p.add_argument("--vocab", type=int, default=8192, help="FR-Spec vocabulary: the most frequent answer tokens")
        p.add_argument("--ckpt-minutes", type=float, default=10.0)
        p.add_argument("--held-convs", type=int, default=128, help="held-out conversations of the agreement")
        p.add_argument("--bf16", action="store_true", help="autocast bf16 products (fp32 weights and optimizer)")
    ag = sub.add_parser("agreement", help="a head's real drafter, teacher-forced on held-out conversations")
    ag.add_argument("--kind", choices=("eagle", "eagle3"), default="eagle3")
    ag.add_argument("--head", default=None, help="safetensors (default for eagle: the shipped head)")
    ag.add_argument("--vocab", type=int, default=None, help="only the N most frequent of its vocabulary")
    ag.add_argument("--convs", type=int, default=48, help="conversations (or bench prompts) to run")
    ag.add_argument("--prompts", choices=("held", "bench"), default="held",
                    help="held-out teacher conversations, or the bench prompts with the target's own answers")
    ag.add_argument("--answer-tokens", type=int, default=128, help="--prompts bench: the answers' length")
    ag.add_argument("--k", type=int, default=5)
    ag.add_argument("--json", default=None, help="also write the figures here")
    for p in (ex, ck, vo, tr, ev, ag):
        p.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.cmd == "evaluate":
        args.resume = True
    {"extract": extract, "check": check, "vocab": vocab, "train": train, "evaluate": train,
     "agreement": agreement}[args.cmd](args)


if __name__ == "__main__":
    main()
