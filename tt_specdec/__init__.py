"""tt_specdec: lossless speculative decoding for Tenstorrent hardware, with a CPU path.

    >>> import tt_specdec
    >>> tt_specdec.generate("Write a haiku about the sea.", max_new_tokens=32)   # doctest: +SKIP

`SpeculativeDecoder` holds a target, a drafter and a tokenizer; `load_pair()` gives the
shipped models (SmolLM2-135M-Instruct by default, "tiny" for tests); drafters are made by
name from `DRAFTERS` (`register_drafter` adds one); `tt_specdec.ops` has the three fused
ops; `tt_specdec.speculative` the loop.
"""
from tt_specdec.api import (DEFAULT_DRAFTER, DEFAULT_PAIR, DRAFTERS, PAIRS, Pair, SpeculativeDecoder, chat_prompt,
                            generate, load_pair, register_drafter)
from tt_specdec.sampling import Sampling

__version__ = "0.1.0"

__all__ = ["DEFAULT_DRAFTER", "DEFAULT_PAIR", "DRAFTERS", "PAIRS", "Pair", "Sampling", "SpeculativeDecoder", "chat_prompt",
           "generate", "load_pair", "register_drafter", "__version__"]
