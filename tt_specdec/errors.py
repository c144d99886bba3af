"""Input checks shared by the ops, decoders and the loop.

Every message names the argument, what it got and what was expected. Checks run
before any state is touched, so a rejected call leaves caches and positions as
they were.
"""
from __future__ import annotations

import importlib
import types

import torch


def require(module: str, purpose: str, extra: str) -> types.ModuleType:
    """Import an optional dependency, or say what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{purpose} needs the `{module}` package: pip install {module} "
                          f"(or pip install 'tt_specdec[{extra}]')") from e


def check_shape(name: str, t: torch.Tensor, expected: tuple, what: str = "") -> None:
    """`expected` holds ints or None (any size) per dim."""
    ok = t.dim() == len(expected) and all(e is None or s == e for s, e in zip(t.shape, expected))
    if not ok:
        dims = ", ".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{name}: got shape {list(t.shape)}, expected [{dims}]{' ' + what if what else ''}")


def value_range(t: torch.Tensor, empty: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """(min, max) of an integer tensor (`empty` when it has no elements): through a list when small (the
    loop checks a few ids every step, and each torch reduction costs more than the list)."""
    if not t.numel():
        return empty
    if t.numel() <= 64:
        values = t.flatten().tolist()
        return min(values), max(values)
    lo, hi = torch.aminmax(t)
    return int(lo), int(hi)


def check_tokens(name: str, tokens: torch.Tensor, vocab_size: int) -> None:
    if tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name}: got dtype {tokens.dtype}, expected int64 or int32 token ids")
    lo, hi = value_range(tokens)
    if lo < 0 or hi >= vocab_size:
        raise ValueError(
            f"{name}: got token ids {lo}..{hi}, "
            f"expected ids in 0..{vocab_size - 1} (the vocabulary)")


def check_finite(name: str, t: torch.Tensor) -> None:
    if bool(torch.isfinite(t.sum())):  # a NaN or inf anywhere makes the sum non-finite: one cheap pass
        return  # (a finite sum can also overflow: then the element-wise test below decides)
    if not bool(torch.isfinite(t).all()):
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        raise ValueError(f"{name}: got a non-finite value (NaN or inf) at index {bad}, expected finite values")
