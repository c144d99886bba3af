"""Decoders: the protocol, a lean Llama in torch, loaders (safetensors, GGUF) and tokenizers."""
from tt_specdec.models.decoder import Decoder
from tt_specdec.models.llama import Llama, LlamaConfig
from tt_specdec.models.loaders import load_model, load_tiny_pair
from tt_specdec.models.tokenizer import ByteTokenizer
from tt_specdec.models.gguf import load_gguf_llama, load_smollm2  # gguf itself is imported on use
from tt_specdec.models.hf_tokenizer import HFTokenizer, load_smollm2_tokenizer  # tokenizers likewise

__all__ = ["ByteTokenizer", "Decoder", "HFTokenizer", "Llama", "LlamaConfig", "load_gguf_llama", "load_model",
           "load_smollm2", "load_smollm2_tokenizer", "load_tiny_pair"]
