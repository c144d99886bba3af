"""The fast CPU decoder: a Llama run through the batch-invariant kernels of tt_specdec._cpu.

Weights are bf16 (the model is memory-bound at decode), activations and accumulation fp32.
Every linear and the attention compute each output element with the same fp32 operations
whatever the row count, so a (k+1)-row verify gives bit-identical logits to k+1 one-row
decodes: greedy speculative output equals the target alone exactly, even at near-ties
("exact mode", issue 5). A weight panel is still read once for all rows of a call, which is
what makes verifying k+1 rows cost little more than decoding one.

`CpuLlama(model)` wraps a torch `Llama` (whose weights it rounds to bf16 in place, so the
torch module computes with the same weights) and is a Decoder like it.

The linear runs on one matrix path per model, chosen at run time from what the CPU has
(`matrix_paths()`: portable, avx2, avx512_bf16, amx; `matrix_path()`: the process's, the fastest
unless TT_SPECDEC_CPU_PATH names another). avx2 and portable give the same bits (fp32 activations
times fp32-widened weights); avx512_bf16 and amx round the activations to bf16 and multiply bf16 x
bf16 into fp32: a slightly different target, each bit-identical between its own verify and decode.
"""
from __future__ import annotations

import functools
import hashlib
import math
import pathlib

import torch
import torch.nn.functional as F

from tt_specdec import ops
from tt_specdec.models.llama import Llama, apply_rope, check_forward_args, tree_rows


def _cpu():
    from tt_specdec import _cpu as mod  # built by CMakeLists.txt with the emulator
    return mod


@functools.cache
def engine_build() -> str:
    """The built _cpu module's identity (sha256 of its file, 16 hex digits): costs measured with one build
    are not another's (a rebuilt kernel can cost a verify row differently)."""
    return hashlib.sha256(pathlib.Path(_cpu().__file__).read_bytes()).hexdigest()[:16]


def matrix_paths() -> list[str]:
    """The linear's matrix paths this CPU can run, fastest last."""
    return list(_cpu().matrix_paths())


def matrix_path() -> str:
    """The process's matrix path: TT_SPECDEC_CPU_PATH when set, else the fastest; fixed at its first call."""
    return _cpu().matrix_path()


def threads() -> int:
    """Threads of the _cpu kernels' pool."""
    return _cpu().threads()


def set_threads(n: int) -> None:
    """Threads of the _cpu kernels (their own pool, separate from torch's)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads: got {n!r}, expected an int >= 1")
    _cpu().set_threads(n)


class PackedLinear:
    """y [M, N] = x [M, K] @ W^T with W [N, K] packed once as bf16 panels for one matrix path
    (None: the process's)."""

    def __init__(self, weight: torch.Tensor, path: str | None = None):
        w = weight.detach().contiguous()
        if w.dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"weight: got dtype {w.dtype}, expected float32 or bfloat16")
        self.n, self.k = w.shape
        self.packed = _cpu().PackedLinear(w, path)
        self.path = self.packed.path

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] fp32 contiguous -> [M, N] fp32."""
        out = torch.empty(x.shape[0], self.n)
        self.packed.forward(x, out)
        return out


def attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Batch-invariant verify attention: q [B, T, Hq, D], caches [B, Hkv, S, D] fp32 -> [B, T, Hq, D]."""
    q = q.contiguous()
    out = torch.empty_like(q)
    _cpu().attention(q, k_cache, v_cache, out, pos.tolist(), 1.0 / math.sqrt(q.shape[-1]))
    return out


class CpuLayer:
    """One decoder block's packed weights: fused q|k|v and gate|up products."""

    def __init__(self, block, path: str | None = None):
        self.attn_norm = block.attn_norm.weight.detach().float().contiguous()
        self.ffn_norm = block.ffn_norm.weight.detach().float().contiguous()
        self.eps = block.attn_norm.eps
        self.qkv = PackedLinear(torch.cat([block.wq.weight, block.wk.weight, block.wv.weight]), path)
        self.wo = PackedLinear(block.wo.weight, path)
        self.gate_up = PackedLinear(torch.cat([block.w_gate.weight, block.w_up.weight]), path)
        self.down = PackedLinear(block.w_down.weight, path)


