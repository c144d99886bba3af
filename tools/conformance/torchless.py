"""Loads tt_specdec's program description builders without torch.

The builders (tt_specdec/runtime/program.py, tt_specdec/ops/<op>/program.py) only use torch for dtype
names and element sizes while building a description; the conformance environment has
ttnn and numpy but no torch (no CPU torch wheel exists for Python 3.12 here). This module
puts a minimal stand-in named `torch` in sys.modules that provides exactly that (dtype
objects, `empty((), dtype=...).element_size()`, `Tensor`/`dtype`/`Generator` names for
annotations) and raises a clear error for anything else, so a builder that starts
computing with torch while building a description fails the check loudly instead of
silently doing something different. The `tt_specdec` and `tt_specdec.ops` packages are
registered without running their __init__ (which load models and all the ops); each op's own
package (validation and dispatch, tt_specdec/ops/<op>/__init__.py) runs as it is.
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

ALLOWED = "dtypes, empty((), dtype=d).element_size(), and type names for annotations"


class TorchlessError(RuntimeError):
    pass


class _DType:
    def __init__(self, name: str, size: int):
        self.name, self.itemsize = name, size

    def __repr__(self) -> str:
        return f"torch.{self.name}"

    @property
    def is_floating_point(self) -> bool:
        return self.name.startswith(("float", "bfloat"))


class _Scalar:
    def __init__(self, dtype: _DType):
        self.dtype = dtype

    def element_size(self) -> int:
        return self.dtype.itemsize


class _TorchStandIn(types.ModuleType):
    __torchless__ = True

    def __init__(self):
        super().__init__("torch")
        for name, size in (("float32", 4), ("float", 4), ("float64", 8), ("double", 8), ("float16", 2),
                           ("half", 2), ("bfloat16", 2), ("int64", 8), ("long", 8), ("int32", 4), ("int", 4),
                           ("int16", 2), ("int8", 1), ("uint8", 1), ("uint16", 2), ("uint32", 4), ("uint64", 8),
                           ("bool", 1)):
            setattr(self, name, _DType(name, size))
        # aliases are the same objects, as in torch
        self.float, self.double, self.half = self.float32, self.float64, self.float16
        self.long, self.int = self.int64, self.int32
        self.dtype = _DType
        for name in ("Tensor", "Generator", "Size", "device"):
            setattr(self, name, type(name, (), {"__module__": "torch"}))
        self.nn = types.ModuleType("torch.nn")
        self.nn.functional = types.ModuleType("torch.nn.functional")
        self.nn.Module = type("Module", (), {"__module__": "torch.nn"})

    def empty(self, shape=(), *, dtype=None, **kw):
        if tuple(shape) != () or dtype is None or kw:
            raise TorchlessError(f"torch.empty({shape!r}, dtype={dtype!r}, {kw}) while building a description: "
                                 f"the conformance environment has no torch; only {ALLOWED} are provided")
        return _Scalar(dtype)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise TorchlessError(f"torch.{name} used while building a program description: the conformance "
                             f"environment has no torch (tools/conformance/torchless.py provides only {ALLOWED}); "
                             "keep description builders free of torch computations")


def install(repo: Path) -> None:
    """Make `import tt_specdec.runtime.program` and `import tt_specdec.ops.<op>.program` work without torch."""
    try:
        import torch  # noqa: F401
        if not getattr(sys.modules["torch"], "__torchless__", False):
            raise TorchlessError("real torch is importable in the conformance environment; it must run without "
                                 "torch (tools/conformance/setup.sh makes a venv with ttnn and numpy only)")
    except ImportError:
        sys.modules["torch"] = _TorchStandIn()
    # tt_specdec.models and .speculative too: their __init__ import the torch Llama and the host loop; the device
    # decoder (models/ttnn_llama.py) and the device step (speculative/device_step.py) need neither
    for pkg, path in (("tt_specdec", repo / "tt_specdec"), ("tt_specdec.ops", repo / "tt_specdec" / "ops"),
                      ("tt_specdec.models", repo / "tt_specdec" / "models"),
                      ("tt_specdec.speculative", repo / "tt_specdec" / "speculative")):
        if pkg not in sys.modules:
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(path)]
            mod.__file__ = str(path / "__init__.py")
            sys.modules[pkg] = mod
            if "." in pkg:
                setattr(sys.modules[pkg.rsplit(".", 1)[0]], pkg.rsplit(".", 1)[1], mod)


def builder_modules(repo: Path) -> dict[str, types.ModuleType]:
    """tt_specdec.ops.<op>.program for every tt_specdec/ops/<op>/program.py, by op stem."""
    out = {}
    for p in sorted((repo / "tt_specdec" / "ops").glob("*/program.py")):
        out[p.parent.name] = importlib.import_module(f"tt_specdec.ops.{p.parent.name}.program")
    return out
