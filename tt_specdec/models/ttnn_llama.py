"""A Llama-family decoder on a Tenstorrent device, in ttnn, written after tt-transformers' decode path
(models/tt_transformers/tt/: model.py, decoder.py, attention.py, mlp.py, rmsnorm.py, rope.py).

    dev = device.device()
    target = TtLlama.placeholder(LLAMA_3_1_8B, dev, batch_size=8, max_seq_len=256)  # or from_state_dict
    logits = target.prefill([[1, 2, 3], [4, 5]])        # [B, 1, V] tiles: each row's last token
    logits = target.forward(tokens, pos, T=5)            # tokens [B, T] uint32, pos [1, B] int32 -> [1, 1, B*T, V]

Every tensor lives on the device. The layers: RMSNorm (ttnn.rms_norm), one fused QKV matmul, RoPE in the
rotate-half layout (x * cos + (x @ R) * sin, R the rotate-half matrix, cos/sin rows gathered per query row by
ttnn.embedding from the position tensor), grouped-query attention, SwiGLU (silu fused into the multiply), a tied
or untied head. The KV cache is paged in DRAM ([blocks, Hkv, block_size, D] per layer, tt-transformers' layout;
each row owns max_blocks consecutive blocks).

A step of T rows per sequence (T = 1 ... k+1, at positions pos[b] .. pos[b]+T-1) is one forward over B*T rows:
its matmuls are sized for B*T rows, its attention is our verify_attention kernel (tt_specdec/ops/verify_attention,
launched through ttnn.generic_op: each 32-key chunk read once for all T rows and the whole GQA group), q packed
for it on the device. The T new K/V rows go into the paged cache at slots pos[b] .. pos[b]+T-1 by our
kv_write kernel (tt_specdec/ops/kv_write: any offset, unlike ttnn's paged_update_cache, one token per sequence,
and paged_fill_cache, a block-aligned start).
Prefill runs per sequence as tt-transformers' prefill does: ttnn's causal SDPA and paged_fill_cache (the
prompt starts at slot 0, block aligned).

Each ttnn call goes through `self.ops` (an OpLog): it counts the calls per step and, when asked, captures each
one alone under ttnn's NO_DISPATCH graph capture for its peak CB / L1 per core (tools/conformance/step.py
prints both). ttnn is imported here on first use, never at import.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch  # dtype names for the kernels' program description (tools/conformance/torchless.py provides them)

from tt_specdec.models.rope import Llama3Scaling, rope_from_hf, rope_tables
from tt_specdec.ops.kv_write.program import kv_write_program
from tt_specdec.ops.verify_attention.program import auto_kv_splits, verify_attention_program
from tt_specdec.runtime import device as D

TILE = 32


@dataclass(frozen=True)
class TtLlamaConfig:
    """The shapes of a Llama-family model (HF config.json names in the comments)."""
    name: str
    vocab_size: int  # vocab_size
    dim: int  # hidden_size
    n_layers: int  # num_hidden_layers
    n_heads: int  # num_attention_heads
    n_kv_heads: int  # num_key_value_heads
    ffn_dim: int  # intermediate_size
    rope_theta: float = 10000.0  # rope_theta
    norm_eps: float = 1e-5  # rms_norm_eps
    tie_embeddings: bool = True  # tie_word_embeddings
    rope_scaling: Llama3Scaling | None = None  # rope_scaling of rope_type "llama3" (models/rope.py)

    def __post_init__(self):
        if self.rope_scaling is not None:  # a plain tuple -> the named tuple
            object.__setattr__(self, "rope_scaling", Llama3Scaling(*self.rope_scaling))

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_hf(cls, name: str, hf: dict) -> "TtLlamaConfig":
        """From a Hugging Face config.json (a dict)."""
        theta, scaling = rope_from_hf(hf)
        return cls(name, int(hf["vocab_size"]), int(hf["hidden_size"]), int(hf["num_hidden_layers"]),
                   int(hf["num_attention_heads"]), int(hf.get("num_key_value_heads", hf["num_attention_heads"])),
                   int(hf["intermediate_size"]), theta, float(hf.get("rms_norm_eps", 1e-5)),
                   bool(hf.get("tie_word_embeddings", False)), scaling)

    @classmethod
    def from_llama_config(cls, name: str, cfg) -> "TtLlamaConfig":
        """From tt_specdec.models.llama.LlamaConfig (the GGUF and safetensors loaders' config)."""
        return cls(name, cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim,
                   cfg.rope_theta, cfg.norm_eps, cfg.tie_embeddings, cfg.rope_scaling)

    def llama_config(self, max_seq_len: int):
        """The torch Llama's / CPU engine's LlamaConfig of the same model (the host decoders a card is checked
        against)."""
        from tt_specdec.models.llama import LlamaConfig  # torch: not in the conformance environment
        return LlamaConfig(self.vocab_size, self.dim, self.n_layers, self.n_heads, self.n_kv_heads, self.ffn_dim,
                           max_seq_len, self.rope_theta, self.norm_eps, self.tie_embeddings, self.rope_scaling)


_LLAMA3_SCALING_1B = Llama3Scaling(32.0, 1.0, 4.0, 8192)  # the models' config.json
_LLAMA3_SCALING_8B = Llama3Scaling(8.0, 1.0, 4.0, 8192)
SMOLLM2_135M = TtLlamaConfig("SmolLM2-135M", 49152, 576, 30, 9, 3, 1536, 100000.0, 1e-5, True)
SMOLLM2_DRAFT = TtLlamaConfig("smollm2_draft", 49152, 128, 2, 4, 2, 512, 100000.0, 1e-5, True)  # weights/
LLAMA_3_2_1B = TtLlamaConfig("Llama-3.2-1B", 128256, 2048, 16, 32, 8, 8192, 500000.0, 1e-5, True, _LLAMA3_SCALING_1B)
LLAMA_3_1_8B = TtLlamaConfig("Llama-3.1-8B", 128256, 4096, 32, 32, 8, 14336, 500000.0, 1e-5, False,
                             _LLAMA3_SCALING_8B)
CONFIGS = {c.name: c for c in (SMOLLM2_135M, SMOLLM2_DRAFT, LLAMA_3_2_1B, LLAMA_3_1_8B)}


def rotate_half_matrix(hd: int) -> np.ndarray:
    """R [hd, hd] with x @ R == cat(-x[hd/2:], x[:hd/2]) (tt-transformers multiplies by a transformation matrix)."""
    r = np.zeros((hd, hd), dtype=np.float32)
    half = hd // 2
    r[np.arange(half) + half, np.arange(half)] = -1.0
    r[np.arange(half), np.arange(half) + half] = 1.0
    return r


@dataclass
class OpLog:
    """Counts the ttnn calls (`ops(fn, *args)`), and with `capture` runs each under its own NO_DISPATCH graph
    capture, keeping the largest peak CB / L1 per core seen per op name."""
    counts: dict[str, int] = field(default_factory=dict)
    capture: bool = False
    # name -> (cb, l1, dataflow buffers, total) bytes per core
    peaks: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    def __call__(self, fn, *args, name: str | None = None, **kw):
        name = name or getattr(fn, "__name__", None) or getattr(fn, "python_fully_qualified_name", str(fn))
        name = name.rsplit(".", 1)[-1]
        self.counts[name] = self.counts.get(name, 0) + 1
        if not self.capture:
            return fn(*args, **kw)
        import ttnn
        ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NO_DISPATCH)
        try:
            out = fn(*args, **kw)
        finally:
            graph = ttnn.graph.end_graph_capture()
        u = ttnn.graph.extract_resource_usage_per_core(graph)
        new = (u.peak_cb, u.peak_l1, u.peak_dataflow_buffer, u.peak_total)
        self.peaks[name] = tuple(max(a, b) for a, b in zip(self.peaks.get(name, new), new))
        return out

    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts = {}


