"""One RoPE table function (models/rope.py) for the torch Llama, the CPU engine and the ttnn Llama, against
transformers' own llama3 implementation: the tables, and a tiny random Llama with llama3 scaling whose logits
agree between transformers, our torch Llama and CpuLlama at positions past original_max_position_embeddings.
No hub: the models are built from configs here."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from tt_specdec.models.cpu_llama import CpuLlama, matrix_paths  # noqa: E402
from tt_specdec.models.hf_safetensors import load_hf_llama  # noqa: E402
from tt_specdec.models.llama import Llama, LlamaConfig  # noqa: E402
from tt_specdec.models.rope import Llama3Scaling, inv_frequencies, rope_from_hf, rope_tables  # noqa: E402
from tt_specdec.models.ttnn_llama import LLAMA_3_1_8B, LLAMA_3_2_1B, TtLlamaConfig  # noqa: E402
from tests.test_faults import write_tiny_gguf  # noqa: E402

# head_dim 16, theta 1e4: wavelengths 6.3, 19.9, 62.8, ... so with original 32, low 1, high 4 (boundaries at
# wavelength 8 and 32) the frequencies fall in all three llama3 regions: kept, blended, divided by factor
SCALING = dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
               original_max_position_embeddings=32)
TINY = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=128)
TOL = 2e-4  # fp32, another summation order (random init: logits ~1e-1, RoPE unscaled moves them ~5e-3)
L = 120  # tokens: well past original_max_position_embeddings (32) and its factor boundary (32 * 4 = 128 > L)


def hf_rope(cfg: "transformers.LlamaConfig", positions: torch.Tensor, head_dim: int):
    rope = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(cfg)
    cos, sin = rope(torch.zeros(1, 1, head_dim), positions.view(1, -1))
    return cos[0].numpy(), sin[0].numpy()


def test_tiny_scaling_covers_the_three_llama3_regions():
    inv = inv_frequencies(16, 1e4)
    wavelen = 2 * math.pi / inv
    original = SCALING["original_max_position_embeddings"]
    assert (wavelen < original / 4).any() and (wavelen > original).any()
    assert ((wavelen >= original / 4) & (wavelen <= original)).any()


def test_inv_frequencies_match_transformers_llama3():
    cfg = transformers.LlamaConfig(**TINY, rope_scaling=SCALING)
    want, _ = transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    got = inv_frequencies(16, 1e4, rope_from_hf(cfg.to_dict())[1])
    np.testing.assert_allclose(got, want.double().numpy(), rtol=1e-6)  # transformers computes in float32
    assert not np.allclose(got, inv_frequencies(16, 1e4), rtol=1e-3)  # the scaling changed something


@pytest.mark.parametrize("ours", [LLAMA_3_2_1B, LLAMA_3_1_8B], ids=lambda c: c.name)
def test_tables_match_transformers_for_the_llama3_models(ours):
    factor, low, high, original = ours.rope_scaling
    hf = transformers.LlamaConfig(hidden_size=ours.dim, num_attention_heads=ours.n_heads, rope_theta=ours.rope_theta,
                                  max_position_embeddings=131072,
                                  rope_scaling=dict(rope_type="llama3", factor=factor, low_freq_factor=low,
                                                    high_freq_factor=high, original_max_position_embeddings=original))
    positions = torch.tensor([0, 1, 5, 1000, 4095, 8191, 8192, 9000])  # around original_max_position_embeddings
    cos, sin = hf_rope(hf, positions, ours.head_dim)
    our_cos, our_sin = rope_tables(ours.head_dim, 9001, ours.rope_theta, ours.rope_scaling)
    # transformers rounds each angle to float32 first: ~pos * 2^-24 rad apart at most
    np.testing.assert_allclose(our_cos[positions.numpy()], cos, atol=1e-3)
    np.testing.assert_allclose(our_sin[positions.numpy()], sin, atol=1e-3)
    plain_cos, _ = rope_tables(ours.head_dim, 9001, ours.rope_theta)
    assert np.abs(plain_cos[positions.numpy()] - cos).max() > 0.1  # unscaled tables would fail this test


def test_tiny_tables_match_transformers_at_every_position():
    cfg = transformers.LlamaConfig(**TINY, rope_scaling=SCALING)
    cos, sin = hf_rope(cfg, torch.arange(128), 16)
    our_cos, our_sin = rope_tables(16, 128, 1e4, rope_from_hf(cfg.to_dict())[1])
    np.testing.assert_allclose(our_cos, cos, atol=2e-5)
    np.testing.assert_allclose(our_sin, sin, atol=2e-5)


@pytest.fixture(scope="module")
def tiny_llama3(tmp_path_factory):
    """A random transformers Llama with llama3 scaling, weights rounded to bf16 (CpuLlama computes with those),
    saved as a local HF directory; (transformers model, that directory)."""
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY, rope_scaling=SCALING,
                                                                tie_word_embeddings=False)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(p.bfloat16().float())
    path = tmp_path_factory.mktemp("tiny_llama3")
    hf.save_pretrained(path, safe_serialization=True)
    return hf, path


def our_llama(path, scaled: bool = True) -> Llama:
    cfg, state = load_hf_llama(path, torch.float32)
    llama_cfg = cfg.llama_config(max_seq_len=128)
    if not scaled:
        llama_cfg = dataclasses.replace(llama_cfg, rope_scaling=None)
    model = Llama(llama_cfg).eval()
    model.load_state_dict(state, strict=True)
    return model


def cached_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """logits [B, L, V] from the cached forward: a 100-token prefill, then a 20-row step at position 100."""
    B, n = tokens.shape
    model.allocate_cache(B, 128)
    head = model.forward(tokens[:, :100], torch.zeros(B, dtype=torch.long))
    return torch.cat([head, model.forward(tokens[:, 100:n], torch.full((B,), 100))], dim=1)


def test_loader_reads_llama3_scaling_from_config_json(tiny_llama3):
    _, path = tiny_llama3
    cfg, _ = load_hf_llama(path)
    assert cfg.rope_scaling == Llama3Scaling(4.0, 1.0, 4.0, 32)
    assert cfg.llama_config(128).rope_scaling == cfg.rope_scaling


def test_logits_equal_transformers_torch_llama_and_cpu_engine_past_the_original_context(tiny_llama3):
    hf, path = tiny_llama3
    tokens = torch.randint(0, 300, (2, L), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(tokens).logits
    torch_llama = our_llama(path)
    got = torch_llama.forward_train(tokens)
    torch.testing.assert_close(got, want, atol=TOL, rtol=TOL)
    torch.testing.assert_close(cached_logits(torch_llama, tokens), want, atol=TOL, rtol=TOL)
    # fp32 activations (avx2 / portable: the bf16-product paths are another target, test_cpu_llama.py)
    path_name = next(p for p in ("avx2", "portable") if p in matrix_paths())
    cpu = CpuLlama(our_llama(path), path_name)
    torch.testing.assert_close(cached_logits(cpu, tokens), want, atol=TOL, rtol=TOL)
    unscaled = our_llama(path, scaled=False).forward_train(tokens)
    assert (unscaled - want).abs().max() > 10 * TOL  # without the scaling the test fails


def test_rope_from_hf_reads_both_config_forms_and_refuses_other_types():
    v4 = dict(TINY, rope_scaling=dict(SCALING))
    v5 = dict(TINY, rope_parameters=dict(SCALING, rope_theta=5e5))
    assert rope_from_hf(v4) == (1e4, Llama3Scaling(4.0, 1.0, 4.0, 32))
    assert rope_from_hf(v5) == (5e5, Llama3Scaling(4.0, 1.0, 4.0, 32))
    no_original = {k: v for k, v in SCALING.items() if k != "original_max_position_embeddings"}
    assert rope_from_hf(dict(TINY, rope_scaling=no_original))[1].original_max_position_embeddings == 128
    assert rope_from_hf(TINY) == (1e4, None)
    with pytest.raises(ValueError, match="rope_scaling: got rope_type 'yarn'"):
        rope_from_hf(dict(TINY, rope_scaling=dict(rope_type="yarn", factor=4.0)))
    with pytest.raises(ValueError, match="low_freq_factor"):
        rope_from_hf(dict(TINY, rope_scaling=dict(rope_type="llama3", factor=4.0, high_freq_factor=4.0)))
    cfg = TtLlamaConfig.from_hf("x", json.loads(json.dumps(v5)))
    assert cfg.rope_theta == 5e5 and cfg.rope_scaling == (4.0, 1.0, 4.0, 32)


def test_llama_config_json_round_trip_keeps_the_scaling():
    cfg = LlamaConfig(300, 64, 2, 4, 2, 96, 128, 1e4, rope_scaling=(4.0, 1.0, 4.0, 32))
    back = LlamaConfig.from_json(cfg.to_json())
    assert back == cfg and isinstance(back.rope_scaling, Llama3Scaling)
    assert LlamaConfig.from_json(json.dumps({k: v for k, v in json.loads(cfg.to_json()).items()
                                             if k != "rope_scaling"})).rope_scaling is None  # older files


def test_gguf_with_llama3_frequency_factors_is_refused_naming_the_tensor(tmp_path):
    gguf = pytest.importorskip("gguf")
    from tt_specdec.models.gguf import config_from_gguf

    path = write_tiny_gguf(tmp_path / "tiny.gguf", extra={"rope_freqs.weight": np.ones(8, np.float32)})
    with pytest.raises(ValueError, match="rope_freqs.weight"):
        config_from_gguf(gguf.GGUFReader(str(path)))
