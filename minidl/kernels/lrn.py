"""Local response normalisation (LRN) across channels, forward and backward.

Layout: x is (N, C, ...) (NCHW for images; the trailing dims are flattened to
M = H*W), float32 or float64.  With n = ``size``, lo = n // 2, hi = (n - 1) // 2
(PyTorch's formula, torch.nn.functional.local_response_norm):

    s[c] = k + alpha/n * sum_{c' = c-lo}^{c+hi} a[c']^2     (channels outside [0, C) count as 0)
    b[c] = a[c] * s[c]^(-beta)

The forward returns b and saves nothing: the backward needs only a, the upstream gradient g
and the settings (see docs/kernels/lrn.md for the derivation).  With p = s^(-beta) and
q = s^(-beta-1) = p / s:

    dL/da[c] = g[c] * p[c] - (2 alpha beta / n) * a[c] * sum_{c' = c-hi}^{c+lo} g[c'] a[c'] q[c']

(the second sum runs over the channels c' whose window contains c: the window reflected, so
for even n the two sides swap).  The backward recomputes s from a with the forward's running
sum (two multiply-adds an element): measured, that costs about what writing, keeping and
re-reading a saved s would, and it keeps one input-sized array less alive until the backward.

Versions: ``_reference`` (plain NumPy loops over channels, the backward written in "scatter"
form, one window at a time), ``_numba`` (the CPU default: one pass over the channels with a
running window sum, prange over (n, block of M)), ``_xp`` (array-generic, the GPU default: the
window sum as n shifted slices of a zero-padded array, run by the tests with NumPy) and the
dispatchers ``lrn_forward`` / ``lrn_backward``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import memory, pick

BLOCK = 512  # positions (of M = H*W) per Numba work item: the running sums stay in L1


def _flat(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


# ---------------------------------------------------------------------- reference
def _scale_reference(x, size, alpha, k):
    """s = k + alpha/size * (window sum of x^2), one channel at a time."""
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    s = np.empty_like(x)
    for c in range(C):
        window = x[:, max(0, c - lo):min(C, c + hi + 1)]
        s[:, c] = k + alpha / size * (window * window).sum(axis=1)
    return s


def lrn_forward_reference(x, size, alpha, beta, k):
    return x * _scale_reference(x, size, alpha, k) ** -beta


def lrn_backward_reference(x, g, size, alpha, beta, k):
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    s = _scale_reference(x, size, alpha, k)
    p = s ** -beta
    gx = g * p                                   # the direct path: b[c] = a[c] * p[c]
    t = g * x * p / s                            # g[c'] * a[c'] * s[c']^(-beta-1)
    for c in range(C):                           # scatter: window c sends its share to every channel in it
        lo_c, hi_c = max(0, c - lo), min(C, c + hi + 1)
        gx[:, lo_c:hi_c] -= (2 * alpha * beta / size) * x[:, lo_c:hi_c] * t[:, c:c + 1]
    return gx


# -------------------------------------------------------------------------- numba
# Each work item is one (image n, block of M positions); the inner loops run over the block
# through 1-D row views (x[n, c, m0:m1]): indexed as x[n, c, m] the same loops ran ~6x slower
# (LLVM did not vectorise the 3-D index arithmetic).  The choice of power function is made outside
# the innermost loops (a test inside them stops vectorisation).  For beta = 0.75 (every AlexNet)
# s^-0.75 = 1/sqrt(s*sqrt(s)): square roots vectorise, pow does not.  Both kernels walk the
# channels with the same running sum of squares, so the backward's s is bit-identical to the
# forward's.
@njit(cache=True, inline="always")
def _add_squares(row, sq, sign):
    """sq += sign * row^2, elementwise (sign is +1 or -1)."""
    for m in range(row.shape[0]):
        sq[m] += sign * (row[m] * row[m])


@njit(cache=True, inline="always")
def _start_square_sum(x, n, m0, m1, hi, sq):
    """sq = sum of a^2 over channels 0..hi-1: the part of channel 0's window ahead of it."""
    one = x.dtype.type(1.0)
    for e in range(min(hi, x.shape[1])):
        _add_squares(x[n, e, m0:m1], sq, one)


