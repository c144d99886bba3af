"""EAGLE drafter: a one-layer head that drafts from the target's own final hidden state (Li et al. 2024).

Feature f_p: the target's hidden state at position p before its final norm (the target
writes it to `hidden_cache` [B, S, dim] when its cache was allocated with keep_hidden). A head step at slot p
maps concat(embed(x_{p+1}), f_p) -> fc (2d -> d) -> one Llama decoder layer -> f'_{p+1}, the
predicted feature of the next position; the target's frozen final norm and tied embedding turn
it into logits. Drafting runs the head on its own predicted features for k tokens.

The logits may be restricted to a frequency-ranked subset of the vocabulary (FR-Spec): the
head's `vocab_ids` [N]. Drafts map back to full ids; when sampling, `draft_probs` is the full
distribution with zeros outside the subset, so acceptance stays lossless.

EagleDrafter runs any head with this interface: an EAGLE-3 head (eagle3.py) differs only in what it
reads from the target (`keep_hidden`), how it makes its input feature (`input_features`; on the CPU
engine `packed_input_features`) and which norm and output rows make its logits (`output`).
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tt_specdec import ops
from tt_specdec.drafters.base import Proposal
from tt_specdec.models.cpu_llama import CpuLayer, PackedLinear, build_engine, engine_logits
from tt_specdec.models.decoder import hidden_layers
from tt_specdec.models.llama import Block, Llama, LlamaConfig, rope_tables
from tt_specdec.sampling import (STREAM_DRAFT, Sampling, argmax, coupled_sample, process_logits, sample_inverse_cdf,
                                 uniform)

SMOLLM2_EAGLE = pathlib.Path(__file__).resolve().parents[1] / "models" / "weights" / "smollm2_eagle.safetensors"


class EagleHead(nn.Module):
    """fc (2d -> d) + one decoder layer of the target's shapes; `vocab_ids` [N] the drafted vocabulary."""

    keep_hidden: bool | tuple[int, ...] = True  # what it reads from the target (allocate_cache's keep_hidden)
    kind = "eagle"  # its files' metadata "kind" (files written before there was one: "eagle")
    fp32_tensors: tuple[str, ...] = ()  # state entries its files keep in fp32 (the rest bf16)

    def __init__(self, cfg: LlamaConfig, vocab_ids: torch.Tensor | None = None):
        super().__init__()
        if vocab_ids is None:
            vocab_ids = torch.arange(cfg.vocab_size)
        vocab_ids = torch.as_tensor(vocab_ids)
        if vocab_ids.dim() != 1 or len(vocab_ids) == 0 or vocab_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"vocab_ids: got {vocab_ids.dtype} shape {list(vocab_ids.shape)}, expected int ids [N], N >= 1")
        if int(vocab_ids.min()) < 0 or int(vocab_ids.max()) >= cfg.vocab_size or len(vocab_ids.unique()) != len(vocab_ids):
            raise ValueError(f"vocab_ids: got ids {int(vocab_ids.min())}..{int(vocab_ids.max())} ({len(vocab_ids)}, "
                             f"{len(vocab_ids.unique())} distinct), expected distinct ids in 0..{cfg.vocab_size - 1}")
        self.cfg = dataclasses.replace(cfg, n_layers=1)
        self.fc = nn.Linear(2 * cfg.dim, cfg.dim, bias=True)
        self.layer = Block(self.cfg)
        self.register_buffer("vocab_ids", vocab_ids.long())  # [N] full id of each head row, most frequent first
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.k_cache: torch.Tensor | None = None  # [B, Hkv, S, D]
        self.v_cache: torch.Tensor | None = None

    @classmethod
    def for_target(cls, target: Llama, vocab_ids: torch.Tensor | None = None) -> "EagleHead":
        """A randomly initialised head with the target's dim, heads, SwiGLU width and RoPE."""
        return cls(target.cfg, vocab_ids)

    def with_vocabulary(self, vocab_ids: torch.Tensor) -> "EagleHead":
        """A copy of this head drafting from `vocab_ids` [N] instead (e.g. a prefix of its frequency ranking)."""
        head = EagleHead(self.cfg, vocab_ids)
        head.load_state_dict({k: v for k, v in self.state_dict().items() if k != "vocab_ids"}, strict=False)
        return head.to(self.fc.weight.dtype)

    def file_metadata(self) -> dict[str, str]:
        """What save_head writes beside the weights to rebuild this head (from_file_metadata reads it)."""
        return {"kind": self.kind, "config": self.cfg.to_json()}

    @classmethod
    def from_file_metadata(cls, cfg: LlamaConfig, vocab_ids: torch.Tensor, metadata: dict[str, str]) -> "EagleHead":
        return cls(cfg, vocab_ids)

    def input_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The target's hidden_cache rows [..., d] -> the head's input feature [..., d]: as they are."""
        return feats

    def packed_input_features(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """input_features as EagleDrafter runs it on the CPU engine: rows [M, d] fp32 -> [M, d], as they are."""
        return lambda feats: feats

    def output(self, target: Llama) -> tuple[nn.Module, torch.Tensor]:
        """(norm, rows [N, d]) that turn a head output into logits: the target's frozen final norm and its
        output rows of vocab_ids."""
        return target.norm, target.output_weight[self.vocab_ids]

    def forward_train(self, embeds: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """embeds [B, L, d] of x_{p+1}, feats [B, L, d] f_p for p = 0..L-1 -> f' [B, L, d] (causal, no cache)."""
        cfg = self.cfg
        B, L, _ = embeds.shape
        x = self.fc(torch.cat([embeds, feats], -1))
        q, k, v = self.layer.qkv(x, self.rope_cos[:L].view(1, L, 1, -1), self.rope_sin[:L].view(1, L, 1, -1), cfg)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, enable_gqa=True)
        return self.layer.mlp(x + self.layer.wo(o.transpose(1, 2).reshape(B, L, -1)))

    def allocate_cache(self, batch_size: int, cache_len: int) -> None:
        cfg = self.cfg
        if cache_len > cfg.max_seq_len:
            raise ValueError(f"cache_len: got {cache_len}, expected at most max_seq_len={cfg.max_seq_len}")
        shape = (batch_size, cfg.n_kv_heads, cache_len, cfg.head_dim)
        if self.k_cache is None or self.k_cache.shape != shape:
            self.k_cache = torch.zeros(shape, dtype=self.fc.weight.dtype)
            self.v_cache = torch.zeros(shape, dtype=self.fc.weight.dtype)

    @torch.inference_mode()
    def forward(self, embeds: torch.Tensor, feats: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """embeds, feats [B, T, d] at slots pos[b] .. pos[b]+T-1 -> f' [B, T, d]; writes those slots' KV."""
        cfg = self.cfg
        B, T, _ = embeds.shape
        positions = pos.view(B, 1) + torch.arange(T)  # [B, T]
        x = self.fc(torch.cat([embeds, feats], -1))
        q, k, v = self.layer.qkv(x, self.rope_cos[positions].unsqueeze(2), self.rope_sin[positions].unsqueeze(2), cfg)
        rows = torch.arange(B).view(B, 1)
        self.k_cache[rows, :, positions] = k  # [B, T, Hkv, D] into slots pos..pos+T-1
        self.v_cache[rows, :, positions] = v
        o = ops.verify_attention(q, self.k_cache, self.v_cache, pos)  # [B, T, Hq, D]
        return self.layer.mlp(x + self.layer.wo(o.reshape(B, T, -1)))


def restricted_logits(norm: nn.Module, head_weight: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """feats [..., d] -> logits [..., N] over the head's vocabulary: norm, then the output rows
    head_weight [N, d] (EagleHead.output)."""
    return F.linear(norm(feats), head_weight)


def training_loss(target: Llama, head: EagleHead, tokens: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor,
                  mask: torch.Tensor, scale: torch.Tensor, noise: float, ce_weight: float, unroll: int = 1,
                  ce_vocab: int | None = None):
    """EAGLE-1 loss on teacher-forced sequences, optionally unrolled on the head's own predictions.

    tokens [B, L] x_p, feats [B, L, d] the target's f_p (fp32), labels [B, L] the target's greedy token
    at p, mask [B, L] positions p whose feature and label enter the loss, scale [d] per-dimension RMS of
    the features (the regression is on f / scale; the input noise is uniform +-noise * scale).
    Head input p = (x_{p+1}, f_p) predicts f_{p+1}. With unroll > 1, pass j feeds the previous pass's
    predictions (detached) as f_p, as drafting does after its first step; the terms are averaged.
    ce_vocab: the CE and agreement use only the head's first ce_vocab ids (the most frequent; cheaper).
    Returns (loss, feature term, CE term, top-1 agreement of the first pass).
    """
    vocab_ids = head.vocab_ids[:ce_vocab]  # [N]
    head_weight = target.output_weight[vocab_ids]  # [N, d]
    m = mask[:, 1:]
    # the CE is over the head's vocabulary: a label outside it can't be drafted, only its feature is learned
    sub_index = torch.full((target.output_weight.shape[0],), -1, dtype=torch.long)
    sub_index[vocab_ids] = torch.arange(len(vocab_ids))
    target_sub = sub_index[labels[:, 1:][m].long()]  # [M]
    embeds = target.embed(tokens[:, 1:])
    in_feats = feats[:, :-1]  # [B, L-1, d] f_0 .. f_{L-2}
    feat_loss = ce = 0.0
    for j in range(unroll):
        if noise:
            in_feats = in_feats + (torch.rand_like(in_feats) * 2 - 1) * noise * scale
        pred = head.forward_train(embeds, in_feats)  # [B, L-1, d] f'_1 .. f'_{L-1}
        feat_loss = feat_loss + F.smooth_l1_loss(pred[m] / scale, feats[:, 1:][m] / scale) / unroll
        logits = restricted_logits(target.norm, head_weight, pred[m])  # [M, N]
        ce = ce + F.cross_entropy(logits, target_sub, ignore_index=-1) / unroll
        if j == 0:
            agree = (vocab_ids[logits.argmax(-1)] == labels[:, 1:][m]).float().mean()
        in_feats = torch.cat([feats[:, :1], pred[:, :-1].detach()], 1)  # slot p gets f'_p
    return feat_loss + ce_weight * ce, feat_loss, ce, agree


class EagleDrafter:
    """Drafts k tokens with an EagleHead (or an Eagle3Head) on the target's features (the Drafter protocol).

    `needs_target_hidden` (the head's keep_hidden): the loop allocates the target's cache with it (and
    only for such a drafter), so every target forward writes its features; at propose time the
    target has processed context positions 0..length-2. Head slot p needs the TRUE f_p, so only
    slots computed from target features stay valid: `cached[b]` counts them, and each proposal
    first feeds slots cached .. length-2 in one batched call (the accepted tokens plus the newest),
    then k-1 single steps on predicted features, whose slots the next proposal overwrites.
    """

    # drafts while some row's product of draft probabilities is at least stop_reach, up to the k asked:
    # the adaptive-k policy then asks for its k_max and trims by confidence (EAGLE-2's dynamic depth)
    stop_reach = 0.5
    makes_trees = False

    def __init__(self, target: Llama, head: EagleHead):
        if not hasattr(target, "hidden_cache"):
            raise TypeError(f"target: got {type(target).__name__}, expected a Llama with hidden_cache")
        if head.cfg.dim != target.cfg.dim or head.cfg.vocab_size != target.vocab_size:
            raise ValueError(f"head: got dim {head.cfg.dim}, vocabulary {head.cfg.vocab_size}; expected the target's "
                             f"dim {target.cfg.dim}, vocabulary {target.vocab_size}")
        try:
            self.layers = hidden_layers(head.keep_hidden, target.cfg.n_layers)  # the blocks hidden_cache holds
        except ValueError:
            raise ValueError(f"head: got feature_layers {head.keep_hidden}, expected increasing block counts within "
                             f"the target's {target.cfg.n_layers} blocks") from None
        self.needs_target_hidden = head.keep_hidden
        self.target, self.head = target, head.to(target.embed.weight.dtype).eval().requires_grad_(False)
        self.vocab_size = target.vocab_size
        self.norm, head_weight = self.head.output(target)
        self.head_weight = head_weight.detach().contiguous()  # [N, d]
        self.cached = torch.zeros(0, dtype=torch.long)  # [B]
        self.engine = self.packed_features = None
        if target.attention == "cpu" and self.head.fc.weight.dtype == torch.float32:
            self.engine = cpu_engine(self.head, self.norm, self.head_weight)  # the target's fast CPU kernels
            self.packed_features = self.head.packed_input_features()

    def reset(self, batch_size: int, cache_len: int) -> None:
        hidden = self.target.hidden_cache
        width = len(self.layers) * self.head.cfg.dim
        if hidden is None or tuple(hidden.shape) != (batch_size, cache_len, width):
            got = None if hidden is None else list(hidden.shape)
            raise RuntimeError(f"target.hidden_cache: got {got}, expected [{batch_size}, {cache_len}, {width}]: call "
                               f"target.allocate_cache({batch_size}, {cache_len}, keep_hidden={self.needs_target_hidden}) "
                               "first")
        self.head.allocate_cache(batch_size, cache_len)
        self.cached = torch.zeros(batch_size, dtype=torch.long)

    def step(self, embeds: torch.Tensor, feats: torch.Tensor, pos: torch.Tensor, with_logits: bool = True):
        """Head slots pos.. for embeds, feats [B, T, d] -> (f' [B, T, d], logits [B, T, N] fp32 or None)."""
        if self.engine is None:
            out = self.head.forward(embeds, feats, pos)
            return out, (self.logits(out) if with_logits else None)
        B, T, d = embeds.shape
        fc, engine, _ = self.engine
        x = fc(torch.cat([embeds, feats], -1).reshape(B * T, 2 * d).contiguous())  # [M, d], becomes f' in place
        x += self.head.fc.bias
        logits = torch.empty(B, T, len(self.head.vocab_ids)) if with_logits else None
        engine.forward(x.view(B, T, d), self.head.k_cache.unsqueeze(0), self.head.v_cache.unsqueeze(0), pos.tolist(),
                       logits)  # the engine's caches are [layers, B, Hkv, S, D]: one layer here
        return x.view(B, T, d), logits

    def input_features(self, feats: torch.Tensor) -> torch.Tensor:
        """hidden_cache rows [B, T, n·d] fp32 -> the head's input features [B, T, d] (on the CPU engine: its
        packed linears, bf16 weights)."""
        if self.engine is None:
            return self.head.input_features(feats)
        B, T, width = feats.shape
        return self.packed_features(feats.reshape(B * T, width).contiguous()).view(B, T, -1)

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """feats [..., d] -> logits [..., N] fp32 over the head's vocabulary."""
        if self.engine is None:
            return restricted_logits(self.norm, self.head_weight, feats).float()
        return engine_logits(self.engine[1], feats, len(self.head.vocab_ids))

    def check_reach(self, length: torch.Tensor, k: int) -> None:
        """A proposal of k drafts after rows of length [B] writes head slots up to (length-1) + (k-2): they
        must lie in the cache of reset."""
        cache_len = self.head.k_cache.shape[2]
        if int(length.max()) + k - 3 >= cache_len:
            raise ValueError(f"k: got {k} with a row of length {int(length.max())}, expected length + k - 2 <= "
                             f"{cache_len} (the cache_len of reset)")

    def first_step(self, context: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor]:
        """The head over every row's slots with target features not yet fed (cached .. length-2), in one
        call -> (f' [B, d] at slot length-2, the head's output after the newest token; its logits [B, N], the
        first draft's; ready [B] = length-1, what `cached` becomes once the proposal is done)."""
        embed, dtype = self.target.embed, self.head.fc.weight.dtype
        ready = length - 1  # [B] slots p = 0..length-2 have the target's f_p
        self.cached = torch.minimum(self.cached, ready)
        # one batched call feeds every row's missing slots; rows missing fewer re-feed valid ones (same
        # result), rows with fewer slots than the call are padded on the right (masked, overwritten later).
        # Row slices, not index tensors: each torch op here runs on a cold cache, right after the target's step
        ready_rows = ready.tolist()
        feed = max(1, max(r - c for r, c in zip(ready_rows, self.cached.tolist())))
        start = [max(r - feed, 0) for r in ready_rows]  # [B]
        hidden = self.target.hidden_cache
        feats = torch.stack([hidden[b, s:s + feed] for b, s in enumerate(start)]).to(dtype)  # [B, feed, n·d]
        feats = self.input_features(feats)  # f_p [B, feed, d]
        tokens = torch.stack([context[b, s + 1:s + 1 + feed] for b, s in enumerate(start)])  # x_{p+1} [B, feed]
        out = self.step(embed(tokens), feats, torch.tensor(start), with_logits=False)[0]  # f'_{p+1}
        feat = torch.stack([out[b, r - 1 - s] for b, (r, s) in enumerate(zip(ready_rows, start))])  # [B, d]
        return feat, self.logits(feat), ready  # logits from f'_{length-1}: the token after the newest

    @torch.inference_mode()
    def propose(self, context, length, k, sampling: Sampling, seeds) -> Proposal:
        B = context.shape[0]
        self.check_reach(length, k)  # the last draft step writes slot (length-1) + (k-2)
        embed = self.target.embed
        feat, logits, ready = self.first_step(context, length)
        pos = ready.clone()
        drafts, probs, conf = [], [], []
        reach = np.ones(B)
        for t in range(k):
            if sampling.greedy:
                index, p = argmax(logits, with_prob=True)  # the first maximum and its softmax probability
                conf.append(p)
            else:
                q = process_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p)  # [B, N]
                if sampling.coupled:  # the target's noise of each full id at d_t's position: no draft_probs
                    index = coupled_sample(q, seeds, length + t, self.head.vocab_ids)
                else:
                    index = sample_inverse_cdf(q, uniform(seeds, STREAM_DRAFT, t))
                    full = torch.zeros(B, self.vocab_size, dtype=q.dtype)
                    probs.append(full.index_copy_(1, self.head.vocab_ids, q))  # [B, V], 0 outside the subset
                conf.append(q.gather(1, index.view(B, 1))[:, 0])
            token = self.head.vocab_ids[index]  # [B] full ids
            drafts.append(token)
            reach = reach * conf[-1].numpy()
            if reach.max() < self.stop_reach:  # no row is likely to get this far: fewer than k drafts
                break
            if t + 1 < k:  # the last draft's feature is never needed
                feat, logits = self.step(embed(token.view(B, 1)), feat.view(B, 1, -1), pos)
                feat, logits = feat[:, 0], logits[:, 0]
                pos += 1
        self.cached = ready
        return Proposal(torch.stack(drafts, 1), torch.stack(probs, 1) if probs else None,  # k' <= k columns
                        confidence=torch.stack(conf, 1).float(), model_steps=len(drafts))


def cpu_engine(head: EagleHead, norm: nn.Module, head_weight: torch.Tensor):
    """(fc, engine, parts the engine points into): the head on the fast CPU decoder's kernels (models/cpu_llama.py), bf16 weights, fp32
    compute: fc (2d -> d, bias added after), then the layer, `norm` and head_weight [N, d] (EagleHead.output)."""
    fc, layer, out = PackedLinear(head.fc.weight), CpuLayer(head.layer), PackedLinear(head_weight)
    return fc, build_engine(head.cfg, head.rope_cos, head.rope_sin, [layer], norm, out), (layer, out)


def save_head(head: EagleHead, path: str | pathlib.Path, metadata: dict[str, str]) -> None:
    """bf16 weights (head.fp32_tensors in fp32) + vocab_ids (int32); head.file_metadata() (kind, layer config)
    and `metadata` in the safetensors metadata. Written to a temporary file, then renamed."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float32 if k in head.fp32_tensors else torch.bfloat16).contiguous()
               for k, v in head.state_dict().items() if k != "vocab_ids"}
    tensors["vocab_ids"] = head.vocab_ids.to(torch.int32)
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={**metadata, **head.file_metadata()})
    tmp.replace(path)


def load_head(path: str | pathlib.Path, max_seq_len: int | None = None, cls: type[EagleHead] = EagleHead) -> EagleHead:
    """A `cls` head from save_head's file (fp32); `max_seq_len` (the target's) overrides the RoPE / cache length."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    kind = meta.get("kind", "eagle")
    if kind != cls.kind:
        raise ValueError(f"path: got {path} of kind {kind!r}, expected an {cls.__name__} file (kind {cls.kind!r})")
    cfg = LlamaConfig.from_json(meta["config"])
    if max_seq_len is not None:
        cfg = dataclasses.replace(cfg, max_seq_len=int(max_seq_len))
    state = load_file(str(path))
    head = cls.from_file_metadata(cfg, state.pop("vocab_ids"), meta)
    missing = set(head.state_dict()) - set(state) - {"vocab_ids"}
    if missing:
        raise ValueError(f"path: got {path} without {sorted(missing)}, expected an {cls.__name__} file (save_head)")
    head.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return head


def load_eagle_drafter(target: Llama, path: str | pathlib.Path = SMOLLM2_EAGLE) -> EagleDrafter:
    """The shipped EAGLE head for SmolLM2-135M-Instruct (tools/train_eagle_smollm2.py) on `target`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: got {path}, which does not exist; expected an EagleHead safetensors file "
                                f"(tools/train_eagle_smollm2.py export writes {SMOLLM2_EAGLE.name})")
    return EagleDrafter(target, load_head(path, target.max_seq_len))  # drafts as far as the target decodes
