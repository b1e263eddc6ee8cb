"""Batch normalisation over the channel axis: per-channel statistics, normalisation and backward.

Layout: x is (N, C) or (N, C, *spatial) (NCHW for BatchNorm2d); every kernel sees it as the
3-D view (N, C, L), L = product of the spatial sizes (1 for (N, C)).  Per channel c, over the
M = N * L values x[:, c, :]:

    forward   mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M        (biased; batch statistics)
              -- or mean_c, var_c given (the running statistics, eval mode) --
              invstd_c = 1 / sqrt(var_c + eps),   xhat = (x - mean_c) * invstd_c
              y = xhat * w_c + b_c
    backward  db_c = sum g,   dw_c = sum g * xhat
              batch statistics: dx = w_c * invstd_c * (g - db_c / M - xhat * dw_c / M)
              given statistics: dx = w_c * invstd_c * g
(docs/kernels/batchnorm.md derives these.)

Each version returns forward: (y, mean, var, invstd), backward: (dx, dw, db), all in x's dtype.
- ``*_reference``: plain NumPy, the formulas as written.
- ``*_numba``: parallel over channels; per-channel sums accumulate in float64 (deliberately, as
  PyTorch's CPU kernel does: a float32 running sum over 10^6 values loses digits), the
  element-wise work stays in x's dtype.
- ``*_xp``: array-generic (the GPU default; NumPy in the tests): a few reductions, then ONE
  element-wise pass with per-channel coefficients (y = x * a_c + s_c;  dx = g * a_c + x * k_c + s_c).
- ``batch_norm_forward`` / ``batch_norm_backward``: dispatchers.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import pick


def _view3(x):
    """(N, C, L) view of (N, C) or (N, C, *spatial)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _col(v):
    return v.reshape(1, -1, 1)


# ---------------------------------------------------------------------- reference
def batch_norm_forward_reference(x, weight, bias, eps, mean=None, var=None):
    x3 = _view3(x)
    if mean is None:
        mean, var = x3.mean(axis=(0, 2)), x3.var(axis=(0, 2))
    invstd = 1 / np.sqrt(var + x.dtype.type(eps))
    xhat = (x3 - _col(mean)) * _col(invstd)
    y = xhat * _col(weight) + _col(bias)
    return y.reshape(x.shape), mean, var, invstd


def batch_norm_backward_reference(g, x, mean, invstd, weight, batch_stats):
    g3, x3 = _view3(g), _view3(x)
    m = x3.shape[0] * x3.shape[2]
    xhat = (x3 - _col(mean)) * _col(invstd)
    db = g3.sum(axis=(0, 2))
    dw = (g3 * xhat).sum(axis=(0, 2))
    if batch_stats:
        dx = _col(weight * invstd) * (g3 - _col(db) / m - xhat * _col(dw) / m)
    else:
        dx = _col(weight * invstd) * g3
    return dx.reshape(x.shape), dw, db


# -------------------------------------------------------------------------- numba
@njit(cache=True, parallel=True)
def _stats_kernel(x3, mean, var):
    n, c_count, length = x3.shape
    m = n * length
    for c in prange(c_count):
        total = 0.0                                   # float64 accumulator (see module docstring)
        for i in range(n):
            for j in range(length):
                total += x3[i, c, j]
        mu = total / m
        sq = 0.0
        for i in range(n):
            for j in range(length):
                d = x3[i, c, j] - mu
                sq += d * d
        mean[c] = mu
        var[c] = sq / m


@njit(cache=True, parallel=True)
def _normalize_kernel(x3, mean, invstd, weight, bias, y3):
    n, c_count, length = x3.shape
    for c in prange(c_count):
        mu, a, b = mean[c], invstd[c] * weight[c], bias[c]
        for i in range(n):
            for j in range(length):
                y3[i, c, j] = (x3[i, c, j] - mu) * a + b


