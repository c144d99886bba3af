"""RoPE tables for every decoder here (torch Llama, the CPU engine, the ttnn Llama): one formula, numpy only
(the ttnn conformance environment has no torch).

    scaling = Llama3Scaling(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                            original_max_position_embeddings=8192)        # Llama-3.2-1B's config.json
    cos, sin = rope_tables(head_dim=64, max_len=4096, theta=500000.0, scaling=scaling)  # [4096, 64] float32 each

Rotate-half layout (HF Llama): row p is cos / sin of p * inv_freq, the head_dim/2 frequencies written twice.
Llama 3.x's "llama3" scaling (transformers' modeling_rope_utils._compute_llama3_parameters) divides the
frequencies whose wavelength exceeds original_max_position_embeddings / low_freq_factor by `factor`, keeps
those shorter than original / high_freq_factor, and blends linearly in wavelength-inverse between them.
Angles are computed in float64 and rounded once (transformers rounds inv_freq and the angle to float32 first:
the tables differ from its by at most a few float32 ulps of the angle).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Llama3Scaling(NamedTuple):
    """config.json's rope_scaling (or rope_parameters) of rope_type "llama3"; a plain tuple in JSON."""
    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


def inv_frequencies(head_dim: int, theta: float, scaling: Llama3Scaling | None = None) -> np.ndarray:
    """[head_dim/2] float64: theta^(-2i/head_dim), llama3-scaled when `scaling` is given."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if scaling is None:
        return inv_freq
    factor, low, high, original = scaling
    wavelen = 2 * math.pi / inv_freq
    smooth = (original / wavelen - low) / (high - low)
    scaled = np.where(wavelen > original / low, inv_freq / factor, inv_freq)
    mid = (wavelen <= original / low) & (wavelen >= original / high)
    return np.where(mid, (1 - smooth) * inv_freq / factor + smooth * inv_freq, scaled)


def rope_tables(head_dim: int, max_len: int, theta: float,
                scaling: Llama3Scaling | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [max_len, head_dim] float32 in the rotate-half layout."""
    angles = np.outer(np.arange(max_len, dtype=np.float64), inv_frequencies(head_dim, theta, scaling))
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def rope_from_hf(hf: dict) -> tuple[float, Llama3Scaling | None]:
    """(theta, scaling) from a Hugging Face config.json (a dict): transformers 4's `rope_theta` + `rope_scaling`,
    or transformers 5's `rope_parameters` (theta inside). Refuses a RoPE type other than default / llama3."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind != "llama3":
        raise ValueError(f"rope_scaling: got rope_type {kind!r}, expected 'default' or 'llama3'")
    missing = [k for k in ("factor", "low_freq_factor", "high_freq_factor") if k not in params]
    if missing:
        raise ValueError(f"rope_scaling: got {params}, expected the llama3 keys {missing} too")
    # transformers falls back to max_position_embeddings (PreTrainedConfig.standardize_rope_params)
    original = params.get("original_max_position_embeddings", hf.get("max_position_embeddings"))
    if original is None:
        raise ValueError(f"rope_scaling: got {params}, expected original_max_position_embeddings "
                         "(or max_position_embeddings in the config)")
    return theta, Llama3Scaling(float(params["factor"]), float(params["low_freq_factor"]),
                                float(params["high_freq_factor"]), int(original))
