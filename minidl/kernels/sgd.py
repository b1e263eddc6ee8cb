"""SGD parameter update, in place: PyTorch's rule and the paper's (see minidl/optim/sgd.py).

Arrays: w (parameter), g (its gradient), state["momentum_buffer"] (same shape as w), created
on the first step (PyTorch's rule: v = g on the first step; the paper's: v starts at 0).
Per element, in this order (every version performs the same float operations in w's dtype,
so the versions agree bit for bit on the CPU):

    PyTorch's rule:  g' = g + wd * w                       (when wd != 0)
                     v  = g' (first step)  or  v * mu + (1 - dampening) * g'   (when mu != 0)
                     d  = g' + mu * v (nesterov)  or  v  (or g' when mu == 0)
                     w  = w - lr * d
    the paper's:     v = v * mu;  v = v - (wd * lr) * w;  v = v - lr * g;  w = w + v

Layout: any shape; the fast versions see w, g and v as flat C-contiguous vectors.  There is no
backward: this is the optimizer's update (docs/kernels/optim.md).

- ``sgd_step_reference``: whole-array NumPy statements (several passes over memory).
- ``sgd_step_numba``: ONE parallel pass over the flattened arrays, w and v updated in place (CPU).
- ``sgd_step_xp``: the CUDA kernel's body statement by statement on whole arrays (NumPy or CuPy),
  so the tests run its logic without a GPU.
- ``sgd_step_cupy``: a cupy.ElementwiseKernel doing the one pass on the GPU (one kernel per
  combination of flags, all declared at import so the compile test builds every one).
- ``sgd_step``: the dispatcher the optimizer calls.
"""
from __future__ import annotations

import itertools

import numpy as np
from numba import njit, prange

from .. import backend
from . import elementwise_kernel, pick


def _setup(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule):
    """Shared by the fast versions: the state buffer, the flags and the scalars in w's dtype."""
    xp = backend.get_array_module(w)
    t = w.dtype.type
    paper = rule == "paper"
    use_momentum = paper or momentum != 0
    first = use_momentum and state.get("momentum_buffer") is None
    if first:
        state["momentum_buffer"] = xp.zeros_like(w)
    v = state["momentum_buffer"] if use_momentum else None
    scalars = dict(lr=t(lr), mu=t(momentum), od=t(1 - dampening), wd=t(weight_decay), wd_lr=t(weight_decay * lr))
    flags = dict(paper=paper, use_momentum=use_momentum, first=first and not paper,
                 nesterov=bool(nesterov), decay=weight_decay != 0)
    return g.astype(w.dtype, copy=False), v, scalars, flags


# ---------------------------------------------------------------------- reference
def sgd_step_reference(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule):
    if rule == "paper":  # v = mu v - wd lr w - lr g; w += v
        v = state.get("momentum_buffer")
        if v is None:
            v = state["momentum_buffer"] = w * 0
        v *= momentum
        v -= (weight_decay * lr) * w
        v -= lr * g
        w += v
        return
    if weight_decay:
        g = g + weight_decay * w
    if momentum:
        v = state.get("momentum_buffer")
        if v is None:
            v = state["momentum_buffer"] = g.copy()
        else:
            v *= momentum
            v += (1 - dampening) * g
        g = g + momentum * v if nesterov else v
    w -= lr * g


# -------------------------------------------------------------------------- numba
@njit(cache=True, parallel=True)
def _sgd_kernel(w, g, v, lr, mu, od, wd, wd_lr, paper, use_momentum, first, nesterov, decay):
    for i in prange(w.size):
        if paper:
            vi = v[i] * mu
            vi = vi - wd_lr * w[i]
            vi = vi - lr * g[i]
            v[i] = vi
            w[i] = w[i] + vi
        else:
            gi = g[i]
            if decay:
                gi = gi + wd * w[i]
            if use_momentum:
                vi = gi if first else v[i] * mu + od * gi
                v[i] = vi
                gi = gi + mu * vi if nesterov else vi
            w[i] = w[i] - lr * gi


