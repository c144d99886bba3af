"""EAGLE-3 style head: one layer on features fused from three layers of the target (Li et al. 2025).

Target features: the hidden states after blocks `feature_layers` (a low, a middle and a high layer;
for SmolLM2's 30 blocks 2, 15, 27), which the target writes side by side to `hidden_cache`
[B, S, 3·d] when its cache is allocated with keep_hidden=feature_layers (the head's `keep_hidden`).
The head fuses them, g_p = fuse(f_p / feat_scale) (3d -> d; feat_scale [3, d] the per-dimension RMS of
the training features, so that a few massive dimensions do not dwarf the rest), then, as the EAGLE head
of eagle.py, a step at slot p maps concat(embed(x_{p+1}), g_p) -> fc (2d -> d) -> one Llama decoder
layer -> h_{p+1}. Unlike EAGLE-1, h is not trained to be the target's feature: its own norm and output
rows `lm_head` [N, d] (over the FR-Spec vocabulary `vocab_ids` [N]) turn it into logits, and a drafting
step after the first feeds h in place of g ("training-time test": the head is trained on its own h,
see `ttt_forward`). EagleDrafter drafts with it unchanged (Eagle3Drafter only checks the head's kind).
"""
from __future__ import annotations

import pathlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tt_specdec.drafters.eagle import EagleDrafter, EagleHead, load_head
from tt_specdec.models.cpu_llama import PackedLinear
from tt_specdec.models.llama import LlamaConfig, RMSNorm

SMOLLM2_EAGLE3 = pathlib.Path(__file__).resolve().parents[1] / "models" / "weights" / "smollm2_eagle3.safetensors"
FEATURE_LAYERS = (2, 15, 27)  # SmolLM2-135M: the hidden state after this many of its 30 blocks


