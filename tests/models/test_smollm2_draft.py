"""The shipped SmolLM2 draft (tools/distill_smollm2.py): it loads, shares the target's vocabulary,
has the documented config, is accepted by the target on held-out prompts and keeps greedy output
identical to the target alone (fp32: bf16 verify and decode logits can differ at near-ties until the
exact mode exists). Needs the SmolLM2 target (tools/setup.sh); ~15 s on one thread."""
import os

import pytest
import torch

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

import tt_specdec  # noqa: E402
from tt_specdec.drafters import ModelDrafter  # noqa: E402
from tt_specdec.models.llama import LlamaConfig  # noqa: E402
from tt_specdec.models.loaders import WEIGHTS  # noqa: E402
from tt_specdec.speculative import generate_plain, speculative_generate  # noqa: E402
from tt_specdec.bench.prompts_smollm2 import PROMPTS  # noqa: E402

DRAFT = WEIGHTS / "smollm2_draft.safetensors"
# the config documented in tools/distill_smollm2.py (DRAFT_CFG)
CONFIG = LlamaConfig(vocab_size=49152, dim=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=512,
                     max_seq_len=2048, rope_theta=100000.0, norm_eps=1e-5, tie_embeddings=True)
K, NEW_TOKENS = 4, 24
HELD_OUT = [PROMPTS[0][1], PROMPTS[6][1]]  # a chat and a code prompt, never trained on
# Greedy acceptance (accepted / drafted) on these two prompts, fp32, k=4, 24 tokens, measured with the
# draft committed at step 423 (early in the distillation: 10 / 130 = 0.077; step 312: 0.068; the SVD-initialised draft
# before training: 0 / 164). The floor sits well below the measured value: it catches a broken or
# unrelated draft, not a slightly different checkpoint. Raise it as the shipped draft improves.
ACCEPTANCE_MEASURED = 0.077
ACCEPTANCE_FLOOR = 0.02

pytestmark = pytest.mark.skipif(not DRAFT.is_file(), reason="no smollm2_draft.safetensors shipped")


@pytest.fixture(scope="module")
def pair():
    return tt_specdec.load_pair("smollm2", torch.float32)


def test_draft_file_config_and_vocabulary(pair):
    assert DRAFT.stat().st_size <= 25 * 1024 * 1024
    assert pair.draft is not None and pair.draft.cfg == CONFIG
    assert pair.draft.vocab_size == pair.target.vocab_size == pair.tokenizer.vocab_size == 49152
    assert pair.draft.embed.weight.dtype == torch.float32  # load_pair's dtype; the file holds bf16


def test_draft_accepted_and_lossless_on_held_out_prompts(pair):
    tok = pair.tokenizer
    drafted = accepted = 0
    for text in HELD_OUT:
        ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}]))
        plain = generate_plain(pair.target, [ids], max_new_tokens=NEW_TOKENS, eos_token_id=tok.eos_token_id)
        spec = speculative_generate(pair.target, ModelDrafter(pair.draft), [ids], k=K, max_new_tokens=NEW_TOKENS,
                                    eos_token_id=tok.eos_token_id)
        assert spec.tokens == plain.tokens  # lossless: the target's own greedy output
        drafted += spec.stats.drafted
        accepted += spec.stats.accepted
    assert accepted / drafted > ACCEPTANCE_FLOOR, f"acceptance {accepted / drafted:.3f}"
