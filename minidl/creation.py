"""Making tensors, with torch's names and defaults: arange, full, eye, linspace, rand, randint,
empty, the *_like functions, from_numpy.

Defaults as torch: float results are float32; integer ones (arange of ints, randint) int64;
``full`` takes its dtype from the fill value. Random ones draw from minidl's seeded generator
(``md.manual_seed``). Every function takes ``dtype=``, ``device=`` and ``requires_grad=``.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import backend
from .random import generator
from .tensor import Tensor


def _shape(size, what):
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise ValueError(f"{what}: sizes must be non-negative integers, got {shape}")
    return tuple(int(n) for n in shape)


def _make(array, dtype, device, requires_grad, default=np.float32) -> Tensor:
    """A Tensor of array (host NumPy) in dtype (or ``default``) on device."""
    array = np.asarray(array).astype(dtype or default, copy=False)
    return Tensor(backend.to_device(array, backend.check_device(device)), requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """[start, end) in steps of step (arange(end) starts at 0); int64 when all are integers."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    return _make(np.arange(start, end, step), dtype, device, requires_grad, np.int64 if ints else np.float32)


def linspace(start, end, steps, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    return _make(np.linspace(start, end, steps), dtype, device, requires_grad)


def eye(n, m=None, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _make(np.eye(n, m), dtype, device, requires_grad)


def full(size, fill_value, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of ``size`` filled with fill_value; dtype from the value (bool, int64, float32)."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    if not isinstance(fill_value, (numbers.Number, np.generic)):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    default = np.bool_ if isinstance(fill_value, (bool, np.bool_)) else \
        np.int64 if isinstance(fill_value, (int, np.integer)) else np.float32
    return _make(np.full(_shape((size,), "full"), fill_value), dtype, device, requires_grad, default)


def empty(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A tensor of ``size`` (filled with zeros here: minidl never hands out uninitialised memory)."""
    return _make(np.zeros(_shape(size, "empty")), dtype, device, requires_grad)


def rand(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _make(generator("init").random(_shape(size, "rand")), dtype, device, requires_grad)


def normal(mean, std, size=None, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Samples of N(mean, std^2), as torch.normal(mean, std, size) with float mean and std
    (d2l writes its weights so); tensor-valued mean or std are not provided."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (mean, std)):
        raise TypeError(f"normal: mean and std must be numbers (tensor-valued ones are not provided), got "
                        f"{type(mean).__name__} and {type(std).__name__}")
    if size is None:
        raise TypeError("normal: give the size, as normal(mean, std, size=(rows, cols))")
    if not std >= 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    return _make(generator("init").normal(mean, std, _shape((size,), "normal")), dtype, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Integers in [low, high), as torch.randint(high, size) or torch.randint(low, high, size)."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    if size is None or high is None:
        raise TypeError("randint: give randint(high, size) or randint(low, high, size), size a tuple")
    if high <= low:
        raise ValueError(f"randint: needs low < high, got low={low}, high={high}")
    return _make(generator("init").integers(low, high, _shape((size,), "randint")), dtype, device,
                 requires_grad, np.int64)


def _like(t: Tensor, fill, dtype, device, requires_grad):
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a Tensor, got {type(t).__name__}")
    return _make(np.full(t.shape, fill), dtype or t.dtype, device or t.device, requires_grad)


def zeros_like(t, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, 0, dtype, device, requires_grad)


def ones_like(t, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, 1, dtype, device, requires_grad)


def full_like(t, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, fill_value, dtype, device, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing the NumPy array's memory (writes to either show in both), as torch."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    if array.dtype == object:
        raise TypeError("from_numpy: arrays of Python objects cannot become tensors")
    return Tensor(array)
