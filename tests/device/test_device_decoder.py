"""The ttnn decoders and the whole speculative step on a Tenstorrent card (`pytest --device`; skipped with the
reason when no card or no ttnn). Never run on a card so far: what runs without one is the same step on real
ttnn on a mock n150 (tests/conformance/test_device_step.py), which checks every op's validation, the allocator
and the program cache, not values.

- the ttnn Llama's logits (models/ttnn_llama.py, weights copied from the torch model) against the CPU engine's
  on the same tokens, prefill and a T-row step: PCC >= 0.99;
- the same for a local Llama 3.x HF directory named by TT_SPECDEC_HF_LLAMA (its llama3 rope_scaling on both sides);
- greedy speculative output with the whole step on the card equals the ttnn target decoding alone, token for token,
  traced (captured once, replayed) and untraced.
"""
import os

import pytest
import torch

from tt_specdec.api import SpeculativeDecoder, load_pair
from tt_specdec.models.cpu_llama import CpuLlama
from tt_specdec.models.hf_safetensors import load_hf_llama
from tt_specdec.models.llama import Llama
from tt_specdec.models.ttnn_llama import TtLlama, TtLlamaConfig
from tt_specdec.runtime import device

pytestmark = pytest.mark.device
K = 4
HF_LLAMA = "TT_SPECDEC_HF_LLAMA"  # a local Hugging Face Llama 3.x directory (config.json + safetensors)


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def tiny():
    return load_pair("tiny")


def check_logits_against_the_cpu_engine(cpu, cfg: TtLlamaConfig, state: dict, T: int, max_seq_len: int = 128):
    """The ttnn Llama with `state`'s weights against the CPU engine `cpu` (the same weights): prefill of 40 tokens,
    then a T-row step, PCC >= 0.99 each."""
    ttnn = device.require_ttnn()
    B, prompt_len = 2, 40
    g = torch.Generator().manual_seed(T)
    prompts = torch.randint(0, cfg.vocab_size, (B, prompt_len), generator=g)
    step = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    tt = TtLlama.from_state_dict(cfg, state, device.device(), batch_size=B, max_seq_len=max_seq_len)
    first = ttnn.to_torch(tt.prefill(prompts.tolist())).float().reshape(B, -1)
    tokens = ttnn.from_torch(step.to(torch.int32), dtype=ttnn.uint32, layout=ttnn.ROW_MAJOR_LAYOUT,
                             device=tt.dev)
    pos = ttnn.from_torch(torch.full((1, B), prompt_len, dtype=torch.int32), dtype=ttnn.int32,
                          layout=ttnn.ROW_MAJOR_LAYOUT, device=tt.dev)
    got = ttnn.to_torch(tt.forward(tokens, pos, T)).float().reshape(B, T, -1)
    cpu.allocate_cache(B, max_seq_len)
    want_first = cpu.prefill(prompts, torch.full((B,), prompt_len))
    want = cpu.forward(step, torch.full((B,), prompt_len))
    assert pcc(first, want_first) >= 0.99
    assert pcc(got, want) >= 0.99


@pytest.mark.parametrize("T", [1, K + 1])
def test_ttnn_llama_logits_match_the_cpu_engine(tiny, T):
    model = tiny.target.model  # CpuLlama wraps the torch Llama
    check_logits_against_the_cpu_engine(tiny.target, TtLlamaConfig.from_llama_config("tiny", model.cfg),
                                        model.state_dict(), T)


@pytest.mark.skipif(not os.environ.get(HF_LLAMA), reason=f"{HF_LLAMA} names no local Llama 3.x HF directory")
@pytest.mark.parametrize("T", [1, K + 1])
def test_llama3_from_hf_matches_the_cpu_engine_with_its_rope_scaling(T):
    """A user-supplied Llama-3.2-1B (or any Llama 3.x) directory: its llama3 rope_scaling read from config.json
    (models/rope.py) by both the card's decoder and the CPU engine."""
    cfg, state = load_hf_llama(os.environ[HF_LLAMA], torch.float32)
    assert cfg.rope_scaling is not None, f"{os.environ[HF_LLAMA]}: config.json has no llama3 rope_scaling"
    host = Llama(cfg.llama_config(max_seq_len=128)).eval()
    host.load_state_dict(state, strict=True)
    cpu = CpuLlama(host)  # rounds the weights to bf16 in place: the card gets the same bf16 weights
    check_logits_against_the_cpu_engine(cpu, cfg, host.state_dict(), T)


@pytest.mark.parametrize("B", [1, 4])
def test_traced_step_equals_the_untraced_step_and_the_target_alone(tiny, B):
    prompts = [list(b"def main():\n    return ")[: 10 + 3 * b] for b in range(B)]
    alone = SpeculativeDecoder(tiny, "model", 0, engine="ttnn").generate_ids(prompts, 48).tokens
    untraced = SpeculativeDecoder(tiny, "model", K, engine="ttnn", trace=False).generate_ids(prompts, 48).tokens
    traced_dec = SpeculativeDecoder(tiny, "model", K, engine="ttnn", trace=True)
    traced = traced_dec.generate_ids(prompts, 48).tokens
    assert list(traced_dec._device_steps[B].traces) == [(B, K)]  # captured once, replayed from step 2 on
    again = traced_dec.generate_ids(prompts, 48).tokens  # the same trace, state rewritten in place by start()
    assert traced == untraced == alone == again


@pytest.mark.parametrize("B", [1, 4])
def test_greedy_speculative_on_the_card_equals_the_target_alone(tiny, B):
    prompts = [list(b"def main():\n    return ")[: 10 + 3 * b] for b in range(B)]
    alone = SpeculativeDecoder(tiny, "model", 0, engine="ttnn").generate_ids(prompts, 48).tokens
    spec = SpeculativeDecoder(tiny, "model", K, engine="ttnn").generate_ids(prompts, 48).tokens
    assert spec == alone
