"""The Hugging Face safetensors loader (models/hf_safetensors.py) on small synthetic checkpoints written by
transformers itself (single file and sharded); RoPE and its llama3 scaling: test_rope.py. No hub: the models
are built from configs."""
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tt_specdec.models.hf_safetensors import load_hf_llama  # noqa: E402
from tt_specdec.models.llama import Llama  # noqa: E402
from tt_specdec.models.ttnn_llama import TtLlamaConfig  # noqa: E402

TINY = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=128)


def hf_model(tmp_path, tie: bool, shard: str | None = None):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**TINY, tie_word_embeddings=tie)
    model = transformers.LlamaForCausalLM(cfg).eval()
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(tmp_path, safe_serialization=True, **kw)
    return model


@pytest.mark.parametrize("tie, shard", [(True, None), (False, "100KB")])
def test_loader_gives_our_llama_the_same_logits_as_transformers(tmp_path, tie, shard):
    hf = hf_model(tmp_path, tie, shard)
    if shard:
        assert (tmp_path / "model.safetensors.index.json").is_file()
    cfg, state = load_hf_llama(tmp_path, torch.float32)
    assert (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.tie_embeddings) == (64, 2, 4, 2, tie)
    ours = Llama(cfg.llama_config(max_seq_len=128))
    ours.load_state_dict(state, strict=True)
    tokens = torch.randint(0, 300, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(tokens).logits
        got = ours.forward_train(tokens)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=2e-4)


def test_loader_refuses_a_missing_tensor_naming_it(tmp_path):
    hf_model(tmp_path, True)
    from safetensors.torch import load_file, save_file
    f = tmp_path / "model.safetensors"
    state = load_file(str(f))
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, str(f), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="layers.1.w_up.weight"):
        load_hf_llama(tmp_path)


def test_config_from_a_hf_config_json():
    hf = json.loads(json.dumps(dict(TINY, tie_word_embeddings=False,
                                    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                      high_freq_factor=4.0, original_max_position_embeddings=8192))))
    cfg = TtLlamaConfig.from_hf("x", hf)
    assert cfg.rope_scaling == (8.0, 1.0, 4.0, 8192) and not cfg.tie_embeddings and cfg.head_dim == 16
