"""How each op picks where it runs, in one shape for all three:

    backend = dispatch.backend_for(backend, x)  # ttnn tensors -> "device", whatever was asked
    <validate, unless x is a ttnn tensor>        # once, at the op's boundary
    if backend == "torch": return torch_impl.<op>(...)
    return program.run(dispatch.executor(backend), ...)[0]  # its kernels: emulator or card

The executors (tt_specdec.runtime.emu, tt_specdec.runtime.device) know no op: each op's
program.py builds its description and converts its inputs and outputs.
"""
from __future__ import annotations

import importlib
import types

from tt_specdec.runtime.device import is_ttnn_tensor

BACKENDS = ("torch", "emu", "device")

__all__ = ["BACKENDS", "backend_for", "executor", "is_ttnn_tensor"]


def backend_for(backend: str, x) -> str:
    """"device" when `x` is a ttnn tensor (the data is on the card), else `backend`, checked."""
    if is_ttnn_tensor(x):
        return "device"
    if backend not in BACKENDS:
        raise ValueError(f"backend: got {backend!r}, expected 'torch', 'emu' or 'device'")
    return backend


def executor(backend: str) -> types.ModuleType:
    """The executor that runs the kernels for `backend` ("emu" or "device"): a module with
    aligned() (build descriptions inside), run(program, tensors) and to_torch(output)."""
    return importlib.import_module(f"tt_specdec.runtime.{backend}")


def host_converted(x, convert):
    """`convert(x)` for a torch tensor; a ttnn tensor as it is (on the card already: the card
    executor fits it to the description's shape)."""
    return x if is_ttnn_tensor(x) else convert(x)
