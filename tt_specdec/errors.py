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


INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
SEED_LIMIT = 2 ** 63  # seeds travel as int64


def is_int(x) -> bool:
    """A Python (or numpy) integer, not a bool (True is an int to Python, never a count or an id)."""
    import numbers

    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_int_dtype(name: str, t: torch.Tensor, what: str = "") -> None:
    """Integer tensors (positions, counts, ids, page tables): a float one is refused, never truncated."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: got {type(t).__name__}, expected an integer torch.Tensor{' ' + what if what else ''}")
    if t.dtype not in INT_DTYPES:
        raise TypeError(f"{name}: got dtype {t.dtype}, expected an integer dtype (int64 or int32){' ' + what if what else ''}")


def check_float_dtype(name: str, t: torch.Tensor, what: str = "") -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: got {type(t).__name__}, expected a floating torch.Tensor{' ' + what if what else ''}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: got dtype {t.dtype}, expected a floating dtype (float32 or bfloat16)"
                        f"{' ' + what if what else ''}")


def check_seed(name: str, seed, batch: int | None = None) -> None:
    """An int in 0..2**63-1, or (batch given) per-row int seeds [batch]."""
    if isinstance(seed, torch.Tensor) and batch is not None:
        check_int_dtype(name, seed, "(per-row seeds)")
        check_shape(name, seed, (batch,), "(per-row seeds, one per row)")
        return
    if not is_int(seed):
        expected = "an int" + ("" if batch is None else f" or per-row int seeds [{batch}]")
        raise TypeError(f"{name}: got {seed!r} ({type(seed).__name__}), expected {expected}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name}: got {seed}, expected an int in 0..2**63-1")