@dataclass
class Layer:
    attn_norm: object  # [1, 1, dim/32, 32] bf16 row-major (tt-transformers' RMSNorm weight layout)
    wqkv: object  # [dim, (Hq + 2 Hkv) * hd] tiles: q, k, v columns side by side
    wo: object  # [Hq * hd, dim]
    ffn_norm: object
    w1: object  # gate [dim, ffn]
    w3: object  # up [dim, ffn]
    w2: object  # down [ffn, dim]


class TtLlama:
    """The decoder on a device: prefill(prompts) and forward(tokens, pos, T) on device tensors; owns its paged
    KV cache (batch_size rows of max_seq_len slots, in blocks of block_size)."""

    def __init__(self, cfg: TtLlamaConfig, dev, embed, layers: list[Layer], norm, lm_head, *, batch_size: int,
                 max_seq_len: int, block_size: int = 64, ops: OpLog | None = None, kv_memory_config=None):
        import ttnn
        self.cfg, self.dev, self.ttnn = cfg, dev, ttnn
        self.embed, self.layers, self.norm, self.lm_head = embed, layers, norm, lm_head
        self.B, self.block_size = batch_size, block_size
        self.max_blocks = -(-max_seq_len // block_size)
        self.max_seq_len = self.max_blocks * block_size
        self.ops = ops if ops is not None else OpLog()
        self.vocab_size = cfg.vocab_size
        if block_size % TILE:
            raise ValueError(f"block_size: got {block_size}, expected a multiple of {TILE} (whole key chunks)")
        hd, rm = cfg.head_dim, ttnn.ROW_MAJOR_LAYOUT
        cos, sin = rope_tables(hd, self.max_seq_len, cfg.rope_theta, cfg.rope_scaling)
        self.cos = ttnn.Tensor(cos, ttnn.bfloat16, dev, rm)  # [max_seq_len, hd]: gathered per row by embedding
        self.sin = ttnn.Tensor(sin, ttnn.bfloat16, dev, rm)
        self.rot = ttnn.Tensor(rotate_half_matrix(hd), ttnn.bfloat16, dev, ttnn.TILE_LAYOUT)
        # sequence b owns blocks b*max_blocks ... (b+1)*max_blocks - 1, for the decoder's lifetime
        table = np.arange(batch_size * self.max_blocks, dtype=np.int32).reshape(batch_size, self.max_blocks)
        self.page_table = ttnn.Tensor(table, ttnn.int32, dev, rm)
        # [blocks, Hkv, block_size, hd] as tt-transformers keeps it, viewed [blocks * Hkv, block_size, hd] by our kernels
        self.cache_shape = [batch_size * self.max_blocks, cfg.n_kv_heads, block_size, hd]
        mem = kv_memory_config or ttnn.DRAM_MEMORY_CONFIG
        self.k_cache = [ttnn.zeros(self.cache_shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, dev, mem) for _ in layers]
        self.v_cache = [ttnn.zeros(self.cache_shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, dev, mem) for _ in layers]
        self.qkv_memory_config = None  # the fused QKV matmul's output: ttnn's default (DRAM interleaved)
        flat = ttnn.reshape(self.k_cache[0], [self.cache_shape[0] * cfg.n_kv_heads, block_size, hd]) if layers else None
        if flat is not None and flat.buffer_address() != self.k_cache[0].buffer_address():
            raise RuntimeError("ttnn.reshape copied the KV cache instead of viewing it: kv_write would write a copy")
        self._per_T: dict[int, dict] = {}  # constants of a T-row step, made on its first use

    # ---- weights ------------------------------------------------------------------------------------

    @classmethod
    def placeholder(cls, cfg: TtLlamaConfig, dev, *, batch_size: int, max_seq_len: int,
                    weight_dtype: str = "bfloat8_b", **kw) -> "TtLlama":
        """Uninitialized weights (ttnn.empty, no host data): shapes, layouts and memory of the real model,
        for the mock device and for sizing. Matmul weights in `weight_dtype` (tt-transformers' performance
        mode keeps them in bfloat8_b; the 8B target does not fit a 12 GB n150 in bfloat16)."""
        import ttnn
        wd, bf, tile, rm, dram = (getattr(ttnn, weight_dtype), ttnn.bfloat16, ttnn.TILE_LAYOUT,
                                  ttnn.ROW_MAJOR_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)
        d, hd, f = cfg.dim, cfg.head_dim, cfg.ffn_dim
        qkv = (cfg.n_heads + 2 * cfg.n_kv_heads) * hd

        def mat(rows, cols):
            return ttnn.empty([rows, cols], wd, tile, dev, dram)

        def norm():
            return ttnn.empty([1, 1, d // TILE, TILE], bf, rm, dev, dram)

        layers = [Layer(norm(), mat(d, qkv), mat(cfg.n_heads * hd, d), norm(), mat(d, f), mat(d, f), mat(f, d))
                  for _ in range(cfg.n_layers)]
        embed = ttnn.empty([cfg.vocab_size, d], bf, rm, dev, dram)
        return cls(cfg, dev, embed, layers, norm(), mat(d, cfg.vocab_size), batch_size=batch_size,
                   max_seq_len=max_seq_len, **kw)

    @classmethod
    def from_state_dict(cls, cfg: TtLlamaConfig, state: dict, dev, *, batch_size: int, max_seq_len: int,
                        weight_dtype: str = "bfloat16", **kw) -> "TtLlama":
        """Weights from a torch state dict in tt_specdec's Llama names (embed.weight, layers.{i}.wq.weight, ...,
        norm.weight, lm_head.weight when untied): what load_gguf_llama and models.hf_safetensors give."""
        import ttnn
        wd = getattr(ttnn, weight_dtype)

        def mat(w):  # nn.Linear [out, in] -> [in, out] tiles
            return ttnn.from_torch(w.t().contiguous().to(torch.bfloat16), dtype=wd, layout=ttnn.TILE_LAYOUT,
                                   device=dev, memory_config=ttnn.DRAM_MEMORY_CONFIG)

        def norm(w):
            return ttnn.from_torch(w.to(torch.bfloat16).reshape(1, 1, -1, TILE), dtype=ttnn.bfloat16,
                                   layout=ttnn.ROW_MAJOR_LAYOUT, device=dev, memory_config=ttnn.DRAM_MEMORY_CONFIG)

        layers = []
        for i in range(cfg.n_layers):
            p = f"layers.{i}."
            wqkv = torch.cat([state[p + "wq.weight"], state[p + "wk.weight"], state[p + "wv.weight"]], 0)
            layers.append(Layer(norm(state[p + "attn_norm.weight"]), mat(wqkv), mat(state[p + "wo.weight"]),
                                norm(state[p + "ffn_norm.weight"]), mat(state[p + "w_gate.weight"]),
                                mat(state[p + "w_up.weight"]), mat(state[p + "w_down.weight"])))
        embed = ttnn.from_torch(state["embed.weight"].to(torch.bfloat16), dtype=ttnn.bfloat16,
                                layout=ttnn.ROW_MAJOR_LAYOUT, device=dev, memory_config=ttnn.DRAM_MEMORY_CONFIG)
        head = state["embed.weight"] if cfg.tie_embeddings else state["lm_head.weight"]
        return cls(cfg, dev, embed, layers, norm(state["norm.weight"]), mat(head), batch_size=batch_size,
                   max_seq_len=max_seq_len, **kw)

    # ---- the T-row step ------------------------------------------------------------------------------

    def step_constants(self, T: int) -> dict:
        """What a T-row step reuses: row offsets 0..T-1 and the programs of our kernels for T rows (their
        compile-time shapes)."""
        if T in self._per_T:
            return self._per_T[T]
        ttnn, cfg, B = self.ttnn, self.cfg, self.B
        offsets = np.tile(np.arange(T, dtype=np.int32), (B, 1))  # [B, T]
        blocks = B * self.max_blocks
        with D.aligned():
            attention = verify_attention_program(B, T, cfg.n_heads, cfg.n_kv_heads, self.max_seq_len, cfg.head_dim,
                                                 torch.bfloat16, 1.0 / math.sqrt(cfg.head_dim), num_blocks=blocks,
                                                 block_size=self.block_size, max_blocks=self.max_blocks,
                                                 kv_splits=auto_kv_splits(B, cfg.n_kv_heads, self.max_seq_len))
            write = kv_write_program(B, T, cfg.n_kv_heads, cfg.head_dim, torch.bfloat16, num_blocks=blocks,
                                     block_size=self.block_size, max_blocks=self.max_blocks)
        c = dict(offsets=ttnn.Tensor(offsets, ttnn.int32, self.dev, ttnn.TILE_LAYOUT), program=attention,
                 kv_write=write)
        self._per_T[T] = c
        return c

    def row_positions(self, pos, T: int):
        """pos [1, B] int32 -> cos, sin [B*T, 1, hd] of rows (b, t) at positions pos[b]+t."""
        ttnn, op, B = self.ttnn, self.ops, self.B
        c = self.step_constants(T)
        p = op(ttnn.to_layout, pos, ttnn.TILE_LAYOUT)
        p = op(ttnn.reshape, p, [B, 1])
        p = op(ttnn.repeat, p, ttnn.Shape([1, T]))
        p = op(ttnn.add, p, c["offsets"])  # [B, T]
        idx = op(ttnn.typecast, p, ttnn.uint32)
        idx = op(ttnn.reshape, op(ttnn.to_layout, idx, ttnn.ROW_MAJOR_LAYOUT), [1, B * T])
        hd = self.cfg.head_dim
        cos = op(ttnn.reshape, op(ttnn.embedding, idx, self.cos, layout=ttnn.TILE_LAYOUT), [B * T, 1, hd])
        sin = op(ttnn.reshape, op(ttnn.embedding, idx, self.sin, layout=ttnn.TILE_LAYOUT), [B * T, 1, hd])
        return cos, sin

    def forward(self, tokens, pos, T: int):
        """tokens [B, T] uint32 row-major, pos [1, B] int32 row-major (device tensors) -> logits [1, 1, B*T, V]
        tiles, row b*T + t for token t of sequence b at position pos[b]+t; writes those rows' K/V."""
        ttnn, op, cfg, B = self.ttnn, self.ops, self.cfg, self.B
        BT, hd, Hq, Hkv = B * T, cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
        cos, sin = self.row_positions(pos, T)
        x = op(ttnn.embedding, tokens, self.embed, layout=ttnn.TILE_LAYOUT)  # [B, T, dim]
        x = op(ttnn.reshape, x, [1, 1, BT, cfg.dim])
        for i, layer in enumerate(self.layers):
            h = op(ttnn.rms_norm, x, epsilon=cfg.norm_eps, weight=layer.attn_norm)
            qkv = op(ttnn.linear, h, layer.wqkv, memory_config=self.qkv_memory_config)
            qkv = op(ttnn.reshape, qkv, [BT, Hq + 2 * Hkv, hd])
            q = self.rope(op(ttnn.slice, qkv, [0, 0, 0], [BT, Hq, hd]), cos, sin)  # [B*T, Hq, hd]
            k = self.rope(op(ttnn.slice, qkv, [0, Hq, 0], [BT, Hq + Hkv, hd]), cos, sin)
            v = op(ttnn.slice, qkv, [0, Hq + Hkv, 0], [BT, Hq + 2 * Hkv, hd])
            self.write_kv(i, k, v, pos, T)
            a = self.attention(i, q, pos, T)  # [1, 1, B*T, Hq*hd]
            x = op(ttnn.add, x, op(ttnn.linear, a, layer.wo))
            x = op(ttnn.add, x, self.mlp(x, layer))
        return self.head(x)

    def rope(self, x, cos, sin):
        """x [rows, H, hd] * cos + rotate_half(x) * sin, cos/sin [rows, 1, hd] broadcast over the heads."""
        ttnn, op = self.ttnn, self.ops
        return op(ttnn.add, op(ttnn.multiply, x, cos), op(ttnn.multiply, op(ttnn.matmul, x, self.rot), sin))

    def write_kv(self, i: int, k, v, pos, T: int) -> None:
        """K, V [B*T, Hkv, hd] into layer i's paged cache at slots pos[b] .. pos[b]+T-1: our kv_write kernel,
        the rows packed as it reads them, one 32-row tile row per (b, KV head): row t = token t."""
        ttnn, op, B, Hkv, hd = self.ttnn, self.ops, self.B, self.cfg.n_kv_heads, self.cfg.head_dim
        new = {}
        for name, x in (("k_new", k), ("v_new", v)):
            x = op(ttnn.permute, op(ttnn.reshape, x, [B, T, Hkv, hd]), (0, 2, 1, 3))  # [B, Hkv, T, hd]
            x = op(ttnn.reshape, x, [B * Hkv, T, hd])
            new[name] = op(ttnn.pad, x, [(0, 0), (0, TILE - T), (0, 0)], 0.0)  # [B*Hkv, 32, hd]
        tensors = dict(new, pos=pos, page_table=self.page_table, k=self.k_cache[i], v=self.v_cache[i])
        op(D.run, self.step_constants(T)["kv_write"], tensors, self.dev, name="kv_write")

    def attention(self, i: int, q, pos, T: int):
        """Our verify_attention kernel over layer i's paged cache: q [B*T, Hq, hd] -> [1, 1, B*T, Hq*hd].
        q is packed as the kernel reads it, one 32-row tile row per (b, KV head): row t*group + g."""
        ttnn, op, cfg, B = self.ttnn, self.ops, self.cfg, self.B
        Hq, Hkv, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        group = Hq // Hkv
        c = self.step_constants(T)
        qp = op(ttnn.reshape, q, [B, T, Hkv, group * hd])
        qp = op(ttnn.permute, qp, (0, 2, 1, 3))  # [B, Hkv, T, group*hd]
        qp = op(ttnn.reshape, qp, [B * Hkv, T * group, hd])
        qp = op(ttnn.pad, qp, [(0, 0), (0, TILE - T * group), (0, 0)], 0.0)  # [B*Hkv, 32, hd]
        tensors = {"q": qp, "k": self.k_cache[i], "v": self.v_cache[i], "pos": pos, "page_table": self.page_table}
        out = op(D.run, c["program"], tensors, self.dev, name="verify_attention").outputs["out"]
        out = op(ttnn.slice, out, [0, 0, 0], [B * Hkv, T * group, hd])
        out = op(ttnn.reshape, out, [B, Hkv, T, group * hd])
        out = op(ttnn.permute, out, (0, 2, 1, 3))  # [B, T, Hkv, group*hd]
        return op(ttnn.reshape, out, [1, 1, B * T, Hq * hd])

    def mlp(self, x, layer: Layer):
        ttnn, op = self.ttnn, self.ops
        h = op(ttnn.rms_norm, x, epsilon=self.cfg.norm_eps, weight=layer.ffn_norm)
        gate = op(ttnn.linear, h, layer.w1)
        up = op(ttnn.linear, h, layer.w3)
        return op(ttnn.linear, op(ttnn.multiply, gate, up, input_tensor_a_activations=[ttnn.UnaryOpType.SILU]),
                  layer.w2)

    def head(self, x):
        ttnn, op = self.ttnn, self.ops
        return op(ttnn.linear, op(ttnn.rms_norm, x, epsilon=self.cfg.norm_eps, weight=self.norm), self.lm_head)

    # ---- prefill --------------------------------------------------------------------------------------

    def prefill(self, prompts: list[list[int]]):
        """Each prompt's KV at slots 0 .. len-1 (one sequence at a time, tt-transformers' prefill: causal SDPA,
        paged_fill_cache); -> logits [B, 1, V] tiles of each prompt's last token, on the device."""
        ttnn, op, cfg = self.ttnn, self.ops, self.cfg
        if len(prompts) != self.B or any(not 0 < len(p) <= self.max_seq_len for p in prompts):
            raise ValueError(f"prompts: got {len(prompts)} of lengths {[len(p) for p in prompts]}, expected "
                             f"{self.B} of 1..{self.max_seq_len} tokens")
        hd, Hq, Hkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
        last = []
        for b, prompt in enumerate(prompts):
            L = -(-len(prompt) // TILE) * TILE  # padded rows compute garbage KV at slots >= len: masked, overwritten
            toks = ttnn.Tensor(np.array([list(prompt) + [0] * (L - len(prompt))], np.uint32), ttnn.uint32, self.dev,
                               ttnn.ROW_MAJOR_LAYOUT)
            idx = ttnn.Tensor(np.arange(L, dtype=np.uint32).reshape(1, L), ttnn.uint32, self.dev,
                              ttnn.ROW_MAJOR_LAYOUT)
            cos = op(ttnn.reshape, op(ttnn.embedding, idx, self.cos, layout=ttnn.TILE_LAYOUT), [L, 1, hd])
            sin = op(ttnn.reshape, op(ttnn.embedding, idx, self.sin, layout=ttnn.TILE_LAYOUT), [L, 1, hd])
            x = op(ttnn.reshape, op(ttnn.embedding, toks, self.embed, layout=ttnn.TILE_LAYOUT), [1, 1, L, cfg.dim])
            for i, layer in enumerate(self.layers):
                h = op(ttnn.rms_norm, x, epsilon=cfg.norm_eps, weight=layer.attn_norm)
                qkv = op(ttnn.reshape, op(ttnn.linear, h, layer.wqkv), [L, Hq + 2 * Hkv, hd])
                heads = []
                for lo, hi, rotate in ((0, Hq, True), (Hq, Hq + Hkv, True), (Hq + Hkv, Hq + 2 * Hkv, False)):
                    t = op(ttnn.slice, qkv, [0, lo, 0], [L, hi, hd])
                    t = self.rope(t, cos, sin) if rotate else t
                    heads.append(op(ttnn.permute, op(ttnn.reshape, t, [1, L, hi - lo, hd]), (0, 2, 1, 3)))
                q, k, v = heads  # [1, H, L, hd]
                op(ttnn.experimental.paged_fill_cache, self.k_cache[i], k, self.page_table, batch_idx=b)
                op(ttnn.experimental.paged_fill_cache, self.v_cache[i], v, self.page_table, batch_idx=b)
                a = op(ttnn.transformer.scaled_dot_product_attention, q, k, v, is_causal=True)
                a = op(ttnn.reshape, op(ttnn.permute, a, (0, 2, 1, 3)), [1, 1, L, Hq * hd])
                x = op(ttnn.add, x, op(ttnn.linear, a, layer.wo))
                x = op(ttnn.add, x, self.mlp(x, layer))
            n = len(prompt)
            last.append(op(ttnn.slice, x, [0, 0, n - 1, 0], [1, 1, n, cfg.dim]))
        x = op(ttnn.concat, last, dim=2)  # [1, 1, B, dim]
        return op(ttnn.reshape, self.head(x), [self.B, 1, cfg.vocab_size])


def load_config(name: str) -> TtLlamaConfig:
    if name not in CONFIGS:
        raise ValueError(f"name: got {name!r}, expected one of {sorted(CONFIGS)}")
    return dataclasses.replace(CONFIGS[name])
