"""Numerical gradient checking by central differences, in float64.

For a function ``fn(*inputs) -> Tensor`` we compare, for every input element
x_i, the analytical dL/dx_i from ``backward`` with the numerical
(L(x_i + eps) - L(x_i - eps)) / (2 eps), where L = sum(fn(*inputs) * r) for a
fixed random r (so every output element contributes, with no cancellation).
"""
from __future__ import annotations

import numpy as np

from . import backend
from .grad_mode import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by gradcheck with the worst element, its index and both values."""


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check fn's backward against central differences; True, or raise GradcheckError.

    ``inputs``: a Tensor or a sequence of them; those with requires_grad=True are
    checked and must be float64 (float32 differences are too coarse to judge by).
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i, t in enumerate(checked):
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {t.dtype}; run gradient checks in float64 "
                            "(md.tensor(x, dtype=md.float64, requires_grad=True))")

    for t in checked:  # perturbing works through a flat view, which needs contiguous data
        t.data = backend.get_array_module(t.data).ascontiguousarray(t.data)
    out = fn(*inputs)
    xp = backend.get_array_module(out.data)
    weights = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))

    def objective():
        with no_grad():
            return float((fn(*inputs).data * weights).sum())

    for t in checked:
        t.grad = None
    (out * Tensor(weights)).sum().backward()

    for number, t in enumerate(checked):
        analytical = backend.asnumpy(t.grad.data) if t.grad is not None else np.zeros(t.shape)
        numerical = np.zeros(t.shape)
        flat = t.data.reshape(-1)  # a view: writing into it perturbs the input
        for i in range(flat.size):
            original = float(flat[i])
            flat[i] = original + eps
            plus = objective()
            flat[i] = original - eps
            minus = objective()
            flat[i] = original
            numerical.reshape(-1)[i] = (plus - minus) / (2 * eps)
        excess = np.abs(analytical - numerical) - (atol + rtol * np.abs(numerical))
        if excess.size and excess.max() > 0:
            worst = np.unravel_index(int(np.argmax(excess)), t.shape)
            raise GradcheckError(
                f"gradcheck failed for input {number} (shape {t.shape}) at index {tuple(int(j) for j in worst)}: "
                f"numerical {numerical[worst]:.8g}, analytical {analytical[worst]:.8g} "
                f"(atol={atol}, rtol={rtol}, eps={eps}); "
                f"{int((excess > 0).sum())} of {excess.size} elements out of tolerance")
    return True
