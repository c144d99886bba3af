"""Drafters propose k tokens per step: a draft model, an EAGLE head on the target's features, or prompt lookup."""
from tt_specdec.drafters.base import Drafter, Sampling
from tt_specdec.drafters.eagle import EagleDrafter, EagleHead, load_eagle_drafter
from tt_specdec.drafters.model import ModelDrafter
from tt_specdec.drafters.ngram import NgramDrafter

__all__ = ["Drafter", "EagleDrafter", "EagleHead", "ModelDrafter", "NgramDrafter", "Sampling", "load_eagle_drafter"]
