"""The orchestrator: the speculative loop, plain decoding for comparison, stats."""
from tt_specdec.speculative.loop import Generation, generate_plain, speculative_generate
from tt_specdec.speculative.stats import Stats

__all__ = ["Generation", "Stats", "generate_plain", "speculative_generate"]
