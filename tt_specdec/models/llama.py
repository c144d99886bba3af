"""A lean Llama in plain torch: RMSNorm, RoPE, grouped-query attention, SwiGLU.

One module serves training (`forward_train`, full causal sequences, no cache) and
inference (`forward`, a preallocated KV cache written at per-row positions). The
inference attention is `tt_specdec.ops.verify_attention` for every T: T = 1 is
plain decode, T = k+1 is the speculative verify.
"""
from __future__ import annotations

import dataclasses
import json

import torch
import torch.nn.functional as F
from torch import nn

from tt_specdec import ops
from tt_specdec.errors import check_tokens, value_range
from tt_specdec.models import rope
from tt_specdec.models.decoder import hidden_layers
from tt_specdec.models.rope import Llama3Scaling
from tt_specdec.ops.verify_attention import tree_mask_from_parents


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    max_seq_len: int = 2048
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    rope_scaling: Llama3Scaling | None = None  # Llama 3.x "llama3" scaling (models/rope.py)

    def __post_init__(self):
        if self.rope_scaling is not None:  # a tuple or JSON list -> the named tuple
            object.__setattr__(self, "rope_scaling", Llama3Scaling(*self.rope_scaling))

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LlamaConfig":
        return cls(**json.loads(text))


def check_forward_args(model, tokens: torch.Tensor, pos: torch.Tensor) -> None:
    """The checks every cached forward makes before it touches its cache."""
    if model.k_cache is None:
        raise RuntimeError("forward: no KV cache; call allocate_cache(batch_size, cache_len) first")
    B, T = tokens.shape
    if B != model.batch_size:
        raise ValueError(f"tokens: got batch {B}, expected the cache's batch size {model.batch_size}")
    if tuple(pos.shape) != (B,):
        raise ValueError(f"pos: got shape {tuple(pos.shape)}, expected [{B}]")
    check_tokens("tokens", tokens, model.vocab_size)
    lo, hi = value_range(pos)
    if B and (lo < 0 or hi + T > model.cache_len):
        raise ValueError(
            f"pos: got positions {lo}..{hi + T - 1}, "
            f"expected 0..{model.cache_len - 1} (the KV cache length)")


