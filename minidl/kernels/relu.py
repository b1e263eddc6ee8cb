"""ReLU, forward and backward, elementwise on any shape.

    forward:   y = max(a, 0),   positive = a > 0        (positive: a bool mask, kept for the backward)
    backward:  dL/da = g * positive

``max(a, 0)`` rather than ``a * (a > 0)``: relu(-inf) is 0, where -inf * 0 would be NaN; a NaN
input stays NaN (np.maximum propagates it) and its mask entry is False.  The backward multiplies
by the mask (as a 0/1 number), so an infinite or NaN upstream gradient at a masked position gives
NaN, as PyTorch's ``g * (a > 0)``.

Versions: ``_reference`` (two NumPy passes forward, one backward, single-threaded),
``_numba`` (one fused pass over the flat arrays, prange over blocks: two threads, and the mask and
the output written in the same loop), ``_xp`` (the array module's own ufuncs: CuPy's on the GPU),
and the dispatchers ``relu_forward`` / ``relu_backward``.  Outputs come from the array cache
(memory.py).  Layout: any shape; the Numba version takes C-contiguous float32/float64 arrays of at
least PARALLEL_MIN elements and hands other cases to the reference.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import memory, pick
from .elementwise import PARALLEL_MIN   # the same threshold as the gradient add's

BLOCK = 1 << 14          # elements per Numba work item


# ---------------------------------------------------------------------- reference
def relu_forward_reference(a):
    positive = np.greater(a, 0, out=memory.empty(a.shape, bool))
    return np.maximum(a, 0, out=memory.empty(a.shape, a.dtype)), positive


def relu_backward_reference(g, positive):
    return np.multiply(g, positive, out=memory.empty(g.shape, g.dtype))


# -------------------------------------------------------------------------- numba
# Each work item is one block of the flat arrays, read and written through 1-D views from index
# 0, so LLVM vectorises the loops.
@njit(parallel=True, cache=True)
def _relu_forward_nb(a, y, positive):
    n = a.shape[0]
    zero = a.dtype.type(0)
    for b in prange((n + BLOCK - 1) // BLOCK):
        lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
        src, dst, mask = a[lo:hi], y[lo:hi], positive[lo:hi]
        for k in range(hi - lo):
            v = src[k]
            mask[k] = v > zero
            dst[k] = v if (v > zero or v != v) else zero    # np.maximum(v, 0): NaN stays NaN


@njit(parallel=True, cache=True)
def _relu_backward_nb(g, positive, out):
    n = g.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
        src, mask, dst = g[lo:hi], positive[lo:hi], out[lo:hi]
        for k in range(hi - lo):
            dst[k] = src[k] * mask[k]                       # inf * 0 = NaN, as np.multiply


def _numba_ok(a):
    return a.dtype in (np.float32, np.float64) and a.size >= PARALLEL_MIN and a.flags.c_contiguous


def relu_forward_numba(a):
    if not _numba_ok(a):
        return relu_forward_reference(a)
    y, positive = memory.empty(a.shape, a.dtype), memory.empty(a.shape, bool)
    _relu_forward_nb(a.reshape(-1), y.reshape(-1), positive.reshape(-1))
    return y, positive


def relu_backward_numba(g, positive):
    if not (_numba_ok(g) and positive.shape == g.shape and positive.flags.c_contiguous):
        return relu_backward_reference(g, positive)
    out = memory.empty(g.shape, g.dtype)
    _relu_backward_nb(g.reshape(-1), positive.reshape(-1), out.reshape(-1))
    return out


# ----------------------------------------------------------------------------- xp
def relu_forward_xp(a):
    xp = backend.get_array_module(a)
    positive = xp.greater(a, 0, out=memory.empty_on(xp, a.shape, bool))
    return xp.maximum(a, 0, out=memory.empty_on(xp, a.shape, a.dtype)), positive


def relu_backward_xp(g, positive):
    xp = backend.get_array_module(g)
    return xp.multiply(g, positive, out=memory.empty_on(xp, g.shape, g.dtype))


# ----------------------------------------------------------------------- dispatch
def relu_forward(a):
    """(max(a, 0), the mask a > 0)."""
    return pick(relu_forward_reference, relu_forward_numba, relu_forward_xp, a)(a)


def relu_backward(g, positive):
    """g * positive (the mask from relu_forward)."""
    return pick(relu_backward_reference, relu_backward_numba, relu_backward_xp, g)(g, positive)