@njit(cache=True, inline="always")
def _advance_square_sum(x, n, c, m0, m1, lo, hi, sq):
    """Move sq from channel c-1's window to channel c's, [c-lo, c+hi]: one channel in, one out."""
    one = x.dtype.type(1.0)
    if c + hi < x.shape[1]:
        _add_squares(x[n, c + hi, m0:m1], sq, one)
    if c - lo - 1 >= 0:
        _add_squares(x[n, c - lo - 1, m0:m1], sq, -one)


@njit(parallel=True, cache=True, error_model="numpy")
def _lrn_forward_nb(x, size, coef, negbeta, k, y):
    N, C, M = x.shape
    lo, hi = size // 2, (size - 1) // 2
    nblk = (M + BLOCK - 1) // BLOCK
    zero = x.dtype.type(0.0)
    three_quarters = negbeta == -0.75
    for task in prange(N * nblk):
        n = task // nblk
        m0 = (task % nblk) * BLOCK
        m1 = min(m0 + BLOCK, M)
        sq = np.zeros(m1 - m0, dtype=x.dtype)        # sum of a^2 over the current window, at sq[m - m0]
        _start_square_sum(x, n, m0, m1, hi, sq)
        for c in range(C):
            _advance_square_sum(x, n, c, m0, m1, lo, hi, sq)
            xc, yc = x[n, c, m0:m1], y[n, c, m0:m1]
            if three_quarters:                       # max: a running sum can round to just below 0
                for m in range(m1 - m0):
                    s = k + coef * max(sq[m], zero)
                    yc[m] = xc[m] / np.sqrt(s * np.sqrt(s))
            else:
                for m in range(m1 - m0):
                    s = k + coef * max(sq[m], zero)
                    yc[m] = xc[m] * s ** negbeta


@njit(cache=True, inline="always")
def _lrn_backward_enter(xe, ge, coef, negbeta, k, three_quarters, sq, p_row, t_row, acc):
    """Channel e (its rows xe, ge) enters the reflected window: with s[e] from the running sum sq,
    p = s^-beta into p_row and t = g a s^(-beta-1) into t_row and acc."""
    zero, one = xe.dtype.type(0.0), xe.dtype.type(1.0)
    if three_quarters:
        for m in range(xe.shape[0]):
            s = k + coef * max(sq[m], zero)
            q = one / (np.sqrt(s * np.sqrt(s)) * s)      # s^-1.75: one division for both powers
            p_row[m] = q * s
            t = ge[m] * xe[m] * q
            t_row[m] = t
            acc[m] += t
    else:
        for m in range(xe.shape[0]):
            s = k + coef * max(sq[m], zero)
            p = s ** negbeta
            p_row[m] = p
            t = ge[m] * xe[m] * p / s
            t_row[m] = t
            acc[m] += t


