"""Conv2d as a Function: the kernels of minidl/kernels/conv.py behind autograd.

forward saves x and w (not the column matrix: backward rebuilds it chunk by chunk,
so the memory held between forward and backward is only the inputs themselves).
Derivations: docs/kernels/conv.md.
"""
from __future__ import annotations

from ..function import Function
from ..kernels import conv as kernels


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b; x (N, C, H, W), w (O, C/groups, kh, kw), b (O,) or absent."""

    def forward(self, x, w, b=None, *, stride=(1, 1), padding=(0, 0), groups=1):
        self.x, self.w, self.has_bias = x, w, b is not None
        self.stride, self.padding, self.groups = stride, padding, groups
        return kernels.conv2d_forward(x, w, b, stride, padding, groups)

    def backward(self, g):
        need = self.needs_input_grad
        dx, dw, db = kernels.conv2d_backward(
            self.x, self.w, g, self.stride, self.padding, self.groups,
            need_dx=need[0], need_dw=need[1], need_db=self.has_bias and need[2])
        return (dx, dw, db) if self.has_bias else (dx, dw)
