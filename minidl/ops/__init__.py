"""Tensor's operators and methods, bound to the Functions in this package.

Kept apart from tensor.py so the engine's core stays small: this file only
says which Function each operator (``+``, ``@``, ``.sum()``, indexing ...) calls.
"""
from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from .. import backend
from ..tensor import Tensor
from . import basic, compare, composite, inplace, loss, math, shape

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
    """Over everything: a scalar tensor. Along ``dim``: (values, indices), as torch.max.
    With a tensor in place of dim: the elementwise maximum of the two."""
    if isinstance(dim, Tensor):
        return math.Maximum.apply(t, dim)
    if dim is None:
        return basic.Amax.apply(t)
    values = basic.MaxAlong.apply(t, dim=dim, keepdim=keepdim)
    indices = t.data.argmax(axis=dim)
    return MaxResult(values, Tensor(indices if not keepdim else indices.reshape(values.shape)))


def _min(t, dim=None, keepdim=False):
    """As _max, for the minimum: min(x) = -max(-x), which also routes the gradient
    (to the first minimum along a dim; shared among tied minima over everything)."""
    if isinstance(dim, Tensor):
        return _minimum(t, dim)
    if t.dtype.kind in "biu":  # no gradient, and -x would wrap around for unsigned and bool
        if dim is None:
            return Tensor(t.data.min())
        indices = t.data.argmin(axis=dim)
        return MaxResult(Tensor(t.data.min(axis=dim, keepdims=keepdim)),
                         Tensor(indices if not keepdim else t.data.argmin(axis=dim, keepdims=True)))
    if dim is None:
        return -basic.Amax.apply(-t)
    values = -basic.MaxAlong.apply(-t, dim=dim, keepdim=keepdim)
    indices = t.data.argmin(axis=dim)
    return MaxResult(values, Tensor(indices if not keepdim else indices.reshape(values.shape)))


def _minimum(a, b):
    """Elementwise min(a, b) = -max(-a, -b) for floats; integers (no gradient) directly."""
    if a.dtype.kind in "biu" and (not isinstance(b, Tensor) or b.dtype.kind in "biu"):
        b = b.data if isinstance(b, Tensor) else b
        return Tensor(backend.get_array_module(a.data).minimum(a.data, b))
    return -math.Maximum.apply(-a, -b)


def _clamp(t, min=None, max=None):  # noqa: A002 - torch's argument names
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        raise TypeError("clamp: min and max must be numbers here (use md.maximum/md.minimum for tensors)")
    return math.Clamp.apply(t, low=min, high=max)


def _type(t, dtype=None):
    """With no argument, the dtype's name (as torch's "torch.FloatTensor" string); else .to(dtype)."""
    return f"minidl.{t.dtype}" if dtype is None else math.cast(t, dtype)


def _boolean(kind):
    def method(t, dim=None, keepdim=False):
        """any()/all(): a boolean Tensor (no gradient), over everything or along dim."""
        return Tensor(getattr(t.data.astype(bool), kind)(axis=dim, keepdims=keepdim))
    return method


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
    "relu": lambda a: basic.ReLUFunction.apply(a),
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
    "softmax": lambda a, dim: loss.SoftmaxFunction.apply(a, dim=dim),
    "log_softmax": lambda a, dim: loss.LogSoftmaxFunction.apply(a, dim=dim),
    # elementwise maths
    "abs": lambda a: math.Abs.apply(a),
    "__abs__": lambda a: math.Abs.apply(a),
    "sqrt": lambda a: math.Sqrt.apply(a),
    "tanh": lambda a: math.TanhFunction.apply(a),
    "sigmoid": lambda a: math.SigmoidFunction.apply(a),
    "clamp": _clamp,
    "clip": _clamp,
    "min": _min,
    "maximum": lambda a, b: math.Maximum.apply(a, b),
    "minimum": _minimum,
    # shapes and copies
    "unsqueeze": shape.unsqueeze,
    "squeeze": shape.squeeze,
    "expand": shape.expand,
    "expand_as": lambda a, other: shape.expand(a, other.shape),
    "view_as": lambda a, other: basic.Reshape.apply(a, shape=tuple(other.shape)),
    "reshape_as": lambda a, other: basic.Reshape.apply(a, shape=tuple(other.shape)),
    "type_as": lambda a, other: _type(a, other.dtype),
    "repeat": shape.repeat,
    "clone": lambda a: shape.Clone.apply(a),
    # dtypes
    "float": lambda a: math.cast(a, np.float32),
    "double": lambda a: math.cast(a, np.float64),
    "half": lambda a: math.cast(a, np.float16),
    "long": lambda a: math.cast(a, np.int64),
    "int": lambda a: math.cast(a, np.int32),
    "bool": lambda a: math.cast(a, np.bool_),
    "type": _type,
    # comparisons and indices (no gradient)
    "argmax": compare.argmax,
    "argmin": compare.argmin,
    "any": _boolean("any"),
    "all": _boolean("all"),
    # in place
    "__iadd__": inplace.iadd,
    "__isub__": inplace.isub,
    "__imul__": inplace.imul,
    "__itruediv__": inplace.itruediv,
    "__setitem__": inplace.setitem,
    "add_": inplace.add_,
    "sub_": inplace.sub_,
    "mul_": inplace.mul_,
    "div_": inplace.div_,
    "zero_": inplace.zero_,
    "fill_": inplace.fill_,
    "copy_": inplace.copy_,
    "clamp_": inplace.clamp_,
    "normal_": inplace.normal_,
    "uniform_": inplace.uniform_,
}
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    _methods[_name] = _methods[f"__{_name}__"] = compare.compare(_name)


def _numpy_names(method):
    """Also accept NumPy's keyword names, as torch does: axis= for dim=, keepdims= for keepdim=."""
    @functools.wraps(method)
    def wrapper(t, *args, **kwargs):
        for numpy_name, torch_name in (("axis", "dim"), ("keepdims", "keepdim")):
            if numpy_name in kwargs:
                if torch_name in kwargs:
                    raise TypeError(f"{method.__name__}: give {torch_name}= or {numpy_name}=, not both")
                kwargs[torch_name] = kwargs.pop(numpy_name)
        return method(t, *args, **kwargs)
    return wrapper


_methods.update(composite.METHODS)
for _name in ("sum", "mean", "max", "min", "argmax", "argmin", "squeeze", "unsqueeze", "softmax", "log_softmax",
              "any", "all", "flatten", "cumsum", "std", "var", "prod", "norm"):
    if _name in _methods:
        _methods[_name] = _numpy_names(_methods[_name])
for _name, _method in _methods.items():
    setattr(Tensor, _name, _method)
Tensor.is_cuda = property(lambda t: t.device == "gpu")
Tensor.__getattr__ = composite.missing_attribute
