"""Byte-level tokenizer of the tiny test pair: token id = byte value."""
from __future__ import annotations


class ByteTokenizer:
    vocab_size = 256
    eos_token_id = 0  # NUL never occurs in the training text: generation runs to max tokens

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")
