"""The functions torch offers at top level (torch.exp, torch.max, torch.where ...), each
forwarding to the Tensor method or Function that does the work; ``import minidl as md``
then gives ``md.exp(x)`` as ``torch.exp(x)``.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .ops import _flatten, basic, loss
from .ops import math as _math
from .ops.shape import cat, stack  # noqa: F401 - exported from here
from .tensor import Tensor, as_tensor

__all__ = [
    "abs", "allclose", "argmax", "argmin", "cat", "clamp", "clip", "equal", "exp", "flatten", "is_tensor",
    "log", "log_softmax", "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "numel", "permute",
    "relu", "reshape", "sigmoid", "softmax", "sqrt", "squeeze", "stack", "sum", "tanh", "transpose",
    "unsqueeze", "where", "var", "std", "pow", "bmm", "chunk", "split", "isnan", "isinf", "isfinite",
]



def _tensor(x, what) -> Tensor:
    """x itself, or a NumPy/CuPy array as a constant Tensor: minidl's ``t.data`` is the raw array, so
    torch idioms such as ``torch.max(outputs.data, 1)`` hand these functions an array."""
    if isinstance(x, Tensor):
        return x
    if hasattr(x, "__array_interface__") or hasattr(x, "__cuda_array_interface__"):
        return Tensor(x)
    raise TypeError(f"{what}: expected a Tensor, got {type(x).__name__}")


def exp(x): return _tensor(x, "exp").exp()                       # noqa: E704
def log(x): return _tensor(x, "log").log()                       # noqa: E704
def sqrt(x): return _tensor(x, "sqrt").sqrt()                    # noqa: E704
def abs(x): return _tensor(x, "abs").abs()                       # noqa: E704, A001
def sigmoid(x): return _tensor(x, "sigmoid").sigmoid()           # noqa: E704
def tanh(x): return _tensor(x, "tanh").tanh()                    # noqa: E704
def relu(x): return _tensor(x, "relu").relu()                    # noqa: E704
def numel(x): return _tensor(x, "numel").numel()                 # noqa: E704
def is_tensor(x): return isinstance(x, Tensor)                   # noqa: E704


def sum(x, dim=None, keepdim=False):  # noqa: A001
    return _tensor(x, "sum").sum(dim=dim, keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    return _tensor(x, "mean").mean(dim=dim, keepdim=keepdim)


def max(x, dim=None, keepdim=False):  # noqa: A001
    """max(x): the largest element; max(x, dim): (values, indices); max(a, b): elementwise."""
    return _tensor(x, "max").max(dim, keepdim)


def min(x, dim=None, keepdim=False):  # noqa: A001
    return _tensor(x, "min").min(dim, keepdim)


def maximum(a, b):
    return _math.Maximum.apply(_tensor(a, "maximum"), _tensor(b, "maximum"))


def minimum(a, b):
    return _tensor(a, "minimum").minimum(_tensor(b, "minimum"))


def argmax(x, dim=None, keepdim=False):
    return _tensor(x, "argmax").argmax(dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _tensor(x, "argmin").argmin(dim, keepdim)


def matmul(a, b):
    return basic.MatMul.apply(_tensor(a, "matmul"), b)


def mm(a, b):
    """a @ b for 2-D a and b only (torch.mm)."""
    if _tensor(a, "mm").ndim != 2 or _tensor(b, "mm").ndim != 2:
        raise ValueError(f"mm: expected two 2-D tensors, got shapes {a.shape} and {b.shape} (use matmul)")
    return basic.MatMul.apply(a, b)


def where(condition, x, y):
    """x where condition holds, y elsewhere (broadcasting); differentiable in x and y."""
    cond = _tensor(condition, "where").data
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a boolean tensor, got dtype {cond.dtype}")
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    if like is None:
        raise TypeError("where: at least one of x and y must be a Tensor")
    return _math.Where.apply(x, y, cond=backend.to_device(cond, like.device))


def clamp(x, min=None, max=None):  # noqa: A002
    return _tensor(x, "clamp").clamp(min, max)


clip = clamp


def flatten(x, start_dim=0, end_dim=-1):
    return _flatten(_tensor(x, "flatten"), start_dim, end_dim)


def softmax(x, dim):
    return loss.SoftmaxFunction.apply(_tensor(x, "softmax"), dim=dim)


def log_softmax(x, dim):
    return loss.LogSoftmaxFunction.apply(_tensor(x, "log_softmax"), dim=dim)


def unsqueeze(x, dim):
    return _tensor(x, "unsqueeze").unsqueeze(dim)


def squeeze(x, dim=None):
    return _tensor(x, "squeeze").squeeze(dim)


def reshape(x, shape):
    return _tensor(x, "reshape").reshape(shape)


def transpose(x, dim0, dim1):
    return _tensor(x, "transpose").transpose(dim0, dim1)


def permute(x, dims):
    return _tensor(x, "permute").permute(dims)


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    """|a - b| <= atol + rtol * |b| everywhere (broadcasting), as torch.allclose."""
    a, b = _tensor(a, "allclose"), as_tensor(b, like=a)
    return bool(backend.get_array_module(a.data).allclose(a.data, b.data, rtol=rtol, atol=atol,
                                                          equal_nan=equal_nan))


def equal(a, b) -> bool:
    """True when a and b have the same shape and the same values."""
    a, b = _tensor(a, "equal"), _tensor(b, "equal")
    return a.shape == b.shape and bool((a.data == b.data).all())


# ------------------------------------------------------------------ compositions (ops/composite.py)
def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _tensor(x, "var").var(dim, unbiased, keepdim, correction=correction)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _tensor(x, "std").std(dim, unbiased, keepdim, correction=correction)


def pow(x, exponent): return _tensor(x, "pow") ** exponent                  # noqa: E704, A001
def bmm(a, b): return _tensor(a, "bmm").bmm(_tensor(b, "bmm"))             # noqa: E704
def chunk(x, chunks, dim=0): return _tensor(x, "chunk").chunk(chunks, dim)  # noqa: E704
def split(x, size, dim=0): return _tensor(x, "split").split(size, dim)      # noqa: E704
def isnan(x): return _tensor(x, "isnan").isnan()                            # noqa: E704
def isinf(x): return _tensor(x, "isinf").isinf()                            # noqa: E704
def isfinite(x): return _tensor(x, "isfinite").isfinite()                   # noqa: E704
