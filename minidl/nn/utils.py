"""Gradient clipping (torch.nn.utils.clip_grad_norm_ and clip_grad_value_), in place on .grad."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor


def _grads(where: str, parameters):
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: parameters must be Tensors, got a {type(p).__name__}")
    return [p.grad.data for p in params if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so their joint norm is at most max_norm; returns the norm before.

    total = (sum_p ||grad_p||^q)^(1/q) (the largest |g| for q = inf); every gradient is multiplied
    by min(1, max_norm / (total + 1e-6)), as torch does.
    """
    where = "clip_grad_norm_"
    for arg, value in (("max_norm", max_norm), ("norm_type", norm_type)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
            raise ValueError(f"{where}: {arg} must be a number, got {value!r}")
    if norm_type <= 0:
        raise ValueError(f"{where}: norm_type must be > 0 (or inf), got {norm_type}")
    grads = _grads(where, parameters)
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))
    xp = backend.get_array_module(grads[0])
    q = float(norm_type)
    if math.isinf(q):
        norms = [xp.abs(g).max() if g.size else xp.zeros((), g.dtype) for g in grads]
        total = xp.stack([xp.asarray(n) for n in norms]).max()
    else:
        total = xp.stack([(xp.abs(g) ** q).sum() ** (1 / q) for g in grads])
        total = (total ** q).sum() ** (1 / q)
    total_host = float(backend.asnumpy(total))
    if error_if_nonfinite and not math.isfinite(total_host):
        raise RuntimeError(f"{where}: the total norm of order {norm_type} of the gradients is {total_host}; "
                           f"pass error_if_nonfinite=False to clip anyway")
    coef = min(1.0, float(max_norm) / (total_host + 1e-6))
    for g in grads:
        g *= g.dtype.type(coef)
    return Tensor(xp.asarray(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real) or not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be a number >= 0, got {clip_value!r}")
    for g in _grads("clip_grad_value_", parameters):
        backend.get_array_module(g).clip(g, -clip_value, clip_value, out=g)
