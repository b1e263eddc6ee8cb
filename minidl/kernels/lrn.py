"""Local response normalisation (LRN) across channels, forward and backward.

Layout: x is (N, C, ...) (NCHW for images; the trailing dims are flattened to
M = H*W), float32 or float64.  With n = ``size``, lo = n // 2, hi = (n - 1) // 2
(PyTorch's formula, torch.nn.functional.local_response_norm):

    s[c] = k + alpha/n * sum_{c' = c-lo}^{c+hi} a[c']^2     (channels outside [0, C) count as 0)
    b[c] = a[c] * s[c]^(-beta)

The forward returns (b, s): the scale s is all the backward needs besides a and the upstream
gradient g (see docs/kernels/lrn.md for the derivation).  With p = s^(-beta) and
q = s^(-beta-1) = p / s:

    dL/da[c] = g[c] * p[c] - (2 alpha beta / n) * a[c] * sum_{c' = c-hi}^{c+lo} g[c'] a[c'] q[c']

(the second sum runs over the channels c' whose window contains c: the window reflected, so
for even n the two sides swap).  The backward recomputes p and q from s: two square roots and
two divisions an element cost less than writing and re-reading two more input-sized arrays.

Versions: ``_reference`` (plain NumPy loops over channels, the backward written in "scatter"
form, one window at a time), ``_numba`` (the CPU default: one pass over the channels with a
running window sum, prange over (n, block of M)), ``_cupy`` (array-generic: the window sum as n
shifted slices of a zero-padded array, run by the tests with NumPy) and the dispatchers
``lrn_forward`` / ``lrn_backward``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import memory, pick

BLOCK = 512  # positions (of M = H*W) per Numba work item: the running sums stay in L1


def _flat(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


# ====================================================================== reference
def lrn_forward_reference(x, size, alpha, beta, k):
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    s = np.empty_like(x)
    for c in range(C):
        window = x[:, max(0, c - lo):min(C, c + hi + 1)]
        s[:, c] = k + alpha / size * (window * window).sum(axis=1)
    return x * s ** -beta, s


def lrn_backward_reference(x, g, s, size, alpha, beta):
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    p = s ** -beta
    gx = g * p                                   # the direct path: b[c] = a[c] * p[c]
    t = g * x * p / s                            # g[c'] * a[c'] * s[c']^(-beta-1)
    for c in range(C):                           # scatter: window c sends its share to every channel in it
        lo_c, hi_c = max(0, c - lo), min(C, c + hi + 1)
        gx[:, lo_c:hi_c] -= (2 * alpha * beta / size) * x[:, lo_c:hi_c] * t[:, c:c + 1]
    return gx


# ========================================================================== numba
# Arrays are indexed as a[n, c, m] (C-contiguous, so LLVM vectorises the loops over m), and
# the choice of power function is made outside the innermost loops (a test inside them stops
# vectorisation).  For beta = 0.75 (every AlexNet) s^-0.75 = 1/sqrt(s*sqrt(s)): square roots
# vectorise, pow does not.
@njit(parallel=True, cache=True, error_model="numpy")
def _lrn_forward_nb(x, size, coef, negbeta, k, y, s):
    N, C, M = x.shape
    lo, hi = size // 2, (size - 1) // 2
    nblk = (M + BLOCK - 1) // BLOCK
    zero = x.dtype.type(0.0)
    three_quarters = negbeta == -0.75
    for task in prange(N * nblk):
        n = task // nblk
        m0 = (task % nblk) * BLOCK
        m1 = min(m0 + BLOCK, M)
        acc = np.zeros(BLOCK, dtype=x.dtype)         # sum of a^2 over the current window, at acc[m - m0]
        for e in range(min(hi, C)):                  # channels 0..hi-1: the part of c=0's window ahead of it
            for m in range(m0, m1):
                acc[m - m0] += x[n, e, m] * x[n, e, m]
        for c in range(C):
            if c + hi < C:                           # the channel entering the window [c-lo, c+hi]
                e = c + hi
                for m in range(m0, m1):
                    acc[m - m0] += x[n, e, m] * x[n, e, m]
            if c - lo - 1 >= 0:                      # the channel leaving it
                d = c - lo - 1
                for m in range(m0, m1):
                    acc[m - m0] -= x[n, d, m] * x[n, d, m]
            if three_quarters:                       # max: a running sum can round to just below 0
                for m in range(m0, m1):
                    sc = k + coef * max(acc[m - m0], zero)
                    s[n, c, m] = sc
                    y[n, c, m] = x[n, c, m] / np.sqrt(sc * np.sqrt(sc))
            else:
                for m in range(m0, m1):
                    sc = k + coef * max(acc[m - m0], zero)
                    s[n, c, m] = sc
                    y[n, c, m] = x[n, c, m] * sc ** negbeta


@njit(cache=True, inline="always")
def _lrn_backward_enter(x, g, s, n, e, m0, m1, negbeta, three_quarters, p_row, t_row, acc):
    """Channel e enters the reflected window: p = s^-beta into p_row, t = g a p / s into t_row and acc."""
    one = x.dtype.type(1.0)
    if three_quarters:
        for m in range(m0, m1):
            se = s[n, e, m]
            q = one / (np.sqrt(se * np.sqrt(se)) * se)     # s^-1.75: one division for both powers
            p_row[m - m0] = q * se
            t = g[n, e, m] * x[n, e, m] * q
            t_row[m - m0] = t
            acc[m - m0] += t
    else:
        for m in range(m0, m1):
            se = s[n, e, m]
            pe = se ** negbeta
            p_row[m - m0] = pe
            t = g[n, e, m] * x[n, e, m] * pe / se
            t_row[m - m0] = t
            acc[m - m0] += t


@njit(parallel=True, cache=True, error_model="numpy")
def _lrn_backward_nb(x, g, s, size, negbeta, coef2, gx):
    N, C, M = x.shape
    lo, hi = size // 2, (size - 1) // 2
    ring = lo + hi + 2                        # channels c-hi-1 .. c+lo: the window, plus the one leaving it
    nblk = (M + BLOCK - 1) // BLOCK
    three_quarters = negbeta == -0.75
    for task in prange(N * nblk):
        n = task // nblk
        m0 = (task % nblk) * BLOCK
        m1 = min(m0 + BLOCK, M)
        acc = np.zeros(BLOCK, dtype=x.dtype)  # sum of t = g a q over the reflected window [c-hi, c+lo]
        p = np.empty((ring, BLOCK), dtype=x.dtype)   # p and t of channel c at row c % ring
        t = np.empty((ring, BLOCK), dtype=x.dtype)
        for e in range(min(lo, C)):           # channels 0..lo-1: the part of c=0's window ahead of it
            _lrn_backward_enter(x, g, s, n, e, m0, m1, negbeta, three_quarters, p[e % ring], t[e % ring], acc)
        for c in range(C):
            if c + lo < C:                    # the channel entering the window
                e = c + lo
                _lrn_backward_enter(x, g, s, n, e, m0, m1, negbeta, three_quarters, p[e % ring], t[e % ring], acc)
            if c - hi - 1 >= 0:               # the channel leaving it: subtract exactly what was added
                t_out = t[(c - hi - 1) % ring]
                for m in range(m0, m1):
                    acc[m - m0] -= t_out[m - m0]
            p_c = p[c % ring]
            for m in range(m0, m1):
                gx[n, c, m] = g[n, c, m] * p_c[m - m0] - coef2 * x[n, c, m] * acc[m - m0]


def lrn_forward_numba(x, size, alpha, beta, k):
    t = x.dtype.type
    y, s = memory.empty_like(x), memory.empty_like(x)   # outputs from the array cache: no page faults
    _lrn_forward_nb(np.ascontiguousarray(_flat(x)), size, t(alpha / size), t(-beta), t(k), _flat(y), _flat(s))
    return y, s


def lrn_backward_numba(x, g, s, size, alpha, beta):
    t = x.dtype.type
    arrays = [np.ascontiguousarray(_flat(a)) for a in (x, g, s)]
    gx = memory.empty_like(x)
    _lrn_backward_nb(*arrays, size, t(-beta), t(2 * alpha * beta / size), _flat(gx))
    return gx


# =========================================================================== cupy
def _window_sum(xp, a, before, after):
    """out[:, c] = sum of a[:, c-before .. c+after] (zeros outside [0, C)), as shifted slices."""
    C = a.shape[1]
    padded = xp.zeros((a.shape[0], C + before + after) + a.shape[2:], dtype=a.dtype)
    padded[:, before:before + C] = a
    out = padded[:, 0:C].copy()
    for i in range(1, before + after + 1):
        out += padded[:, i:i + C]
    return out


def lrn_forward_cupy(x, size, alpha, beta, k):
    """Array-generic: the window sum of squares as ``size`` shifted adds, then elementwise maths."""
    xp = backend.get_array_module(x)
    t = x.dtype.type
    s = t(k) + t(alpha / size) * _window_sum(xp, x * x, size // 2, (size - 1) // 2)
    return x * s ** t(-beta), s


def lrn_backward_cupy(x, g, s, size, alpha, beta):
    xp = backend.get_array_module(x)
    p = s ** x.dtype.type(-beta)
    reflected = _window_sum(xp, g * x * p / s, (size - 1) // 2, size // 2)
    return g * p - x.dtype.type(2 * alpha * beta / size) * x * reflected


# ==================================================================== dispatchers
def lrn_forward(x, size, alpha, beta, k):
    """(b, s): the normalised output and the scale s = k + alpha/size * window sum of x^2."""
    return pick(lrn_forward_reference, lrn_forward_numba, lrn_forward_cupy, x)(x, size, alpha, beta, k)


def lrn_backward(x, g, s, size, alpha, beta):
    """dL/da from the input a, the upstream gradient g and the forward's scale s."""
    return pick(lrn_backward_reference, lrn_backward_numba, lrn_backward_cupy, x)(x, g, s, size, alpha, beta)