def build_engine(cfg, rope_cos: torch.Tensor, rope_sin: torch.Tensor, layers: list["CpuLayer"], norm,
                 head: PackedLinear):
    """A _cpu.CpuModel running `layers` then `norm` and `head`: one C++ call per step.
    Used by CpuLlama, and by drafters made of Llama blocks (an EAGLE head's layer). The engine takes the
    head's matrix path; every layer's linears must be packed for it."""
    engine = _cpu().CpuModel(cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn_dim, cfg.norm_eps,
                             rope_cos.float().contiguous(), rope_sin.float().contiguous(), head.path)
    for layer in layers:  # the engine copies the norms and holds the packed weights
        engine.add_layer(layer.attn_norm, layer.ffn_norm, layer.qkv.packed,
                         layer.wo.packed, layer.gate_up.packed, layer.down.packed)
    engine.set_head(norm.weight.detach().float().contiguous(), head.packed)
    return engine


def engine_logits(engine, h: torch.Tensor, n_out: int) -> torch.Tensor:
    """h [..., dim] -> logits [..., n_out] fp32: a build_engine engine's final norm and head alone."""
    flat = h.float().reshape(-1, h.shape[-1]).contiguous()
    out = torch.empty(flat.shape[0], n_out)
    engine.logits(flat, out)
    return out.view(*h.shape[:-1], -1)


