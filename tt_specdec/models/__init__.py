"""Decoders: the protocol, a lean Llama in torch, loaders and tokenizers."""
from tt_specdec.models.decoder import Decoder
from tt_specdec.models.llama import Llama, LlamaConfig
from tt_specdec.models.loaders import load_model, load_tiny_pair
from tt_specdec.models.tokenizer import ByteTokenizer

__all__ = ["ByteTokenizer", "Decoder", "Llama", "LlamaConfig", "load_model", "load_tiny_pair"]