def tree_rows(pos: torch.Tensor, parents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A token tree's verify rows: pos [B], parents [B, T] -> (RoPE positions [B, T]: pos[b] + node t's depth,
    tree_mask [B, T, T]: verify_attention's, row t sees its ancestors and itself)."""
    mask = tree_mask_from_parents(parents)  # [B, T, T]
    return pos.view(-1, 1) + mask.sum(-1) - 1, mask  # depth: ancestors seen, the root excluded


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_tables(cfg: LlamaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [max_seq_len, head_dim] fp32 in the rotate-half layout, llama3-scaled when cfg says so."""
    cos, sin = rope.rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, cfg.rope_scaling)
    return torch.from_numpy(cos), torch.from_numpy(sin)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, D], cos/sin [B, T, 1, D]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        hd = cfg.head_dim
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wo = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.w_gate = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.w_up = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.w_down = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def qkv(self, x, cos, sin, cfg: LlamaConfig):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, cfg.n_heads, cfg.head_dim)
        k = self.wk(h).view(B, T, cfg.n_kv_heads, cfg.head_dim)
        v = self.wv(h).view(B, T, cfg.n_kv_heads, cfg.head_dim)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def mlp(self, x):
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Llama(nn.Module):
    """Decoder: `prefill` / `forward(tokens [B, T], pos [B]) -> logits [B, T, V]`."""

    native_attention = "torch"  # its attention when not on the emulator

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        nn.init.normal_(self.embed.weight, std=0.02)  # tied head: unit-variance rows would give logits ~sqrt(dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.k_cache: torch.Tensor | None = None  # [n_layers, B, Hkv, S, D]
        self.v_cache: torch.Tensor | None = None
        self.attention = self.native_attention  # who runs ops.verify_attention: "torch", or "emu" (its kernels)
        # an EAGLE-style drafter reads the target's hidden states per position: allocate_cache(...,
        # keep_hidden) names the blocks (decoder.hidden_layers) and forward writes them to hidden_cache
        self.keep_hidden: tuple[int, ...] = ()
        self.hidden_cache: torch.Tensor | None = None

    @property
    def vocab_size(self) -> int:
        return self.cfg.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.cfg.max_seq_len

    @property
    def cache_len(self) -> int:
        return 0 if self.k_cache is None else self.k_cache.shape[3]

    @property
    def batch_size(self) -> int:
        return 0 if self.k_cache is None else self.k_cache.shape[1]

    @property
    def output_weight(self) -> torch.Tensor:
        """[V, dim] the output layer: the embedding when tied."""
        return self.embed.weight if self.lm_head is None else self.lm_head.weight

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(self.norm(h), self.output_weight)

    # -- training: whole sequences, causal, no cache ----------------------------------------
    def forward_train(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] -> logits [B, L, V]."""
        return self.logits(self.hidden_train(tokens))

    def hidden_train(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] -> final hidden states [B, L, dim], before the final norm."""
        cfg = self.cfg
        B, L = tokens.shape
        cos = self.rope_cos[:L].view(1, L, 1, -1)
        sin = self.rope_sin[:L].view(1, L, 1, -1)
        x = self.embed(tokens)
        for layer in self.layers:
            q, k, v = layer.qkv(x, cos, sin, cfg)
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                is_causal=True, enable_gqa=True,
            )
            x = x + layer.wo(o.transpose(1, 2).reshape(B, L, -1))
            x = layer.mlp(x)
        return x

    # -- inference: preallocated KV cache, per-row positions --------------------------------
    def allocate_cache(self, batch_size: int, cache_len: int, keep_hidden: bool | tuple[int, ...] = False) -> None:
        """Preallocate the KV cache for `batch_size` rows of `cache_len` positions (and hidden_cache
        [B, S, n·dim] with keep_hidden: True, the final hidden state, or n block counts; every forward then
        writes it)."""
        cfg = self.cfg
        if cache_len > cfg.max_seq_len:
            raise ValueError(f"cache_len: got {cache_len}, expected at most max_seq_len={cfg.max_seq_len}")
        layers = hidden_layers(keep_hidden, cfg.n_layers)
        shape = (cfg.n_layers, batch_size, cfg.n_kv_heads, cache_len, cfg.head_dim)
        if self.k_cache is None or self.k_cache.shape != shape:
            dtype = self.embed.weight.dtype
            self.k_cache = torch.zeros(shape, dtype=dtype)
            self.v_cache = torch.zeros(shape, dtype=dtype)
        self.keep_hidden = layers
        shape = (batch_size, cache_len, len(layers) * cfg.dim)
        if not layers:
            self.hidden_cache = None
        elif self.hidden_cache is None or tuple(self.hidden_cache.shape) != shape:
            self.hidden_cache = torch.zeros(shape)

    def prefill(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] right-padded, lengths [B] -> logits [B, V] after each row's last token."""
        logits = self.forward(tokens, torch.zeros(tokens.shape[0], dtype=torch.long))
        return logits[torch.arange(tokens.shape[0]), lengths.long() - 1]

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] at positions pos[b] .. pos[b]+T-1 -> logits [B, T, V] (fp32).

        Writes the KV of every row at those positions; query row t attends keys
        0 .. pos[b]+t (the staircase mask of verify_attention).
        """
        check_forward_args(self, tokens, pos)
        B, T = tokens.shape
        return self.run_rows(tokens, pos, pos.view(B, 1) + torch.arange(T), None)

    @torch.inference_mode()
    def forward_tree(self, tokens: torch.Tensor, pos: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """A token tree's verify: tokens [B, T] (row 0 the root), parents [B, T] (-1 for row 0, else an
        earlier row) -> logits [B, T, V] (fp32). Row t sits at position pos[b] + its depth, writes its KV at
        slot pos[b] + t and sees the cache (keys 0 .. pos[b]-1) and its ancestors (verify_attention's
        tree_mask); rollback_kv's compaction then moves an accepted path's KV to pos[b] + depth. Kept hidden
        states are written at slot pos[b] + t too (ops.rollback_kv.compact_hidden moves them with the KV)."""
        check_forward_args(self, tokens, pos)
        return self.run_rows(tokens, pos, *tree_rows(pos, parents))

    def run_rows(self, tokens: torch.Tensor, pos: torch.Tensor, positions: torch.Tensor,
                 tree_mask: torch.Tensor | None) -> torch.Tensor:
        """forward's body: row t of b at RoPE position positions[b, t], KV written at slot pos[b] + t,
        attention staircase (tree_mask None) or tree-masked -> logits [B, T, V] fp32."""
        B, T = tokens.shape
        cfg = self.cfg
        slots = pos.view(B, 1) + torch.arange(T)  # [B, T]
        cos = self.rope_cos[positions].unsqueeze(2)  # [B, T, 1, D]
        sin = self.rope_sin[positions].unsqueeze(2)
        rows = torch.arange(B).view(B, 1)
        x = self.embed(tokens)
        kept = []  # [B, T, dim] after each block count of keep_hidden
        for i, layer in enumerate(self.layers):
            q, k, v = layer.qkv(x, cos, sin, cfg)
            k_cache, v_cache = self.k_cache[i], self.v_cache[i]  # [B, Hkv, S, D]
            k_cache[rows, :, slots] = k  # [B, T, Hkv, D] into slots pos..pos+T-1
            v_cache[rows, :, slots] = v
            o = ops.verify_attention(q, k_cache, v_cache, pos, tree_mask=tree_mask,
                                     backend=self.attention)  # [B, T, Hq, D]
            x = x + layer.wo(o.reshape(B, T, -1))
            x = layer.mlp(x)
            if i + 1 in self.keep_hidden:
                kept.append(x)
        if kept:
            self.hidden_cache[rows, slots] = torch.cat(kept, -1).float()
        return self.logits(x).float()