class CpuLlama:
    """Decoder: `forward(tokens [B, T], pos [B]) -> logits [B, T, V]` on the _cpu kernels, every linear on
    `matrix_path` (None: the process's matrix_path())."""

    def __init__(self, model: Llama, matrix_path: str | None = None):
        with torch.no_grad():
            for p in model.parameters():  # the torch module now holds exactly the weights we compute with
                p.copy_(p.bfloat16().float())
        self.model = model.float().eval().requires_grad_(False)
        self.cfg = model.cfg
        self.embed, self.norm, self.lm_head = model.embed, model.norm, model.lm_head  # as Llama: for an EAGLE head
        self.head = PackedLinear(model.output_weight, matrix_path)
        self.matrix_path = self.head.path  # decode and verify both run it: exact mode needs one path
        self.layers = [CpuLayer(b, self.matrix_path) for b in model.layers]
        self.engine = build_engine(model.cfg, model.rope_cos, model.rope_sin, self.layers, model.norm, self.head)
        self.k_cache: torch.Tensor | None = None  # [n_layers, B, Hkv, S, D] fp32
        self.v_cache: torch.Tensor | None = None
        self.keep_hidden: tuple[int, ...] = ()  # as Llama: set by allocate_cache; forward writes hidden_cache
        self.hidden_cache: torch.Tensor | None = None
        self.attention = self.native_attention  # "torch" / "emu": forward_with_ops, ops.verify_attention

    native_attention = "cpu"  # the C++ engine: one call per step, batch-invariant attention

    weight_dtype = torch.bfloat16  # as stored and read each step; activations are fp32
    threads = property(lambda self: _cpu().threads())
    engine_build = property(lambda self: engine_build())  # the cost cache's key names the build
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

    def allocate_cache(self, batch_size: int, cache_len: int, keep_hidden: bool | tuple[int, ...] = False) -> None:
        Llama.allocate_cache(self, batch_size, cache_len, keep_hidden)

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
        if self.attention != "cpu":
            logits, x = self.forward_with_ops(tokens, pos)
            return logits if with_logits else x
        return self.run_engine(tokens, pos, with_logits, None)

    @torch.inference_mode()
    def forward_tree(self, tokens: torch.Tensor, pos: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """A token tree's verify: tokens [B, T] (row 0 the root), parents [B, T] (-1 for row 0, else an
        earlier row) -> logits [B, T, V]. Row t sits at position pos[b] + its depth, sees the cache (keys
        0 .. pos[b]-1) and its ancestors, and writes its KV at slot pos[b] + t; after rollback_kv compacts
        an accepted path to pos[b] + depth, the cache and the path's logits have the bits that decoding the
        path one token at a time gives (exact mode, for trees). Kept hidden states are written as the KV, at
        slot pos[b] + t (the loop compacts them with the KV: ops.rollback_kv.compact_hidden). With `attention`
        "torch" or "emu" the attention is ops.verify_attention's with the tree mask (forward_with_ops)."""
        check_forward_args(self, tokens, pos)
        if self.attention != "cpu":
            return self.forward_with_ops(tokens, pos, parents)[0]
        return self.run_engine(tokens, pos, True, parents.reshape(-1).tolist())

    def run_engine(self, tokens: torch.Tensor, pos: torch.Tensor, with_logits: bool,
                   parents: list[int] | None) -> torch.Tensor:
        """forward's and forward_tree's body on the C++ engine (parents [B * T] or None: a chain) -> logits
        [B, T, V], or the final hidden states [B, T, dim] without logits; kept hidden states written to
        hidden_cache at slots pos[b] + t, as the KV."""
        B, T = tokens.shape
        x = self.embed(tokens).reshape(B * T, self.cfg.dim).contiguous()  # [M, dim]: in embeddings, out hidden
        logits = torch.empty(B, T, self.vocab_size) if with_logits else None
        layers = self.keep_hidden or None
        kept = None if layers is None else torch.empty(B, T, len(layers), self.cfg.dim)
        self.engine.forward(x.view(B, T, -1), self.k_cache, self.v_cache, pos.tolist(), logits, parents,
                            hidden=kept, hidden_layers=layers)
        self.keep_rows(kept, pos)
        return logits if with_logits else x.view(B, T, -1)

    def keep_rows(self, kept: torch.Tensor | None, pos: torch.Tensor) -> None:
        """The kept blocks' hidden states kept [B, T, n, dim] (or [B, T, n·dim]; None: none kept) into
        hidden_cache at slots pos[b] .. pos[b]+T-1."""
        if kept is None:
            return
        B, T = kept.shape[:2]
        kept = kept.view(B, T, -1)  # [B, T, n·dim]
        for b, p in enumerate(pos.tolist()):  # a slice per row: cheaper than one advanced-index write
            self.hidden_cache[b, p:p + T] = kept[b]

    def forward_with_ops(self, tokens: torch.Tensor, pos: torch.Tensor, parents: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same step with attention from ops.verify_attention (`attention` "torch" or "emu"):
        (logits [B, T, V], final hidden [B, T, dim]); the keep_hidden blocks' states written to hidden_cache
        at slots pos[b] + t, as run_engine writes them.
        parents [B, T] (a token tree, as forward_tree): row t at RoPE position pos[b] + its depth, tree-masked;
        None: the chain, row t at pos[b] + t. KV is written at slot pos[b] + t either way."""
        cfg = self.cfg
        B, T = tokens.shape
        Hq, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        slots = pos.view(B, 1) + torch.arange(T)  # [B, T]
        positions, tree_mask = (slots, None) if parents is None else tree_rows(pos, parents)  # [B, T], [B, T, T]
        cos = self.model.rope_cos[positions].unsqueeze(2)  # [B, T, 1, D]
        sin = self.model.rope_sin[positions].unsqueeze(2)
        rows = torch.arange(B).view(B, 1)
        x = self.embed(tokens).view(B * T, cfg.dim)  # [M, dim], M = B*T
        kept = []  # [B, T, dim] after each block count of keep_hidden
        for i, layer in enumerate(self.layers):
            qkv = layer.qkv(F.rms_norm(x, (cfg.dim,), layer.attn_norm, layer.eps)).view(B, T, -1)
            q = apply_rope(qkv[..., :Hq * D].view(B, T, Hq, D), cos, sin)
            k = apply_rope(qkv[..., Hq * D:(Hq + Hkv) * D].view(B, T, Hkv, D), cos, sin)
            k_cache, v_cache = self.k_cache[i], self.v_cache[i]  # [B, Hkv, S, D]
            k_cache[rows, :, slots] = k
            v_cache[rows, :, slots] = qkv[..., (Hq + Hkv) * D:].view(B, T, Hkv, D)
            o = ops.verify_attention(q, k_cache, v_cache, pos, tree_mask=tree_mask, backend=self.attention)
            x = x + layer.wo(o.reshape(B * T, Hq * D))
            gate, up = layer.gate_up(F.rms_norm(x, (cfg.dim,), layer.ffn_norm, layer.eps)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
            if i + 1 in self.keep_hidden:
                kept.append(x.view(B, T, cfg.dim))
        x = x.view(B, T, cfg.dim)
        self.keep_rows(torch.cat(kept, -1) if kept else None, pos)
        return self.logits(x), x
