"""Recipe for the tiny byte-level test pair (tt_specdec/models/weights/tiny_*.safetensors).

Text: the .py sources of the running Python's standard library (offline on every
machine), files split train / held-out by a hash of their path. The target is
trained on next-byte prediction; the draft is distilled from the target (forward
KL to the target's distribution), which is what raises acceptance.

    .venv/bin/python tools/train_tiny.py            # both, seeded, ~15 min on 2 idle cores
    .venv/bin/python tools/train_tiny.py --only draft
"""
from __future__ import annotations

import argparse
import hashlib
import math
import pathlib
import sysconfig
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from tt_specdec.models.llama import Llama, LlamaConfig

WEIGHTS = pathlib.Path(__file__).resolve().parents[1] / "tt_specdec" / "models" / "weights"
TARGET_CFG = LlamaConfig(vocab_size=256, dim=256, n_layers=4, n_heads=8, n_kv_heads=2, ffn_dim=688,
                         max_seq_len=2048)
DRAFT_CFG = LlamaConfig(vocab_size=256, dim=96, n_layers=1, n_heads=3, n_kv_heads=1, ffn_dim=256,
                        max_seq_len=2048)


def is_held_out(path: pathlib.Path, root: pathlib.Path) -> bool:
    return hashlib.sha1(str(path.relative_to(root)).encode()).digest()[0] % 10 == 0


def corpus(held_out: bool) -> bytes:
    """Concatenated stdlib sources, train (90 %) or held-out (10 %) files."""
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if "site-packages" not in p.parts and "test" not in p.parts and "tests" not in p.parts)
    return b"\n".join(p.read_bytes() for p in files if is_held_out(p, root) == held_out)


def batches(data: torch.Tensor, batch: int, seq: int, gen: torch.Generator):
    while True:
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen)
        yield torch.stack([data[s:s + seq] for s in starts.tolist()]).long()


def train(model: Llama, data: torch.Tensor, steps: int, lr: float, batch: int, seq: int, seed: int,
          teacher: Llama | None = None, label: str = "") -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    start = time.time()
    for step, x in zip(range(steps), batches(data, batch, seq + 1, gen)):
        for g in opt.param_groups:  # linear warm-up, cosine decay
            g["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / steps))
        logits = model.forward_train(x[:, :-1])
        if teacher is None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        else:
            with torch.no_grad():
                target = F.log_softmax(teacher.forward_train(x[:, :-1]), -1)
            loss = F.kl_div(F.log_softmax(logits, -1), target, log_target=True, reduction="batchmean") / seq
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"[{label}] step {step}/{steps} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)


@torch.no_grad()
def agreement(target: Llama, draft: Llama, data: torch.Tensor, seq: int = 256, n: int = 32) -> float:
    """Top-1 agreement of draft and target on held-out text."""
    gen = torch.Generator().manual_seed(1)
    x = next(batches(data, n, seq, gen))
    return (target.forward_train(x).argmax(-1) == draft.forward_train(x).argmax(-1)).float().mean().item()


def save(model: Llama, name: str, recipe: str) -> None:
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(WEIGHTS / f"{name}.safetensors"),
              metadata={"config": model.cfg.to_json(), "recipe": recipe})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["target", "draft"])
    ap.add_argument("--target-steps", type=int, default=1200)
    ap.add_argument("--draft-steps", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    train_data = torch.frombuffer(bytearray(corpus(held_out=False)), dtype=torch.uint8)
    held_out = torch.frombuffer(bytearray(corpus(held_out=True)), dtype=torch.uint8)
    print(f"train {len(train_data) / 1e6:.1f} MB, held-out {len(held_out) / 1e6:.1f} MB", flush=True)
    if args.only != "draft":
        torch.manual_seed(0)
        target = Llama(TARGET_CFG)
        train(target, train_data, args.target_steps, 3e-3, 16, 128, seed=0, label="target")
        save(target, "tiny_target", f"tools/train_tiny.py seed 0, {args.target_steps} steps")
    from tt_specdec.models.loaders import load_model
    target = load_model(WEIGHTS / "tiny_target.safetensors")
    if args.only != "target":
        torch.manual_seed(1)
        draft = Llama(DRAFT_CFG)
        train(draft, train_data, args.draft_steps, 3e-3, 16, 128, seed=1, teacher=target, label="draft")
        save(draft, "tiny_draft", f"tools/train_tiny.py seed 1, {args.draft_steps} steps, distilled")
    draft = load_model(WEIGHTS / "tiny_draft.safetensors")
    print(f"held-out top-1 agreement draft vs target: {agreement(target, draft, held_out):.3f}")


if __name__ == "__main__":
    main()
