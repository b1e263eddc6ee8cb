"""Elementwise sums of same-shape arrays: the engine's gradient accumulation.

``add(a, b)`` returns a + b in a new array (from the array cache, see memory.py).  NumPy's
``np.add`` runs on one thread; the gradients the engine sums (a leaf's ``.grad`` across
backward calls, a tensor used twice) can be tens of MB, where the Numba version's two threads
halve the time.  Layout: any shape, C-contiguous, one float dtype; other cases use the reference.

Versions: ``add_reference`` (np.add), ``add_numba`` (prange over the flat arrays), ``add_xp``
(the array module's own add: CuPy's on the GPU).  No backward: the engine's bookkeeping.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import memory, pick

PARALLEL_MIN = 1 << 16   # elements: below this, one thread is faster than waking the others


# ---------------------------------------------------------------------- reference
def add_reference(a, b):
    return np.add(a, b, out=memory.empty(a.shape, np.result_type(a, b)))


# -------------------------------------------------------------------------- numba
@njit(parallel=True, cache=True)
def _add_nb(a, b, out):
    for i in prange(a.size):
        out[i] = a[i] + b[i]


def add_numba(a, b):
    if (a.shape != b.shape or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64)
            or a.size < PARALLEL_MIN or not (a.flags.c_contiguous and b.flags.c_contiguous)):
        return add_reference(a, b)
    out = memory.empty(a.shape, a.dtype)
    _add_nb(a.reshape(-1), b.reshape(-1), out.reshape(-1))
    return out


# ----------------------------------------------------------------------------- xp
def add_xp(a, b):
    xp = backend.get_array_module(a)
    return xp.add(a, b)


# ----------------------------------------------------------------------- dispatch
def add(a, b):
    """a + b (same shape) in a new array."""
    return pick(add_reference, add_numba, add_xp, a)(a, b)
