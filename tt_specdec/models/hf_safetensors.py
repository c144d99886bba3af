"""Llama weights from a local Hugging Face directory (config.json + model.safetensors, or shards listed in
model.safetensors.index.json), as Llama-3.2-1B / Llama-3.1-8B ship: the user supplies the directory; nothing is
fetched from a hub.

    cfg, state = load_hf_llama("/models/Llama-3.2-1B")   # TtLlamaConfig, state dict in tt_specdec's names
    target = TtLlama.from_state_dict(cfg, state, dev, batch_size=8, max_seq_len=2048)

HF's q_proj / k_proj rows are already in the rotate-half layout our RoPE uses (no unpermuting, unlike GGUF).
"""
from __future__ import annotations

import json
import pathlib

import torch

from tt_specdec.models.ttnn_llama import TtLlamaConfig

_TOP = {"model.embed_tokens.weight": "embed.weight", "model.norm.weight": "norm.weight",
        "lm_head.weight": "lm_head.weight"}
_BLOCK = {"self_attn.q_proj.weight": "wq.weight", "self_attn.k_proj.weight": "wk.weight",
          "self_attn.v_proj.weight": "wv.weight", "self_attn.o_proj.weight": "wo.weight",
          "mlp.gate_proj.weight": "w_gate.weight", "mlp.up_proj.weight": "w_up.weight",
          "mlp.down_proj.weight": "w_down.weight", "input_layernorm.weight": "attn_norm.weight",
          "post_attention_layernorm.weight": "ffn_norm.weight"}


def our_name(hf_name: str) -> str | None:
    """tt_specdec's name of an HF Llama tensor; None for tensors we do not use (rotary inv_freq buffers)."""
    if hf_name in _TOP:
        return _TOP[hf_name]
    parts = hf_name.split(".", 3)  # model.layers.{i}.rest
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _BLOCK:
        return f"layers.{int(parts[2])}.{_BLOCK[parts[3]]}"
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None
    raise ValueError(f"safetensors tensor {hf_name!r}: not a Llama tensor this loader knows")


def shard_files(directory: pathlib.Path) -> list[pathlib.Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / n for n in names]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"{directory}: no model.safetensors or model.safetensors.index.json")


def load_hf_llama(directory: str | pathlib.Path, dtype: torch.dtype = torch.bfloat16,
                  name: str | None = None) -> tuple[TtLlamaConfig, dict[str, torch.Tensor]]:
    """(config, state dict in tt_specdec's Llama names, tensors in `dtype`) from a local HF Llama directory.
    Checks that every tensor the config implies is there with its shape."""
    from safetensors import safe_open

    directory = pathlib.Path(directory)
    hf = json.loads((directory / "config.json").read_text())
    if hf.get("model_type", "llama") != "llama":
        raise ValueError(f"{directory}/config.json: model_type {hf.get('model_type')!r}, expected 'llama'")
    cfg = TtLlamaConfig.from_hf(name or directory.name, hf)
    state: dict[str, torch.Tensor] = {}
    for path in shard_files(directory):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                ours = our_name(key)
                if ours is not None:
                    state[ours] = f.get_tensor(key).to(dtype)
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    check_state(cfg, state)
    return cfg, state


def expected_shapes(cfg: TtLlamaConfig) -> dict[str, tuple[int, ...]]:
    d, hd, f = cfg.dim, cfg.head_dim, cfg.ffn_dim
    out = {"embed.weight": (cfg.vocab_size, d), "norm.weight": (d,)}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = (cfg.vocab_size, d)
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        out.update({p + "wq.weight": (cfg.n_heads * hd, d), p + "wk.weight": (cfg.n_kv_heads * hd, d),
                    p + "wv.weight": (cfg.n_kv_heads * hd, d), p + "wo.weight": (d, cfg.n_heads * hd),
                    p + "w_gate.weight": (f, d), p + "w_up.weight": (f, d), p + "w_down.weight": (d, f),
                    p + "attn_norm.weight": (d,), p + "ffn_norm.weight": (d,)})
    return out


def check_state(cfg: TtLlamaConfig, state: dict[str, torch.Tensor]) -> None:
    want = expected_shapes(cfg)
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        raise ValueError(f"weights: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected {extra[:5]}, for config {cfg.name}")
    for k, shape in want.items():
        if tuple(state[k].shape) != shape:
            raise ValueError(f"{k}: got shape {tuple(state[k].shape)}, expected {shape}")