@njit(cache=True, parallel=True)
def _backward_kernel(g3, x3, mean, invstd, weight, batch_stats, inv_m, dx3, dw, db):
    n, c_count, length = x3.shape
    for c in prange(c_count):
        mu, inv = mean[c], invstd[c]
        sum_g = 0.0                                   # float64 accumulators
        sum_gxc = 0.0
        for i in range(n):
            for j in range(length):
                gv = g3[i, c, j]
                sum_g += gv
                sum_gxc += gv * (x3[i, c, j] - mu)
        db[c] = sum_g
        dw[c] = sum_gxc * inv
        a = weight[c] * inv
        if batch_stats:
            gm = dw[c] * inv_m                        # inv_m = 1/M in x's dtype: no float64 from here on
            bm = db[c] * inv_m
            for i in range(n):
                for j in range(length):
                    xhat = (x3[i, c, j] - mu) * inv
                    dx3[i, c, j] = a * (g3[i, c, j] - bm - xhat * gm)
        else:
            for i in range(n):
                for j in range(length):
                    dx3[i, c, j] = a * g3[i, c, j]


def batch_norm_forward_numba(x, weight, bias, eps, mean=None, var=None):
    x3 = np.ascontiguousarray(_view3(x))
    channels = x3.shape[1]
    if mean is None:
        mean, var = np.empty(channels, x.dtype), np.empty(channels, x.dtype)
        _stats_kernel(x3, mean, var)
    invstd = (1 / np.sqrt(var + x.dtype.type(eps))).astype(x.dtype, copy=False)
    y3 = np.empty_like(x3)
    _normalize_kernel(x3, mean.astype(x.dtype, copy=False), invstd, weight.astype(x.dtype, copy=False),
                      bias.astype(x.dtype, copy=False), y3)
    return y3.reshape(x.shape), mean, var, invstd


def batch_norm_backward_numba(g, x, mean, invstd, weight, batch_stats):
    g3, x3 = np.ascontiguousarray(_view3(g)), np.ascontiguousarray(_view3(x))
    channels = x3.shape[1]
    dx3 = np.empty_like(x3)
    dw, db = np.empty(channels, x.dtype), np.empty(channels, x.dtype)
    _backward_kernel(g3, x3, mean.astype(x.dtype, copy=False), invstd.astype(x.dtype, copy=False),
                     weight.astype(x.dtype, copy=False), bool(batch_stats),
                     x.dtype.type(1.0 / (x3.shape[0] * x3.shape[2])), dx3, dw, db)
    return dx3.reshape(x.shape), dw, db


# ----------------------------------------------------------------------------- xp
def batch_norm_forward_xp(x, weight, bias, eps, mean=None, var=None):
    xp = backend.get_array_module(x)
    x3 = _view3(x)
    if mean is None:
        mean = x3.mean(axis=(0, 2))
        var = xp.square(x3 - _col(mean)).mean(axis=(0, 2))
    invstd = 1 / xp.sqrt(var + x.dtype.type(eps))
    a = weight * invstd                      # y = (x - mean) * invstd * w + b = x * a + s
    s = bias - mean * a
    return (x3 * _col(a) + _col(s)).reshape(x.shape), mean, var, invstd


def batch_norm_backward_xp(g, x, mean, invstd, weight, batch_stats):
    g3, x3 = _view3(g), _view3(x)
    m = x3.shape[0] * x3.shape[2]
    db = g3.sum(axis=(0, 2))
    dw = (g3 * (x3 - _col(mean))).sum(axis=(0, 2)) * invstd
    a = weight * invstd
    if not batch_stats:
        return (g3 * _col(a)).reshape(x.shape), dw, db
    # dx = a (g - db/M - (x - mean) invstd dw/M) = g a + x k + s
    k = -a * invstd * dw / m
    s = -a * db / m - mean * k
    return (g3 * _col(a) + x3 * _col(k) + _col(s)).reshape(x.shape), dw, db


# ----------------------------------------------------------------------- dispatch
def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    """(y, mean, var, invstd); batch statistics (biased var) when mean/var are None."""
    return pick(batch_norm_forward_reference, batch_norm_forward_numba, batch_norm_forward_xp, x)(
        x, weight, bias, eps, mean, var)


def batch_norm_backward(g, x, mean, invstd, weight, batch_stats):
    """(dx, dweight, dbias); batch_stats says whether mean/invstd were computed from x."""
    return pick(batch_norm_backward_reference, batch_norm_backward_numba, batch_norm_backward_xp, x)(
        g, x, mean, invstd, weight, batch_stats)
