"""In-place operations: ``+= -= *= /=``, ``x[i] = v`` and the trailing-underscore methods
(zero_, fill_, copy_, add_, sub_, mul_, div_, clamp_, normal_, uniform_).

They write into the tensor's own array, so every name (and every view) of it sees the
change, and they keep its dtype. Two rules keep gradients honest:

- With grad mode on, a tensor that requires grad (or a write that would make it depend
  on one that does) may not be changed in place: for a leaf, backward would differentiate
  a value the user overwrote (PyTorch's "a leaf Variable that requires grad is being used
  in an in-place operation"); for a computed tensor, minidl does not rewrite the graph.
  Under ``no_grad()`` (an optimizer step, an initialisation) every in-place write is allowed.
- Each write counts up the tensor's version (shared with its views); backward refuses to
  use a Function whose inputs changed after it ran, so a gradient is never computed from
  overwritten values.
"""
from __future__ import annotations


import numpy as np

from .. import backend
from ..grad_mode import is_grad_enabled
from ..random import generator
from ..tensor import Tensor
from .compare import operand


def check_inplace(t: Tensor, name: str, *others) -> None:
    """Raise if writing into t in place could make a gradient wrong (the rules above)."""
    if not is_grad_enabled():
        return
    if t.requires_grad and t.is_leaf:
        raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place operation. "
                           "Wrap the update in `with minidl.no_grad():` (as an optimizer step does), "
                           "or write to a copy")
    if t.requires_grad:
        raise RuntimeError(f"{name}: in-place operation on a tensor of shape {t.shape} that is part of the "
                           f"autograd graph (made by {t.grad_fn!r}); minidl does not record in-place "
                           "operations: write it out of place (y = y + x) instead")
    if any(isinstance(o, Tensor) and o.requires_grad for o in others):
        raise RuntimeError(f"{name}: in-place write of a tensor that requires grad into one that does not "
                           f"(shape {t.shape}); minidl does not record in-place operations: write it out of "
                           "place (y = y + x) instead")


def _value(t: Tensor, other, name):
    """other's array (or number) for writing into t: compare's operand rules, plus Python lists."""
    value = operand(t, np.asarray(other) if isinstance(other, (list, tuple)) else other, name)
    if value is None:
        raise TypeError(f"{name}: expected a Tensor, an array or a number, got {type(other).__name__}")
    return value


def _write(t: Tensor, name, compute):
    """Run compute() (which writes into t.data), with clear errors, and count the write."""
    try:
        compute()
    except TypeError as exc:  # numpy's casting error: e.g. a float result into an integer tensor
        raise TypeError(f"{name}: the result cannot be stored in a tensor of dtype {t.dtype} "
                        f"(in-place operations keep the dtype) [{exc}]") from None
    except ValueError as exc:
        if "read-only" in str(exc):
            raise RuntimeError(f"{name}: the tensor of shape {t.shape} is a read-only view (made by expand); "
                               "clone() it before writing into it") from None
        raise ValueError(f"{name}: cannot write a value of the given shape into a tensor of shape {t.shape} "
                         f"(the value must broadcast to it) [{exc}]") from None
    t._version[0] += 1
    return t


def _binary(ufunc_name, name):
    def method(t: Tensor, other, alpha=None):
        check_inplace(t, name, other)
        b = _value(t, other, name)
        if alpha is not None:
            b = b * alpha
        xp = backend.get_array_module(t.data)
        return _write(t, name, lambda: getattr(xp, ufunc_name)(t.data, b, out=t.data, casting="same_kind"))
    method.__name__ = name
    return method


iadd, isub = _binary("add", "+="), _binary("subtract", "-=")
imul, itruediv = _binary("multiply", "*="), _binary("true_divide", "/=")
add_, sub_ = _binary("add", "add_"), _binary("subtract", "sub_")
mul_, div_ = _binary("multiply", "mul_"), _binary("true_divide", "div_")


def zero_(t: Tensor) -> Tensor:
    return fill_(t, 0, name="zero_")


def fill_(t: Tensor, value, name="fill_") -> Tensor:
    check_inplace(t, name, value)
    value = value.item() if isinstance(value, Tensor) else value
    return _write(t, name, lambda: t.data.fill(value))


def copy_(t: Tensor, src) -> Tensor:
    """Copy src's values into t (broadcasting, converting to t's dtype and device), as torch."""
    check_inplace(t, "copy_", src)
    if isinstance(src, Tensor):
        src = backend.to_device(src.data, t.device)
    else:
        src = _value(t, src, "copy_")
    return _write(t, "copy_", lambda: backend.get_array_module(t.data).copyto(t.data, src, casting="unsafe"))


def clamp_(t: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - torch's argument names
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")
    check_inplace(t, "clamp_", min, max)
    xp = backend.get_array_module(t.data)
    return _write(t, "clamp_", lambda: xp.clip(t.data, min, max, out=t.data))


def _random(t: Tensor, name, draw):
    """Fill t from minidl's seeded generator (md.manual_seed), drawn in float64 then cast."""
    check_inplace(t, name)
    values = draw(generator("init"), t.shape)
    return _write(t, name, lambda: t.data.__setitem__(..., backend.to_device(values.astype(t.dtype), t.device)))


def normal_(t: Tensor, mean=0.0, std=1.0) -> Tensor:
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _random(t, "normal_", lambda rng, shape: rng.normal(mean, std, shape))


def uniform_(t: Tensor, a=0.0, b=1.0) -> Tensor:
    if a > b:
        raise ValueError(f"uniform_: needs a <= b, got a={a}, b={b}")
    return _random(t, "uniform_", lambda rng, shape: rng.uniform(a, b, shape))


def setitem(t: Tensor, index, value) -> None:
    """t[index] = value, in place (same rules as the other in-place operations)."""
    check_inplace(t, "__setitem__", value)
    from . import _index  # noqa: PLC0415 - cycle: minidl/ops/__init__.py imports this module
    value = _value(t, value, "__setitem__")
    index = _index(index)
    _write(t, "__setitem__", lambda: t.data.__setitem__(index, value))
