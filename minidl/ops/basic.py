"""The engine's elementary operations, each a Function with its backward beside its forward.

Notation: ``g`` is the gradient arriving from the output (dL/dy, y's shape).
Binary operations broadcast like NumPy; their backward sums the gradient back
to each input's shape (``sum_to``).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..function import Function
from ..kernels import relu as relu_kernels


def sum_to(g, shape):
    """Sum g over the axes that broadcasting added or stretched, so it gets ``shape``."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


def promote(a, b):
    """The operands of a binary operation in one dtype, as torch: an integer or boolean operand
    takes the floating one's dtype (NumPy would widen int64 with float32 to float64)."""
    if a.dtype.kind == "f" and b.dtype.kind in "biu":
        return a, b.astype(a.dtype)
    if b.dtype.kind == "f" and a.dtype.kind in "biu":
        return a.astype(b.dtype), b
    return a, b


# ----------------------------------------------------------------- arithmetic
class Add(Function):
    def forward(self, a, b):
        a, b = promote(a, b)
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return sum_to(g, self.shapes[0]), sum_to(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        a, b = promote(a, b)
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return sum_to(g, self.shapes[0]), sum_to(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        a, b = promote(a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, g):  # d(ab)/da = b, d(ab)/db = a
        ga = sum_to(g * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(g * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        if a.dtype.kind in "biu" and b.dtype.kind in "biu":  # true division of integers: float32, as torch
            a, b = a.astype(np.float32), b.astype(np.float32)
        a, b = promote(a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, g):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        ga = sum_to(g / self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-g * self.a / (self.b * self.b), self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Pow(Function):
    def forward(self, a, b):
        a, b = promote(a, b)
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, g):  # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b ln a
        ga = sum_to(g * self.b * self.a ** (self.b - 1), self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(g * self.y * self.xp.log(self.a), self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class MatMul(Function):
    """a @ b for 2-D a (n, k) and b (k, m), or batched (..., n, k) @ (..., k, m)."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not match "
                             f"(need (..., n, k) @ (..., k, m), both at least 2-D)")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):  # dL/da = g b^T, dL/db = a^T g
        xp = self.xp
        ga = sum_to(g @ xp.swapaxes(self.b, -1, -2), self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(xp.swapaxes(self.a, -1, -2) @ g, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


# -------------------------------------------------------------- elementwise
class Exp(Function):
    def forward(self, a):
        self.y = backend.get_array_module(a).exp(a)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    def forward(self, a):
        self.a = a
        return backend.get_array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class ReLUFunction(Function):
    def forward(self, a):  # y = max(a, 0) and the mask a > 0 (kernels/relu.py: why max, NaN, inf)
        y, self.positive = relu_kernels.relu_forward(a)
        return y

    def backward(self, g):
        return relu_kernels.relu_backward(g, self.positive)


# ------------------------------------------------------------------- shape
class Reshape(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


class Permute(Function):
    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, g):
        return g.transpose(np.argsort(self.axes))


class GetItem(Function):
    def forward(self, a, index):
        self.in_shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        grad = self.xp.zeros(self.in_shape, dtype=self.dtype)
        backend.scatter_add(grad, self.index, g)  # repeated indices add up
        return grad


class ToDevice(Function):
    def forward(self, a, device):
        self.source = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, g):
        return backend.to_device(g, self.source)


# -------------------------------------------------------------- reductions
def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    for d in dims:
        if not -ndim <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dimensions")
    return tuple(d % max(ndim, 1) for d in dims)


def _expand_back(g, in_shape, axes, keepdim):
    """Re-insert the reduced axes of g (when keepdim=False) so it broadcasts against the input."""
    if not keepdim:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(in_shape)])
    return g


class Sum(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.in_shape, self.axes, self.keepdim = a.shape, _axes(dim, a.ndim), keepdim
        return a.sum(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        g = _expand_back(g, self.in_shape, self.axes, self.keepdim)
        return self.xp.broadcast_to(g, self.in_shape).copy()


class Mean(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.in_shape, self.axes, self.keepdim = a.shape, _axes(dim, a.ndim), keepdim
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        return a.mean(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        g = _expand_back(g, self.in_shape, self.axes, self.keepdim) / self.count
        return self.xp.broadcast_to(g, self.in_shape).copy()


class Amax(Function):
    """Maximum over axes; the gradient is shared evenly among tied maxima (torch.amax's rule)."""

    def forward(self, a, dim=None, keepdim=False):
        self.in_shape, self.axes, self.keepdim = a.shape, _axes(dim, a.ndim), keepdim
        self.a = a
        return a.max(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        y = self.a.max(axis=self.axes, keepdims=True)
        mask = (self.a == y)
        g = _expand_back(g, self.in_shape, self.axes, self.keepdim)
        return mask * (g / mask.sum(axis=self.axes, keepdims=True))


class MaxAlong(Function):
    """Maximum along one dim; the gradient goes to the first maximum (torch.max(x, dim)'s values)."""

    def forward(self, a, dim, keepdim=False):
        xp = backend.get_array_module(a)
        self.in_shape, self.dim, self.keepdim = a.shape, _axes(dim, a.ndim)[0], keepdim
        self.index = xp.expand_dims(a.argmax(axis=self.dim), self.dim)
        values = xp.take_along_axis(a, self.index, axis=self.dim)
        return values if keepdim else values.squeeze(self.dim)

    def backward(self, g):
        xp = self.xp
        grad = xp.zeros(self.in_shape, dtype=g.dtype)
        g = g if self.keepdim else xp.expand_dims(g, self.dim)
        xp.put_along_axis(grad, self.index, g, axis=self.dim)
        return grad