class Eagle3Head(EagleHead):
    """EagleHead + fuse (n·d -> d, no bias), feat_scale [n, d], its own norm and lm_head [N, d]."""

    kind = "eagle3"
    fp32_tensors = ("feat_scale",)

    def __init__(self, cfg: LlamaConfig, vocab_ids: torch.Tensor | None = None,
                 feature_layers: tuple[int, ...] = FEATURE_LAYERS):
        super().__init__(cfg, vocab_ids)
        feature_layers = tuple(int(x) for x in feature_layers)
        if not feature_layers or list(feature_layers) != sorted(set(feature_layers)) or feature_layers[0] < 1:
            raise ValueError(f"feature_layers: got {feature_layers}, expected increasing block counts >= 1")
        self.feature_layers = feature_layers
        self.keep_hidden = feature_layers  # the target keeps these blocks' hidden states for it
        n = len(feature_layers)
        self.fuse = nn.Linear(n * cfg.dim, cfg.dim, bias=False)
        self.register_buffer("feat_scale", torch.ones(n, cfg.dim))  # [n, d]
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, len(self.vocab_ids), bias=False)

    @classmethod
    def for_target(cls, target, vocab_ids: torch.Tensor | None = None,
                   feature_layers: tuple[int, ...] = FEATURE_LAYERS,
                   feat_scale: torch.Tensor | None = None) -> "Eagle3Head":
        """A new head with the target's shapes; its lm_head starts as the target's output rows of vocab_ids
        (its norm as a fresh one: with the target's final-norm weights a random layer's output gives
        overconfident logits), feat_scale [n, d] the features' per-dimension RMS (ones when None)."""
        head = cls(target.cfg, vocab_ids, feature_layers)
        with torch.no_grad():
            head.lm_head.weight.copy_(target.output_weight[head.vocab_ids])
            if feat_scale is not None:
                head.feat_scale.copy_(feat_scale)
        return head

    def file_metadata(self) -> dict[str, str]:
        return {**super().file_metadata(), "feature_layers": ",".join(map(str, self.feature_layers))}

    @classmethod
    def from_file_metadata(cls, cfg: LlamaConfig, vocab_ids: torch.Tensor, metadata: dict[str, str]) -> "Eagle3Head":
        return cls(cfg, vocab_ids, tuple(int(x) for x in metadata["feature_layers"].split(",")))

    def with_vocabulary(self, vocab_ids: torch.Tensor) -> "Eagle3Head":
        """A copy drafting from vocab_ids [N], a subset of this head's (their lm_head rows are kept)."""
        vocab_ids = torch.as_tensor(vocab_ids).long()
        row = {int(t): i for i, t in enumerate(self.vocab_ids.tolist())}
        missing = [int(t) for t in vocab_ids.tolist() if int(t) not in row]
        if missing:
            raise ValueError(f"vocab_ids: got {len(missing)} ids outside the head's vocabulary (e.g. {missing[:3]}), "
                             f"expected a subset of its {len(self.vocab_ids)}")
        head = Eagle3Head(self.cfg, vocab_ids, self.feature_layers)
        state = {k: v for k, v in self.state_dict().items() if k not in ("vocab_ids", "lm_head.weight")}
        state["lm_head.weight"] = self.lm_head.weight[torch.tensor([row[int(t)] for t in vocab_ids.tolist()])]
        head.load_state_dict(state, strict=False)
        return head.to(self.fc.weight.dtype)

    def input_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The target's hidden_cache rows [..., n·d] -> g [..., d]."""
        return self.fuse(feats / self.feat_scale.flatten().to(feats.dtype))

    def packed_input_features(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """input_features on the CPU engine: rows [M, n·d] fp32 -> g [M, d], fuse packed as bf16 (the shipped
        weights are bf16 already; the scaled features are rounded to bf16 on a bf16-product matrix path). In
        torch fp32 it cost ~0.4 ms a proposal, more than the head's decoder layer on the engine."""
        fuse, scale = PackedLinear(self.fuse.weight), self.feat_scale.detach().flatten().float()  # scale [n·d]
        return lambda feats: fuse(feats / scale)

    def output(self, target) -> tuple[nn.Module, torch.Tensor]:
        """(norm, rows [N, d]) that make logits of h: the head's own."""
        return self.norm, self.lm_head.weight

    def ttt_forward(self, embeds: torch.Tensor, g: torch.Tensor, unroll: int) -> list[torch.Tensor]:
        """Training-time test on whole sequences: embeds [B, L, d] of x_{p+1}, g [B, L, d] the fused
        features -> [h_1, ..., h_unroll], each [B, L, d].

        Pass 1 is the teacher-forced step (slot p: x_{p+1}, g_p). Pass j > 1 is draft step j: slot p gets
        h_{j-1}[p-1] in place of g_p, and its query attends what drafting would have in cache: pass 1's
        keys at slots <= p-(j-1) (computed from the target's features) and pass i's key at slot p-(j-i)
        for i = 2..j. h_j[p] predicts x_{p+2}, given that drafts 1..j-1 were right. Slots p < j-1 have
        no such context (their rows are meaningless; leave them out of the loss).
        """
        cfg = self.cfg
        B, L, d = embeds.shape
        Hq, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        cos, sin = self.rope_cos[:L].view(1, L, 1, -1), self.rope_sin[:L].view(1, L, 1, -1)
        scale = D ** -0.5
        keys, values, outs = [], [], []
        feat = g
        slot = torch.arange(L)
        for j in range(1, unroll + 1):
            x = self.fc(torch.cat([embeds, feat], -1))
            q, k, v = self.layer.qkv(x, cos, sin, cfg)  # [B, L, H, D]
            k = k.repeat_interleave(Hq // Hkv, 2).transpose(1, 2)  # [B, Hq, L, D]
            v = v.repeat_interleave(Hq // Hkv, 2).transpose(1, 2)
            q = q.transpose(1, 2)
            keys.append(k)
            values.append(v)
            k1, v1 = keys[0], values[0]
            s1 = torch.matmul(q, k1.transpose(-1, -2)) * scale  # [B, Hq, L, L]
            allowed = slot.view(1, L) <= slot.view(L, 1) - (j - 1)  # key slot <= p-(j-1)
            s1 = s1.masked_fill(~allowed, float("-inf"))
            diag_s, diag_v = [], []
            for i in range(2, j + 1):  # pass i's key at slot p-(j-i): shift it right by j-i
                sh = j - i
                ki = F.pad(keys[i - 1], (0, 0, sh, 0))[:, :, :L]
                vi = F.pad(values[i - 1], (0, 0, sh, 0))[:, :, :L]
                si = (q * ki).sum(-1, keepdim=True) * scale  # [B, Hq, L, 1]
                diag_s.append(si.masked_fill((slot < sh).view(1, 1, L, 1), float("-inf")))
                diag_v.append(vi)
            if j == 1:
                p = torch.softmax(s1, -1)
                o = torch.matmul(p, v1)
            else:
                p = torch.softmax(torch.cat([s1] + diag_s, -1), -1)
                o = torch.matmul(p[..., :L], v1)
                for n, vi in enumerate(diag_v):
                    o = o + p[..., L + n:L + n + 1] * vi
            h = self.layer.mlp(x + self.layer.wo(o.transpose(1, 2).reshape(B, L, Hq * D)))
            outs.append(h)
            feat = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], 1)  # slot p gets h_j[p-1]
        return outs


def ttt_loss(head: Eagle3Head, embed: nn.Module, tokens: torch.Tensor, feats: torch.Tensor, mask: torch.Tensor,
             unroll: int, decay: float = 0.8):
    """Loss of `ttt_forward` on teacher-forced sequences.

    tokens [B, L] x_p, feats [B, L, n·d] the target's features f_p (fp32), mask [B, L]: slots p whose
    label x_{p+2} enters the loss (an answer token; the last two slots never). Pass j weighs decay^(j-1);
    a label outside the head's vocabulary is ignored (it cannot be drafted). Returns (loss, hits [unroll],
    counts [unroll]): per pass, the top-1 agreements with x_{p+2} (outside the vocabulary: a miss).
    """
    V = head.lm_head.weight.shape[0]
    sub = torch.full((embed.weight.shape[0],), -1, dtype=torch.long)
    sub[head.vocab_ids] = torch.arange(V)
    embeds = embed(tokens[:, 1:])  # x_{p+1} for slots 0..L-2
    g = head.input_features(feats[:, :-1])
    labels = F.pad(tokens[:, 2:], (0, 1))  # x_{p+2} for slots 0..L-2 (the last slot: padding, masked)
    m = mask[:, :-1].clone()
    m[:, -1] = False
    outs = head.ttt_forward(embeds, g, unroll)
    loss, hits, counts, total_w = 0.0, [], [], 0.0
    for j, h in enumerate(outs):
        mj = m.clone()
        mj[:, :j] = False  # slots without draft-step-j context
        lab = labels[mj]
        logits = head.lm_head(head.norm(h[mj]))  # [M, N]
        w = decay ** j
        loss = loss + w * F.cross_entropy(logits, sub[lab], ignore_index=-1)
        total_w += w
        hits.append(int((head.vocab_ids[logits.argmax(-1)] == lab).sum()))
        counts.append(int(lab.numel()))
    return loss / total_w, hits, counts


class Eagle3Drafter(EagleDrafter):
    """EagleDrafter on an Eagle3Head: the loop then allocates the target's cache with the head's
    feature_layers (needs_target_hidden), and the head drafts from its own norm and lm_head."""

    def __init__(self, target, head: Eagle3Head):
        if not isinstance(head, Eagle3Head):
            raise TypeError(f"head: got {type(head).__name__}, expected an Eagle3Head (EagleDrafter runs an EagleHead)")
        super().__init__(target, head)


def load_head3(path: str | pathlib.Path, max_seq_len: int | None = None) -> Eagle3Head:
    """An Eagle3Head from eagle.save_head's file (fp32); `max_seq_len` overrides the RoPE / cache length."""
    return load_head(path, max_seq_len, Eagle3Head)


def load_eagle3_drafter(target, path: str | pathlib.Path = SMOLLM2_EAGLE3) -> Eagle3Drafter:
    """The EAGLE-3 head for SmolLM2-135M-Instruct (tools/train_eagle3_smollm2.py) on `target`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: got {path}, which does not exist; expected an Eagle3Head safetensors file "
                                f"(tools/train_eagle3_smollm2.py writes {SMOLLM2_EAGLE3.name})")
    return Eagle3Drafter(target, load_head3(path, target.max_seq_len))  # drafts as far as the target decodes
