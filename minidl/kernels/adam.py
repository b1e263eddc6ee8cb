"""Adam parameter update, in place (see minidl/optim/adam.py for the formulas).

Arrays: w, g, state["exp_avg"] (m), state["exp_avg_sq"] (v), all of w's shape; state["step"] an
int (t).  Per element, in this order, in w's dtype (the scalars are rounded to it once):

    g' = g + wd * w                                  (when wd != 0)
    m  = m * b1 + (1 - b1) * g'
    v  = v * b2 + ((1 - b2) * g') * g'
    w  = w - (step_size * m) / (sqrt(v) / sqrt(1 - b2^t) + eps),   step_size = lr / (1 - b1^t)

Layout: any shape; the fast versions see every array as a flat C-contiguous vector.  There is
no backward: this is the optimizer's update (docs/kernels/optim.md).

- ``adam_step_reference``: whole-array statements (several passes over memory).
- ``adam_step_numba``: ONE parallel pass over the flattened arrays (the CPU default).
- ``adam_step_xp``: the CUDA kernel's body on whole arrays (NumPy or CuPy), so the tests run its
  logic without a GPU.
- ``adam_step_cupy``: a cupy.ElementwiseKernel doing the one pass on the GPU.
- ``adam_step``: the dispatcher the optimizer calls.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .. import backend
from . import elementwise_kernel, pick


def _setup(w, g, state, lr, betas, eps, weight_decay):
    """Shared by the fast versions: state creation, step count and the scalars in w's dtype."""
    xp = backend.get_array_module(w)
    if "exp_avg" not in state:
        state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, xp.zeros_like(w), xp.zeros_like(w)
    state["step"] += 1
    b1, b2 = betas
    t, n = state["step"], w.dtype.type
    scalars = dict(b1=n(b1), b2=n(b2), omb1=n(1 - b1), omb2=n(1 - b2), wd=n(weight_decay), eps=n(eps),
                   step_size=n(lr / (1 - b1 ** t)), bc2_sqrt=n(math.sqrt(1 - b2 ** t)))
    return g.astype(w.dtype, copy=False), state["exp_avg"], state["exp_avg_sq"], scalars


# ---------------------------------------------------------------------- reference
def adam_step_reference(w, g, state, lr, betas, eps, weight_decay):
    b1, b2 = betas
    if weight_decay:
        g = g + weight_decay * w
    if "exp_avg" not in state:
        state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, w * 0, w * 0
    state["step"] += 1
    t = state["step"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    denom = (v ** 0.5) / (1 - b2 ** t) ** 0.5 + eps
    w -= (lr / (1 - b1 ** t)) * m / denom


# -------------------------------------------------------------------------- numba
@njit(cache=True, parallel=True)
def _adam_kernel(w, g, m, v, b1, b2, omb1, omb2, wd, eps, step_size, bc2_sqrt, decay):
    for i in prange(w.size):
        gi = g[i]
        if decay:
            gi = gi + wd * w[i]
        mi = m[i] * b1 + omb1 * gi
        vi = v[i] * b2 + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        w[i] = w[i] - step_size * mi / (np.sqrt(vi) / bc2_sqrt + eps)


def adam_step_numba(w, g, state, lr, betas, eps, weight_decay):
    if not w.flags.c_contiguous:  # a flat view would be a copy: use the whole-array version
        return adam_step_reference(w, g, state, lr, betas, eps, weight_decay)
    g, m, v, s = _setup(w, g, state, lr, betas, eps, weight_decay)
    _adam_kernel(w.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1), s["b1"], s["b2"],
                 s["omb1"], s["omb2"], s["wd"], s["eps"], s["step_size"], s["bc2_sqrt"], weight_decay != 0)


# ----------------------------------------------------------------------------- xp
def adam_step_xp(w, g, state, lr, betas, eps, weight_decay):
    """``adam_step_cupy``'s kernel body, statement by statement, on whole arrays (NumPy or CuPy)."""
    xp = backend.get_array_module(w)
    g, m, v, s = _setup(w, g, state, lr, betas, eps, weight_decay)
    gi = g
    if weight_decay != 0:
        gi = gi + s["wd"] * w
    mi = m * s["b1"] + s["omb1"] * gi
    vi = v * s["b2"] + s["omb2"] * gi * gi
    m[...] = mi
    v[...] = vi
    w[...] = w - s["step_size"] * mi / (xp.sqrt(vi) / s["bc2_sqrt"] + s["eps"])


# --------------------------------------------------------------------------- cupy
_ADAM_BODY = """
    T gi = g;
    if (decay) gi = gi + wd * w;
    T mi = m * b1 + omb1 * gi;
    T vi = v * b2 + omb2 * gi * gi;
    m = mi;
    v = vi;
    w = w - step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
"""
_CUDA_KERNEL = elementwise_kernel(
    "T g, T b1, T b2, T omb1, T omb2, T wd, T eps, T step_size, T bc2_sqrt, bool decay",
    "T w, T m, T v", _ADAM_BODY, "minidl_adam_step")


def adam_step_cupy(w, g, state, lr, betas, eps, weight_decay):
    """One pass on the GPU with a cupy.ElementwiseKernel (compiled once per dtype by CuPy)."""
    g, m, v, s = _setup(w, g, state, lr, betas, eps, weight_decay)
    _CUDA_KERNEL.get()(g, s["b1"], s["b2"], s["omb1"], s["omb2"], s["wd"], s["eps"], s["step_size"],
                       s["bc2_sqrt"], np.bool_(weight_decay != 0), w, m, v)


# ----------------------------------------------------------------------- dispatch
def adam_step(w, g, state, lr, betas, eps, weight_decay):
    """Update w and state in place (the CUDA kernel for GPU arrays, Numba otherwise)."""
    pick(adam_step_reference, adam_step_numba, adam_step_xp, w, cupy=adam_step_cupy)(
        w, g, state, lr, betas, eps, weight_decay)
