"""Dropout masks from a counter-based generator (Philox4x32-10), and dropout forward/backward.

What is computed
----------------
For an input of n elements (any shape, read in C order as a flat vector), element i is kept
or dropped by one 32-bit word of Philox4x32-10 (Salmon et al., "Parallel random numbers: as
easy as 1, 2, 3", SC'11; the generator of Random123, cuRAND and PyTorch's CUDA dropout):

    block b = i // 4, word j = i % 4
    counter = (b mod 2^32, b // 2^32, call mod 2^32, call // 2^32)    # four uint32
    key     = (seed mod 2^32, seed // 2^32)                            # two uint32
    r_i     = philox4x32_10(counter, key)[j]                           # uint32
    keep_i  = r_i >= threshold,   threshold = round(p * 2^32)          # integers only

``(seed, call)`` comes from ``minidl.random.dropout_key()``: the seed of ``md.manual_seed``
and a counter that advances at every dropout call.  The mask is a pure function of
(seed, call, i), computed with integer arithmetic only, so NumPy, Numba and CuPy give
bit-identical masks for the same key, whatever the number of threads.

Forward:  y_i = x_i * scale if keep_i else 0      (scale = 1/(1-p): inverted dropout)
Backward: dx_i = g_i * scale if keep_i else 0

Layout: any shape, read in C order; the mask is a bool array of x's shape.  docs/kernels/dropout.md
derives the backward and shows that inverted dropout and the paper's test-time scaling agree in
expectation.

Versions
--------
- ``philox4x32_10``: one block with Python ints (the specification, checked against the
  Random123 known-answer vectors in the tests).
- ``dropout_mask_reference`` / ``dropout_forward_reference``: a loop over blocks with
  ``philox4x32_10`` (slow, obviously right).
- ``dropout_mask_numba`` / ``dropout_forward_numba``: one parallel pass over blocks that makes
  the mask (and the output) together (the CPU default).
- ``dropout_mask_xp`` / ``dropout_forward_xp``: the rounds on whole uint64 arrays, written
  against an array module ``xp`` (NumPy or CuPy): the GPU version, also run with NumPy in tests.
- ``dropout_forward`` / ``dropout_backward``: dispatchers.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import pick

# Philox4x32 constants (Random123's PHILOX_M4x32_0/1 and PHILOX_W32_0/1)
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10
_MASK32 = 0xFFFFFFFF


def philox4x32_10(counter, key):
    """Philox4x32-10 of one 128-bit counter (4 uint32) under a 64-bit key (2 uint32), Python ints."""
    c0, c1, c2, c3 = (int(c) & _MASK32 for c in counter)
    k0, k1 = (int(k) & _MASK32 for k in key)
    for _ in range(ROUNDS):
        p0, p1 = M0 * c0, M1 * c2                      # 32x32 -> 64-bit products
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> 32) ^ c3 ^ k1, p0 & _MASK32)
        k0, k1 = (k0 + W0) & _MASK32, (k1 + W1) & _MASK32   # the key schedule ("bump")
    return c0, c1, c2, c3


def threshold_of(p: float) -> int:
    """The uint32 cut: a word r drops its element when r < threshold (P = threshold / 2^32 ~ p)."""
    return min(2**32, max(0, int(round(float(p) * 2**32))))


def _key_words(seed: int, call: int):
    seed, call = int(seed) % 2**64, int(call) % 2**64
    return seed & _MASK32, seed >> 32, call & _MASK32, call >> 32


# ---------------------------------------------------------------------- reference
def dropout_mask_reference(n: int, p: float, seed: int, call: int) -> np.ndarray:
    """Boolean keep-mask of n elements, one Philox block (four words) at a time."""
    k0, k1, c2, c3 = _key_words(seed, call)
    threshold = threshold_of(p)
    words = []
    for b in range((n + 3) // 4):
        words.extend(philox4x32_10((b & _MASK32, b >> 32, c2, c3), (k0, k1)))
    return np.array([w >= threshold for w in words[:n]], dtype=bool)


def dropout_forward_reference(x, p, seed, call, scale):
    """(y, mask) with y = x * scale where kept, 0 elsewhere."""
    mask = dropout_mask_reference(x.size, p, seed, call).reshape(x.shape)
    return np.where(mask, x * x.dtype.type(scale), x.dtype.type(0)), mask


def dropout_backward_reference(g, mask, scale):
    """dx = g * scale where the mask kept, 0 elsewhere."""
    return np.where(mask, g * g.dtype.type(scale), g.dtype.type(0))


# -------------------------------------------------------------------------- numba
_U_M0, _U_M1 = np.uint64(M0), np.uint64(M1)
_U_W0, _U_W1 = np.uint64(W0), np.uint64(W1)
_U_MASK, _U_32 = np.uint64(_MASK32), np.uint64(32)


@njit(cache=True, inline="always")
def _philox_block(c0, c1, c2, c3, k0, k1):
    for _ in range(10):
        p0 = _U_M0 * c0
        p1 = _U_M1 * c2
        c0, c1, c2, c3 = (p1 >> _U_32) ^ c1 ^ k0, p1 & _U_MASK, (p0 >> _U_32) ^ c3 ^ k1, p0 & _U_MASK
        k0 = (k0 + _U_W0) & _U_MASK
        k1 = (k1 + _U_W1) & _U_MASK
    return c0, c1, c2, c3


@njit(cache=True, parallel=True)
def _mask_kernel(n, threshold, k0, k1, c2, c3, mask, x, scale, y):
    """mask[i] = word i >= threshold for i < n; and, when x is not empty, y[i] = x[i] * scale or 0
    in the same pass (the mask alone: x and y of size 0)."""
    with_output = x.size > 0
    zero = scale - scale  # a zero of x's dtype (scale * 0 would promote float32 to float64)
    for b in prange((n + 3) // 4):
        ub = np.uint64(b)
        words = _philox_block(ub & _U_MASK, ub >> _U_32, c2, c3, k0, k1)
        for j in range(4):
            i = 4 * b + j
            if i < n:
                keep = words[j] >= threshold
                mask[i] = keep
                if with_output:
                    y[i] = x[i] * scale if keep else zero


@njit(cache=True, parallel=True)
def _backward_kernel(g, mask, scale, out):
    zero = scale - scale
    for i in prange(g.size):
        out[i] = g[i] * scale if mask[i] else zero


def _numba_key(p, seed, call):
    k0, k1, c2, c3 = _key_words(seed, call)
    return (np.uint64(threshold_of(p)), np.uint64(k0), np.uint64(k1), np.uint64(c2), np.uint64(c3))


def dropout_mask_numba(n: int, p: float, seed: int, call: int) -> np.ndarray:
    mask, nothing = np.empty(n, dtype=np.bool_), np.empty(0, dtype=np.float64)
    _mask_kernel(n, *_numba_key(p, seed, call), mask, nothing, 1.0, nothing)
    return mask


def dropout_forward_numba(x, p, seed, call, scale):
    """(y, mask) in one parallel pass: the mask words and the output are made together."""
    flat = np.ascontiguousarray(x).reshape(-1)
    y, mask = np.empty_like(flat), np.empty(flat.size, dtype=np.bool_)
    _mask_kernel(flat.size, *_numba_key(p, seed, call), mask, flat, x.dtype.type(scale), y)
    return y.reshape(x.shape), mask.reshape(x.shape)


def dropout_backward_numba(g, mask, scale):
    flat = np.ascontiguousarray(g).reshape(-1)
    out = np.empty_like(flat)
    _backward_kernel(flat, np.ascontiguousarray(mask).reshape(-1), g.dtype.type(scale), out)
    return out.reshape(g.shape)


# ----------------------------------------------------------------------------- xp
def philox4x32_10_xp(c0, c1, c2, c3, k0: int, k1: int, xp=np):
    """Philox4x32-10 on arrays: c0..c3 uint64 arrays (or scalars) holding uint32 values."""
    u64 = xp.uint64
    mask, shift = u64(_MASK32), u64(32)
    c0, c1, c2, c3 = (xp.asarray(c, dtype=u64) for c in (c0, c1, c2, c3))
    for _ in range(ROUNDS):
        p0, p1 = c0 * u64(M0), c2 * u64(M1)            # < 2^64: exact in uint64
        c0, c1, c2, c3 = ((p1 >> shift) ^ c1 ^ u64(k0), p1 & mask,
                          (p0 >> shift) ^ c3 ^ u64(k1), p0 & mask)
        k0, k1 = (k0 + W0) & _MASK32, (k1 + W1) & _MASK32
    return c0, c1, c2, c3


def dropout_mask_xp(n: int, p: float, seed: int, call: int, xp=np):
    """Boolean keep-mask of n elements, every block at once (xp = numpy or cupy)."""
    k0, k1, c2, c3 = _key_words(seed, call)
    blocks = xp.arange((n + 3) // 4, dtype=xp.uint64)
    words = philox4x32_10_xp(blocks & xp.uint64(_MASK32), blocks >> xp.uint64(32), c2, c3, k0, k1, xp=xp)
    words = xp.stack(xp.broadcast_arrays(*words), axis=1).reshape(-1)[:n]   # word j of block b -> 4b + j
    return words >= xp.uint64(threshold_of(p))


def dropout_forward_xp(x, p, seed, call, scale):
    """(y, mask), array-generic: runs on CuPy arrays on the GPU and on NumPy arrays in tests."""
    xp = backend.get_array_module(x)
    mask = dropout_mask_xp(x.size, p, seed, call, xp=xp).reshape(x.shape)
    return xp.where(mask, x * x.dtype.type(scale), x.dtype.type(0)), mask


def dropout_backward_xp(g, mask, scale):
    xp = backend.get_array_module(g)
    return xp.where(mask, g * g.dtype.type(scale), g.dtype.type(0))


# ----------------------------------------------------------------------- dispatch
def dropout_forward(x, p, seed, call, scale):
    """(y, mask): y = x * scale where the Philox mask keeps, else 0."""
    return pick(dropout_forward_reference, dropout_forward_numba, dropout_forward_xp, x)(x, p, seed, call, scale)


def dropout_backward(g, mask, scale):
    """dx = g * scale where kept, else 0."""
    return pick(dropout_backward_reference, dropout_backward_numba, dropout_backward_xp, g)(g, mask, scale)
