"""Elementwise activations beyond ReLU: the F.* entry points of sigmoid and tanh (their Functions are in
ops/math.py, beside the other elementwise maths) and leaky ReLU."""
from __future__ import annotations

import numbers

from .. import backend
from ..function import Function
from ..tensor import Tensor
from .math import SigmoidFunction, TanhFunction


class LeakyReLUFunction(Function):
    def forward(self, x, negative_slope):
        xp = backend.get_array_module(x)
        self.slope = xp.where(x > 0, 1, negative_slope).astype(x.dtype)  # dy/dx: 1 for x > 0, else slope
        return x * self.slope

    def backward(self, g):
        return g * self.slope


def _check(name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating-point, got dtype {x.dtype} (shape {x.shape})")


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise (torch.sigmoid)."""
    _check("sigmoid", x)
    return SigmoidFunction.apply(x)


def tanh(x):
    """Hyperbolic tangent, elementwise (torch.tanh)."""
    _check("tanh", x)
    return TanhFunction.apply(x)


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False):
    """x for x > 0, negative_slope * x otherwise (torch.nn.functional.leaky_relu); ``inplace`` is
    accepted for PyTorch compatibility, the result is always a new tensor."""
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}")
    _check("leaky_relu", x)
    return LeakyReLUFunction.apply(x, negative_slope=float(negative_slope))
