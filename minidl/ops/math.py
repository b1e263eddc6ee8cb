"""Elementwise maths beyond arithmetic, each a Function with its derivative beside its forward.

Notation as in basic.py: ``g`` is dL/dy, with y's shape; ``xp`` is numpy or cupy.
Where PyTorch picks a value for a derivative at a kink (abs at 0, clamp at its bounds,
maximum at ties), we pick the same one, said in a comment.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..function import Function
from ..tensor import Tensor
from .basic import sum_to


class Abs(Function):
    def forward(self, a):
        self.a = a
        return backend.get_array_module(a).abs(a)

    def backward(self, g):  # d|a|/da = sign(a); 0 at a = 0 (torch's choice)
        return g * self.xp.sign(self.a)


class Sqrt(Function):
    def forward(self, a):
        self.y = backend.get_array_module(a).sqrt(a)
        return self.y

    def backward(self, g):  # d sqrt(a)/da = 1 / (2 sqrt(a))
        return g / (2 * self.y)


class TanhFunction(Function):
    def forward(self, a):
        self.y = backend.get_array_module(a).tanh(a)
        return self.y

    def backward(self, g):  # d tanh(a)/da = 1 - tanh(a)^2
        return g * (1 - self.y * self.y)


class SigmoidFunction(Function):
    def forward(self, a):
        xp = backend.get_array_module(a)
        e = xp.exp(-xp.abs(a))  # never overflows: 1/(1+e^-a) for a >= 0, e^a/(1+e^a) below
        self.y = xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        return self.y

    def backward(self, g):  # d s(a)/da = s(a) (1 - s(a))
        return g * self.y * (1 - self.y)


class Clamp(Function):
    """min(max(a, low), high); either bound may be None."""

    def forward(self, a, low=None, high=None):
        xp = backend.get_array_module(a)
        self.inside = xp.ones(a.shape, dtype=bool)
        if low is not None:
            self.inside &= a >= low
        if high is not None:
            self.inside &= a <= high
        return xp.clip(a, low, high).astype(a.dtype, copy=False)

    def backward(self, g):  # 1 inside [low, high], bounds included (torch's choice), 0 outside
        return g * self.inside


class Maximum(Function):
    """Elementwise max(a, b) with broadcasting."""

    def forward(self, a, b):
        xp = backend.get_array_module(a, b)
        self.a_wins, self.tie = a > b, a == b
        return xp.maximum(a, b)

    def backward(self, g):  # the larger input takes g; a tie splits it in halves (as torch)
        share = self.a_wins + 0.5 * self.tie
        ga = sum_to(g * share, self.inputs[0].shape) if self.needs_input_grad[0] else None
        gb = sum_to(g * (1 - share), self.inputs[1].shape) if self.needs_input_grad[1] else None
        return ga, gb


class Where(Function):
    """cond ? a : b, broadcasting all three; ``cond`` is a boolean array (no gradient)."""

    def forward(self, a, b, cond):
        self.cond = cond
        return backend.get_array_module(a, b).where(cond, a, b)

    def backward(self, g):  # g flows to a where cond holds, to b elsewhere
        xp = self.xp
        ga = sum_to(xp.where(self.cond, g, 0), self.inputs[0].shape) if self.needs_input_grad[0] else None
        gb = sum_to(xp.where(self.cond, 0, g), self.inputs[1].shape) if self.needs_input_grad[1] else None
        return ga, gb


class Cast(Function):
    """A copy in another floating dtype; the gradient comes back in the input's dtype."""

    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)


def cast(t: Tensor, dtype) -> Tensor:
    """t in ``dtype``: differentiable between floating dtypes; an integer or boolean result
    is a plain tensor (no gradient flows through rounding, as in torch)."""
    dtype = np.dtype(dtype)
    if dtype == t.dtype:
        return t
    if dtype.kind == "f":
        return Cast.apply(t, dtype=dtype)
    return Tensor(t.data.astype(dtype))
