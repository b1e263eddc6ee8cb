"""Hand-written kernels on raw arrays, one file per family.

Each family keeps three versions of one computation: ``*_reference`` (plain
NumPy, the ground truth), ``*_numba`` (the CPU default) and ``*_cupy`` (the GPU
default), and a dispatcher that picks by the arrays' device.  Kernels know
nothing of Tensors or autograd.

``implementation("reference")`` makes the dispatchers run the reference
versions instead (the benchmarks use it to time every version through the
same functional API)::

    with minidl.kernels.implementation("reference"):
        y = F.local_response_norm(x, 5)
"""
from __future__ import annotations

import contextlib

from .. import backend

IMPLEMENTATIONS = ("fast", "reference")
_forced = "fast"


@contextlib.contextmanager
def implementation(name: str):
    """Within the block, dispatchers run ``name``: "fast" (Numba/CuPy, the default) or "reference"."""
    global _forced
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"implementation: expected one of {IMPLEMENTATIONS}, got {name!r}")
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def pick(reference, numba, cupy, array):
    """The version of a kernel to run for ``array``: the reference when forced, else by device."""
    if _forced == "reference" and not backend.is_gpu_array(array):
        return reference
    return cupy if backend.is_gpu_array(array) else numba