@njit(parallel=True, cache=True, error_model="numpy")
def _lrn_backward_nb(x, g, size, coef, negbeta, k, coef2, gx):
    N, C, M = x.shape
    lo, hi = size // 2, (size - 1) // 2
    ring = lo + hi + 2                        # channels c-hi-1 .. c+lo: the window, plus the one leaving it
    nblk = (M + BLOCK - 1) // BLOCK
    three_quarters = negbeta == -0.75
    for task in prange(N * nblk):
        n = task // nblk
        m0 = (task % nblk) * BLOCK
        m1 = min(m0 + BLOCK, M)
        L = m1 - m0
        sq = np.zeros(L, dtype=x.dtype)       # the forward's sum of a^2, for the channel entering below
        _start_square_sum(x, n, m0, m1, hi, sq)
        acc = np.zeros(L, dtype=x.dtype)      # sum of t = g a q over the reflected window [c-hi, c+lo]
        p = np.empty((ring, L), dtype=x.dtype)    # p and t of channel c at row c % ring
        t = np.empty((ring, L), dtype=x.dtype)
        for e in range(C + lo):
            if e < C:                         # channel e enters (channels 0..lo-1 before c = 0)
                _advance_square_sum(x, n, e, m0, m1, lo, hi, sq)
                _lrn_backward_enter(x[n, e, m0:m1], g[n, e, m0:m1], coef, negbeta, k, three_quarters, sq,
                                    p[e % ring], t[e % ring], acc)
            c = e - lo                        # the channel whose window is now complete
            if c < 0:
                continue
            if c - hi - 1 >= 0:               # the channel leaving it: subtract exactly what was added
                t_out = t[(c - hi - 1) % ring]
                for m in range(L):
                    acc[m] -= t_out[m]
            p_c, xc, gc, gxc = p[c % ring], x[n, c, m0:m1], g[n, c, m0:m1], gx[n, c, m0:m1]
            for m in range(L):
                gxc[m] = gc[m] * p_c[m] - coef2 * xc[m] * acc[m]


def lrn_forward_numba(x, size, alpha, beta, k):
    t = x.dtype.type
    y = memory.empty_like(x)   # from the array cache: no page faults
    _lrn_forward_nb(np.ascontiguousarray(_flat(x)), size, t(alpha / size), t(-beta), t(k), _flat(y))
    return y


def lrn_backward_numba(x, g, size, alpha, beta, k):
    t = x.dtype.type
    gx = memory.empty_like(x)
    _lrn_backward_nb(np.ascontiguousarray(_flat(x)), np.ascontiguousarray(_flat(g)), size, t(alpha / size),
                     t(-beta), t(k), t(2 * alpha * beta / size), _flat(gx))
    return gx


# ----------------------------------------------------------------------------- xp
def _window_sum(xp, a, before, after):
    """out[:, c] = sum of a[:, c-before .. c+after] (zeros outside [0, C)), as shifted slices."""
    C = a.shape[1]
    padded = xp.zeros((a.shape[0], C + before + after) + a.shape[2:], dtype=a.dtype)
    padded[:, before:before + C] = a
    out = padded[:, 0:C].copy()
    for i in range(1, before + after + 1):
        out += padded[:, i:i + C]
    return out


def _scale_xp(xp, x, size, alpha, k):
    t = x.dtype.type
    return t(k) + t(alpha / size) * _window_sum(xp, x * x, size // 2, (size - 1) // 2)


def lrn_forward_xp(x, size, alpha, beta, k):
    """Array-generic: the window sum of squares as ``size`` shifted adds, then elementwise maths."""
    xp = backend.get_array_module(x)
    return x * _scale_xp(xp, x, size, alpha, k) ** x.dtype.type(-beta)


def lrn_backward_xp(x, g, size, alpha, beta, k):
    xp = backend.get_array_module(x)
    s = _scale_xp(xp, x, size, alpha, k)
    p = s ** x.dtype.type(-beta)
    reflected = _window_sum(xp, g * x * p / s, (size - 1) // 2, size // 2)
    return g * p - x.dtype.type(2 * alpha * beta / size) * x * reflected


# ----------------------------------------------------------------------- dispatch
def lrn_forward(x, size, alpha, beta, k):
    """b = x * (k + alpha/size * window sum of x^2)^(-beta)."""
    return pick(lrn_forward_reference, lrn_forward_numba, lrn_forward_xp, x)(x, size, alpha, beta, k)


def lrn_backward(x, g, size, alpha, beta, k):
    """dL/da from the input a and the upstream gradient g (the scale is recomputed from a)."""
    return pick(lrn_backward_reference, lrn_backward_numba, lrn_backward_xp, x)(x, g, size, alpha, beta, k)
