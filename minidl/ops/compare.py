"""Comparisons (== != < <= > >=, eq/ne/lt/le/gt/ge) and argmax/argmin: results that carry
no gradient (booleans and indices), so they are plain array operations, not Functions.

``pred == target`` is a boolean Tensor with broadcasting, as in PyTorch, so
``(pred == target).sum()`` counts matches (without these methods Python would compare
the objects' identities and answer a single False).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor

_UFUNCS = {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal"}


def operand(a: Tensor, other, name):
    """other's array for comparing with a, or None when it is not something tensors compare with."""
    if isinstance(other, Tensor):
        if other.device != a.device:
            raise RuntimeError(f"{name}: tensors on different devices ({a.device} {a.shape} and "
                               f"{other.device} {other.shape}); move one with .to(device)")
        return other.data
    if isinstance(other, (numbers.Number, np.generic)):
        return other
    if isinstance(other, np.ndarray) or backend.is_gpu_array(other):
        return backend.to_device(other, a.device)
    return None


def compare(name: str):
    ufunc = _UFUNCS[name]

    def method(a: Tensor, other):
        b = operand(a, other, name)
        if b is None:  # x == None, x == "text": Python's fallback (identity), as torch answers False
            return NotImplemented
        xp = backend.get_array_module(a.data)
        try:
            return Tensor(getattr(xp, ufunc)(a.data, b))
        except ValueError as exc:
            raise ValueError(f"{name}: shapes {a.shape} and {tuple(np.shape(b))} do not broadcast") from exc

    method.__name__ = name
    method.__doc__ = f"Elementwise {ufunc} with broadcasting: a boolean Tensor (no gradient)."
    return method


def _arg(kind):
    def method(a: Tensor, dim=None, keepdim=False):
        """Index of the first maximum/minimum: over the flattened tensor (dim=None) or along dim."""
        if a.numel() == 0:
            raise ValueError(f"{kind}: the tensor is empty (shape {a.shape})")
        if dim is None:
            index = getattr(a.data, kind)()
            return Tensor(index.reshape((1,) * a.ndim) if keepdim else index.reshape(()))
        if not -a.ndim <= dim < max(a.ndim, 1):
            raise IndexError(f"{kind}: dim {dim} is out of range for a tensor of shape {a.shape}")
        index = getattr(a.data, kind)(axis=dim % max(a.ndim, 1) if a.ndim else None)
        return Tensor(backend.get_array_module(index).expand_dims(index, dim) if keepdim and a.ndim else index)
    method.__name__ = kind
    return method


argmax, argmin = _arg("argmax"), _arg("argmin")
