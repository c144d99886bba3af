"""Drafters propose k tokens per step: a draft model, an EAGLE or EAGLE-3 head on the target's features, prompt lookup, or lookup first and one of those elsewhere; or a token tree of k drafts (tree.py: from a draft model; eagle_tree.py: from an EAGLE head)."""
from tt_specdec.drafters.base import Drafter
from tt_specdec.drafters.eagle import EagleDrafter, EagleHead, load_eagle_drafter
from tt_specdec.drafters.eagle3 import Eagle3Drafter, Eagle3Head, load_eagle3_drafter
from tt_specdec.drafters.eagle_tree import EagleTreeDrafter
from tt_specdec.drafters.lookup_first import LookupFirstDrafter
from tt_specdec.drafters.model import ModelDrafter
from tt_specdec.drafters.ngram import NgramDrafter
from tt_specdec.drafters.tree import Tree, TreeDrafter

__all__ = ["Drafter", "Eagle3Drafter", "Eagle3Head", "EagleDrafter", "EagleHead", "EagleTreeDrafter",
           "LookupFirstDrafter", "ModelDrafter",
           "NgramDrafter", "Tree", "TreeDrafter", "load_eagle3_drafter", "load_eagle_drafter"]
