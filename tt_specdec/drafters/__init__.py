"""Drafters propose k tokens per step: a draft model, an EAGLE head on the target's features, prompt lookup, or lookup first and one of those elsewhere; or a token tree of k drafts (tree.py)."""
from tt_specdec.drafters.base import Drafter
from tt_specdec.drafters.eagle import EagleDrafter, EagleHead, load_eagle_drafter
from tt_specdec.drafters.lookup_first import LookupFirstDrafter
from tt_specdec.drafters.model import ModelDrafter
from tt_specdec.drafters.ngram import NgramDrafter
from tt_specdec.drafters.tree import Tree, TreeDrafter

__all__ = ["Drafter", "EagleDrafter", "EagleHead", "LookupFirstDrafter", "ModelDrafter", "NgramDrafter", "Tree", "TreeDrafter",
           "load_eagle_drafter"]
