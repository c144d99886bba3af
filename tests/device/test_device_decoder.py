"""The ttnn decoders and the whole speculative step on a Tenstorrent card (`pytest --device`; skipped with the
reason when no card or no ttnn). Never run on a card so far: what runs without one is the same step on real
ttnn on a mock n150 (tests/conformance/test_device_step.py), which checks every op's validation, the allocator
and the program cache, not values.

- the ttnn Llama's logits (models/ttnn_llama.py, weights copied from the torch model) against the CPU engine's
  on the same tokens, prefill and a T-row step: PCC >= 0.99;
- greedy speculative output with the whole step on the card equals the ttnn target decoding alone, token for token.
"""
import pytest
import torch

from tt_specdec.api import SpeculativeDecoder, load_pair
from tt_specdec.models.ttnn_llama import TtLlama, TtLlamaConfig
from tt_specdec.runtime import device

pytestmark = pytest.mark.device
K = 4


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def tiny():
    return load_pair("tiny")


@pytest.mark.parametrize("T", [1, K + 1])
def test_ttnn_llama_logits_match_the_cpu_engine(tiny, T):
    ttnn = device.require_ttnn()
    model = tiny.target.model  # CpuLlama wraps the torch Llama
    B, prompt_len = 2, 40
    g = torch.Generator().manual_seed(T)
    prompts = torch.randint(0, model.cfg.vocab_size, (B, prompt_len), generator=g)
    step = torch.randint(0, model.cfg.vocab_size, (B, T), generator=g)
    tt = TtLlama.from_state_dict(TtLlamaConfig.from_llama_config("tiny", model.cfg), model.state_dict(),
                                 device.device(), batch_size=B, max_seq_len=128)
    first = ttnn.to_torch(tt.prefill(prompts.tolist())).float().reshape(B, -1)
    tokens = ttnn.from_torch(step.to(torch.int32), dtype=ttnn.uint32, layout=ttnn.ROW_MAJOR_LAYOUT,
                             device=tt.dev)
    pos = ttnn.from_torch(torch.full((1, B), prompt_len, dtype=torch.int32), dtype=ttnn.int32,
                          layout=ttnn.ROW_MAJOR_LAYOUT, device=tt.dev)
    got = ttnn.to_torch(tt.forward(tokens, pos, T)).float().reshape(B, T, -1)
    cpu = tiny.target
    cpu.allocate_cache(B, 128)
    want_first = cpu.prefill(prompts, torch.full((B,), prompt_len))
    want = cpu.forward(step, torch.full((B,), prompt_len))
    assert pcc(first, want_first) >= 0.99
    assert pcc(got, want) >= 0.99


@pytest.mark.parametrize("B", [1, 4])
def test_greedy_speculative_on_the_card_equals_the_target_alone(tiny, B):
    prompts = [list(b"def main():\n    return ")[: 10 + 3 * b] for b in range(B)]
    alone = SpeculativeDecoder(tiny, "model", 0, engine="ttnn").generate_ids(prompts, 48).tokens
    spec = SpeculativeDecoder(tiny, "model", K, engine="ttnn").generate_ids(prompts, 48).tokens
    assert spec == alone
