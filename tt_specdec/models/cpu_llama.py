"""The fast CPU decoder: a Llama run through the batch-invariant kernels of tt_specdec._cpu.

Weights are bf16 (the model is memory-bound at decode), activations and accumulation fp32.
Every linear and the attention compute each output element with the same fp32 operations
whatever the row count, so a (k+1)-row verify gives bit-identical logits to k+1 one-row
decodes: greedy speculative output equals the target alone exactly, even at near-ties
("exact mode", issue 5). A weight panel is still read once for all rows of a call, which is
what makes verifying k+1 rows cost little more than decoding one.

`CpuLlama(model)` wraps a torch `Llama` (whose weights it rounds to bf16 in place, so the
torch module computes with the same weights) and is a Decoder like it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tt_specdec import ops
from tt_specdec.models.llama import Llama, apply_rope, check_forward_args


def _cpu():
    from tt_specdec import _cpu as mod  # built by CMakeLists.txt with the emulator
    return mod


def set_threads(n: int) -> None:
    """Threads of the _cpu kernels (their own pool, separate from torch's)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads: got {n!r}, expected an int >= 1")
    _cpu().set_threads(n)


class PackedLinear:
    """y [M, N] = x [M, K] @ W^T with W [N, K] packed once as bf16 panels."""

    def __init__(self, weight: torch.Tensor):
        w = weight.detach().contiguous()
        if w.dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"weight: got dtype {w.dtype}, expected float32 or bfloat16")
        self.n, self.k = w.shape
        self.packed = _cpu().PackedLinear(w.data_ptr(), self.n, self.k, w.dtype == torch.bfloat16)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] fp32 contiguous -> [M, N] fp32."""
        out = torch.empty(x.shape[0], self.n)
        self.packed.forward(x.data_ptr(), out.data_ptr(), x.shape[0])
        return out


def attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Batch-invariant verify attention: q [B, T, Hq, D], caches [B, Hkv, S, D] fp32 -> [B, T, Hq, D]."""
    B, T, Hq, D = q.shape
    _, Hkv, S, _ = k_cache.shape
    q = q.contiguous()
    out = torch.empty_like(q)
    _cpu().attention(q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), out.data_ptr(), pos.tolist(),
                     T, Hq, Hkv, S, D, 1.0 / math.sqrt(D))
    return out


class CpuLayer:
    """One decoder block's packed weights: fused q|k|v and gate|up products."""

    def __init__(self, block):
        self.attn_norm = block.attn_norm.weight.detach().float().contiguous()
        self.ffn_norm = block.ffn_norm.weight.detach().float().contiguous()
        self.eps = block.attn_norm.eps
        self.qkv = PackedLinear(torch.cat([block.wq.weight, block.wk.weight, block.wv.weight]))
        self.wo = PackedLinear(block.wo.weight)
        self.gate_up = PackedLinear(torch.cat([block.w_gate.weight, block.w_up.weight]))
        self.down = PackedLinear(block.w_down.weight)


def build_engine(cfg, rope_cos: torch.Tensor, rope_sin: torch.Tensor, layers: list["CpuLayer"], norm,
                 head: PackedLinear):
    """A _cpu.CpuModel running `layers` then `norm` and `head`: one C++ call per step.
    Used by CpuLlama, and by drafters made of Llama blocks (an EAGLE head's layer)."""
    engine = _cpu().CpuModel(cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn_dim, cfg.norm_eps,
                             rope_cos.float().contiguous().data_ptr(), rope_sin.float().contiguous().data_ptr(),
                             rope_cos.shape[0])
    for layer in layers:  # the engine copies the norms and holds the packed weights
        engine.add_layer(layer.attn_norm.data_ptr(), layer.ffn_norm.data_ptr(), layer.qkv.packed,
                         layer.wo.packed, layer.gate_up.packed, layer.down.packed)
    engine.set_head(norm.weight.detach().float().contiguous().data_ptr(), head.packed)
    return engine


