"""Local response normalisation as a Function (kernels in minidl/kernels/lrn.py)."""
from __future__ import annotations

from ..function import Function
from ..kernels import lrn


class LocalResponseNormFunction(Function):
    """b = a * (k + alpha/size * window sum of a^2)^(-beta), PyTorch's formula, over dim 1."""

    def forward(self, x, size, alpha, beta, k):
        self.x, self.settings = x, (size, alpha, beta, k)   # the backward recomputes the scale from x
        return lrn.lrn_forward(x, size, alpha, beta, k)

    def backward(self, g):
        return lrn.lrn_backward(self.x, g, *self.settings)