def sgd_step_numba(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule):
    if not w.flags.c_contiguous:  # a flat view would be a copy: use the whole-array version
        return sgd_step_reference(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule)
    g, v, s, f = _setup(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule)
    flat_v = v.reshape(-1) if v is not None else np.empty(0, dtype=w.dtype)
    _sgd_kernel(w.reshape(-1), np.ascontiguousarray(g).reshape(-1), flat_v, s["lr"], s["mu"], s["od"], s["wd"],
                s["wd_lr"], f["paper"], f["use_momentum"], f["first"], f["nesterov"], f["decay"])


# ----------------------------------------------------------------------------- xp
def sgd_step_xp(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule):
    """``sgd_step_cupy``'s kernel body, statement by statement, on whole arrays (NumPy or CuPy)."""
    g, v, s, f = _setup(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule)
    if f["paper"]:
        vi = v * s["mu"]
        vi = vi - s["wd_lr"] * w
        vi = vi - s["lr"] * g
        v[...] = vi
        w[...] = w + vi
        return
    gi = g
    if f["decay"]:
        gi = gi + s["wd"] * w
    if f["use_momentum"]:
        vi = gi if f["first"] else v * s["mu"] + s["od"] * gi
        v[...] = vi
        gi = gi + s["mu"] * vi if f["nesterov"] else vi
    w[...] = w - s["lr"] * gi


# --------------------------------------------------------------------------- cupy
def _sgd_body(paper, use_momentum, first, nesterov, decay):
    """The C body of the element-wise kernel for one combination of flags (compile-time constants)."""
    if paper:
        return "T vi = v * mu; vi = vi - wd_lr * w; vi = vi - lr * g; v = vi; w = w + vi;"
    body = "T gi = g;" + (" gi = gi + wd * w;" if decay else "")
    if use_momentum:
        body += " T vi = gi;" if first else " T vi = v * mu + od * gi;"
        body += " v = vi;" + (" gi = gi + mu * vi;" if nesterov else " gi = vi;")
    return body + " w = w - lr * gi;"


def _cuda_kernel(paper, use_momentum, first, nesterov, decay):
    """The element-wise kernel for one combination of flags, named by them (identical sources are
    declared once)."""
    outputs = "T w, T v" if use_momentum else "T w"
    body = _sgd_body(paper, use_momentum, first, nesterov, decay)
    flags = ("paper",) if paper else [name for name, on in [("momentum", use_momentum), ("first", first),
                                                          ("nesterov", nesterov and use_momentum), ("decay", decay)] if on]
    return elementwise_kernel("T g, T lr, T mu, T od, T wd, T wd_lr", outputs, body,
                              "_".join(["minidl_sgd", *flags]), scalars=("lr", "mu", "od", "wd", "wd_lr"))


def _reachable(paper, use_momentum, first, nesterov, decay):
    """Whether _setup can produce these flags: "first" needs momentum; the paper's rule always has
    momentum and never a "first" step."""
    return (use_momentum or not first) and not (paper and (not use_momentum or first))


_CUDA_KERNELS = {flags: _cuda_kernel(*flags) for flags in itertools.product((False, True), repeat=5)
                 if _reachable(*flags)}


def sgd_step_cupy(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule):
    """One pass on the GPU: the cupy.ElementwiseKernel of this flag combination."""
    g, v, s, f = _setup(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule)
    kernel = _CUDA_KERNELS[tuple(f.values())].get()
    args = (g, s["lr"], s["mu"], s["od"], s["wd"], s["wd_lr"], w) + ((v,) if f["use_momentum"] else ())
    kernel(*args)


# ----------------------------------------------------------------------- dispatch
def sgd_step(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule):
    """Update w and state in place (the CUDA kernel for GPU arrays, Numba otherwise)."""
    pick(sgd_step_reference, sgd_step_numba, sgd_step_xp, w, cupy=sgd_step_cupy)(
        w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule)
