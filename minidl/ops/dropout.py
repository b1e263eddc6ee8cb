"""Dropout as a Function: the mask comes from the counter-based Philox kernel (kernels/dropout.py).

Forward keeps the boolean mask (one byte per element) for backward:
    y = x * scale * mask,   dL/dx = g * scale * mask.
"""
from __future__ import annotations

from ..function import Function
from ..kernels import dropout as kernel


class DropoutFunction(Function):
    def forward(self, x, p, scale, key):
        seed, call = key
        y, self.mask = kernel.dropout_forward(x, p, seed, call, scale)
        self.scale = scale
        return y

    def backward(self, g):
        return kernel.dropout_backward(g, self.mask, self.scale)
