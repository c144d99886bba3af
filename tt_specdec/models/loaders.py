"""Load decoders from safetensors files that carry their config in the metadata."""
from __future__ import annotations

import pathlib

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tt_specdec.models.llama import Llama, LlamaConfig

WEIGHTS = pathlib.Path(__file__).resolve().parent / "weights"


def load_model(path: str | pathlib.Path, dtype: torch.dtype = torch.float32) -> Llama:
    """A Llama from `path` (safetensors with a "config" metadata entry), in eval mode."""
    with safe_open(str(path), framework="pt") as f:
        cfg = LlamaConfig.from_json(f.metadata()["config"])
    model = Llama(cfg)
    model.load_state_dict(load_file(str(path)))
    return model.to(dtype).eval().requires_grad_(False)


def load_tiny_pair(dtype: torch.dtype = torch.float32) -> tuple[Llama, Llama]:
    """(target, draft): the byte-level test pair trained by tools/train_tiny.py."""
    return load_model(WEIGHTS / "tiny_target.safetensors", dtype), load_model(WEIGHTS / "tiny_draft.safetensors", dtype)
