"""Tensor's operators and methods, bound to the Functions in this package.

Kept apart from tensor.py so the engine's core stays small: this file only
says which Function each operator (``+``, ``@``, ``.sum()``, indexing ...) calls.
"""
from __future__ import annotations

from collections import namedtuple

from ..tensor import Tensor
from . import basic, loss

MaxResult = namedtuple("MaxResult", "values indices")


def _index(index):
    """Tensor indices become their arrays (integer or boolean indexing)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _shape_args(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _transpose(t, dim0=None, dim1=None):
    """Swap two dims (default: the last two, or reverse a 1-D/2-D tensor, as .T)."""
    axes = list(range(t.ndim))
    if dim0 is None:
        axes.reverse()
    else:
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return basic.Permute.apply(t, axes=tuple(axes))


def _max(t, dim=None, keepdim=False):
    """Over everything: a scalar tensor. Along ``dim``: (values, indices), as torch.max."""
    if dim is None:
        return basic.Amax.apply(t)
    values = basic.MaxAlong.apply(t, dim=dim, keepdim=keepdim)
    indices = t.data.argmax(axis=dim)
    return MaxResult(values, Tensor(indices if not keepdim else indices.reshape(values.shape)))


def _flatten(t, start_dim=0, end_dim=-1):
    start, end = start_dim % max(t.ndim, 1), end_dim % max(t.ndim, 1)
    shape = t.shape[:start] + (-1,) + t.shape[end + 1:] if t.ndim else (1,)
    return basic.Reshape.apply(t, shape=shape)


_methods = {
    "__add__": lambda a, b: basic.Add.apply(a, b),
    "__radd__": lambda a, b: basic.Add.apply(b, a),
    "__sub__": lambda a, b: basic.Sub.apply(a, b),
    "__rsub__": lambda a, b: basic.Sub.apply(b, a),
    "__mul__": lambda a, b: basic.Mul.apply(a, b),
    "__rmul__": lambda a, b: basic.Mul.apply(b, a),
    "__truediv__": lambda a, b: basic.Div.apply(a, b),
    "__rtruediv__": lambda a, b: basic.Div.apply(b, a),
    "__neg__": lambda a: basic.Neg.apply(a),
    "__pow__": lambda a, b: basic.Pow.apply(a, b),
    "__rpow__": lambda a, b: basic.Pow.apply(b, a),
    "__matmul__": lambda a, b: basic.MatMul.apply(a, b),
    "__rmatmul__": lambda a, b: basic.MatMul.apply(b, a),
    "__getitem__": lambda a, index: basic.GetItem.apply(a, index=_index(index)),
    "matmul": lambda a, b: basic.MatMul.apply(a, b),
    "exp": lambda a: basic.Exp.apply(a),
    "log": lambda a: basic.Log.apply(a),
    "relu": lambda a: basic.ReLU.apply(a),
    "reshape": lambda a, *shape: basic.Reshape.apply(a, shape=_shape_args(shape)),
    "view": lambda a, *shape: basic.Reshape.apply(a, shape=_shape_args(shape)),
    "permute": lambda a, *dims: basic.Permute.apply(a, axes=_shape_args(dims)),
    "transpose": _transpose,
    "T": property(_transpose),
    "flatten": _flatten,
    "sum": lambda a, dim=None, keepdim=False: basic.Sum.apply(a, dim=dim, keepdim=keepdim),
    "mean": lambda a, dim=None, keepdim=False: basic.Mean.apply(a, dim=dim, keepdim=keepdim),
    "amax": lambda a, dim=None, keepdim=False: basic.Amax.apply(a, dim=dim, keepdim=keepdim),
    "max": _max,
    "softmax": lambda a, dim: loss.Softmax.apply(a, dim=dim),
    "log_softmax": lambda a, dim: loss.LogSoftmax.apply(a, dim=dim),
}
for _name, _method in _methods.items():
    setattr(Tensor, _name, _method)
