"""Drafters propose k tokens per step: a draft model, or prompt lookup over the context."""
from tt_specdec.drafters.base import Drafter, Sampling
from tt_specdec.drafters.model import ModelDrafter
from tt_specdec.drafters.ngram import NgramDrafter

__all__ = ["Drafter", "ModelDrafter", "NgramDrafter", "Sampling"]