def engine_logits(engine, h: torch.Tensor, n_out: int) -> torch.Tensor:
    """h [..., dim] -> logits [..., n_out] fp32: a build_engine engine's final norm and head alone."""
    flat = h.float().reshape(-1, h.shape[-1]).contiguous()
    out = torch.empty(flat.shape[0], n_out)
    engine.logits(flat.data_ptr(), flat.shape[0], out.data_ptr())
    return out.view(*h.shape[:-1], -1)


class CpuLlama:
    """Decoder: `forward(tokens [B, T], pos [B]) -> logits [B, T, V]` on the _cpu kernels."""

    def __init__(self, model: Llama):
        with torch.no_grad():
            for p in model.parameters():  # the torch module now holds exactly the weights we compute with
                p.copy_(p.bfloat16().float())
        self.model = model.float().eval().requires_grad_(False)
        self.cfg = model.cfg
        self.embed, self.norm, self.lm_head = model.embed, model.norm, model.lm_head  # as Llama: for an EAGLE head
        self.layers = [CpuLayer(b) for b in model.layers]
        self.head = PackedLinear(model.output_weight)
        self.engine = build_engine(model.cfg, model.rope_cos, model.rope_sin, self.layers, model.norm, self.head)
        self.k_cache: torch.Tensor | None = None  # [n_layers, B, Hkv, S, D] fp32
        self.v_cache: torch.Tensor | None = None
        self.keep_hidden = False  # as Llama: forward writes hidden_cache [B, S, dim] for an EAGLE drafter
        self.hidden_cache: torch.Tensor | None = None
        self.hidden_layers: tuple[int, ...] | None = None  # as Llama: [B, S, n*dim] after these blocks (EAGLE-3)
        self._segments: tuple[tuple, list] = ((), [])  # (hidden_layers, [(first block, end block, engine)])
        self.ops_backend = self.native_ops_backend  # "torch" / "emu": forward_with_ops, ops.verify_attention

    native_ops_backend = "cpu"  # the C++ engine: one call per step, batch-invariant attention

    weight_dtype = torch.bfloat16  # as stored and read each step; activations are fp32
    threads = property(lambda self: _cpu().threads())
    vocab_size = property(lambda self: self.cfg.vocab_size)
    max_seq_len = property(lambda self: self.cfg.max_seq_len)
    cache_len = property(lambda self: 0 if self.k_cache is None else self.k_cache.shape[3])
    batch_size = property(lambda self: 0 if self.k_cache is None else self.k_cache.shape[1])

    output_weight = property(lambda self: self.model.output_weight)  # [V, dim], as Llama

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The torch module's weights: exactly the (bf16-rounded) values the engine computes with."""
        return self.model.state_dict()

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., dim] final hidden states -> logits [..., V]: the engine's own norm and head, so
        logits(hidden_cache[b, p]) has the bits forward gave for position p."""
        return engine_logits(self.engine, h, self.vocab_size)

    def allocate_cache(self, batch_size: int, cache_len: int) -> None:
        Llama.allocate_cache(self, batch_size, cache_len)

    @torch.inference_mode()
    def prefill(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] right-padded, lengths [B] -> logits [B, V] after each row's last token; the head
        runs on those B rows only (a prompt's other positions need no logits)."""
        B = tokens.shape[0]
        hidden = self.forward(tokens, torch.zeros(B, dtype=torch.long), with_logits=False)  # [B, L, dim]
        return self.logits(hidden[torch.arange(B), lengths.long() - 1])

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, pos: torch.Tensor, with_logits: bool = True) -> torch.Tensor:
        """tokens [B, T] at positions pos[b] .. pos[b]+T-1 -> logits [B, T, V] fp32; writes their KV.
        with_logits=False returns the final hidden states [B, T, dim] instead (no head)."""
        check_forward_args(self, tokens, pos)
        B, T = tokens.shape
        starts = pos.tolist()
        if self.ops_backend != "cpu":
            logits, x, kept = self.forward_with_ops(tokens, pos)
        else:
            x = self.embed(tokens).reshape(B * T, self.cfg.dim).contiguous()  # [M, dim]: in embeddings, out hidden
            logits = torch.empty(B, T, self.vocab_size) if with_logits else None
            if self.keep_hidden and self.hidden_layers:
                kept = self.forward_segments(x, B, T, starts, logits)  # [B, T, n*dim]
            else:
                self.engine.forward(x.data_ptr(), self.k_cache.data_ptr(), self.v_cache.data_ptr(), B, T,
                                    self.cache_len, starts, 0 if logits is None else logits.data_ptr())
            x = x.view(B, T, -1)
        if self.keep_hidden:
            if not self.hidden_layers:
                kept = x
            for b, p in enumerate(starts):  # a slice per row: cheaper than one advanced-index write
                self.hidden_cache[b, p:p + T] = kept[b]
        return logits if with_logits else x

    def forward_segments(self, x: torch.Tensor, B: int, T: int, starts: list[int],
                         logits: torch.Tensor | None) -> torch.Tensor:
        """The engine's step as one engine call per run of blocks between the hidden_layers, x [M, dim]
        in place (embeddings in, final hidden out), the same kernels in the same order (bit-identical
        logits): -> the hidden states after each block count of hidden_layers [B, T, n*dim]."""
        layers = tuple(self.hidden_layers)
        if self._segments[0] != layers:
            n = self.cfg.n_layers
            if not all(1 <= c <= n for c in layers):
                raise ValueError(f"hidden_layers: got {layers}, expected block counts in 1..{n}")
            bounds = sorted(set([0, *layers, n]))
            self._segments = (layers, [(a, b, build_engine(self.cfg, self.model.rope_cos, self.model.rope_sin,
                                                          self.layers[a:b], self.model.norm, self.head))
                                       for a, b in zip(bounds, bounds[1:])])
        kept = torch.empty(B * T, len(layers), self.cfg.dim)
        for a, b, engine in self._segments[1]:
            last = b == self.cfg.n_layers
            engine.forward(x.data_ptr(), self.k_cache[a].data_ptr(), self.v_cache[a].data_ptr(), B, T, self.cache_len,
                           starts, logits.data_ptr() if last and logits is not None else 0)
            if b in layers:
                kept[:, layers.index(b)] = x
        return kept.view(B, T, -1)

    def forward_with_ops(self, tokens: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same step with attention from ops.verify_attention (`ops_backend` "torch" or "emu"):
        (logits [B, T, V], final hidden [B, T, dim], the hidden_layers' [B, T, n*dim] or final hidden)."""
        cfg = self.cfg
        B, T = tokens.shape
        Hq, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        positions = pos.view(B, 1) + torch.arange(T)  # [B, T]
        cos = self.model.rope_cos[positions].unsqueeze(2)  # [B, T, 1, D]
        sin = self.model.rope_sin[positions].unsqueeze(2)
        rows = torch.arange(B).view(B, 1)
        x = self.embed(tokens).view(B * T, cfg.dim)  # [M, dim], M = B*T
        kept = []  # after the blocks of hidden_layers
        for i, layer in enumerate(self.layers):
            qkv = layer.qkv(F.rms_norm(x, (cfg.dim,), layer.attn_norm, layer.eps)).view(B, T, -1)
            q = apply_rope(qkv[..., :Hq * D].view(B, T, Hq, D), cos, sin)
            k = apply_rope(qkv[..., Hq * D:(Hq + Hkv) * D].view(B, T, Hkv, D), cos, sin)
            k_cache, v_cache = self.k_cache[i], self.v_cache[i]  # [B, Hkv, S, D]
            k_cache[rows, :, positions] = k
            v_cache[rows, :, positions] = qkv[..., (Hq + Hkv) * D:].view(B, T, Hkv, D)
            o = ops.verify_attention(q, k_cache, v_cache, pos, backend=self.ops_backend)
            x = x + layer.wo(o.reshape(B * T, Hq * D))
            gate, up = layer.gate_up(F.rms_norm(x, (cfg.dim,), layer.ffn_norm, layer.eps)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
            if self.hidden_layers and i + 1 in self.hidden_layers:
                kept.append(x.view(B, T, cfg.dim))
        x = x.view(B, T, cfg.dim)
        return self.logits(x), x, (torch.cat(kept, -1) if kept else x)
