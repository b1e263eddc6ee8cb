"""Tensor methods that PyTorch programs use and that are compositions of existing differentiable
operations (so they need no backward of their own): var/std, pow, t/mm/bmm, chunk/split,
masked_fill, new_zeros/new_ones/new_full/new_tensor, nelement, and the float tests isnan/isinf/isfinite.
"""
from __future__ import annotations

import numbers

from .. import backend
from ..creation import full
from ..tensor import Tensor, tensor


def _dims(t, dim):
    """``dim`` (None, an int or a tuple) as a tuple of non-negative axes, checked against t.ndim."""
    dims = tuple(range(t.ndim)) if dim is None else (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    for d in dims:
        if not -t.ndim <= d < max(t.ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor of shape {t.shape}")
    return tuple(d % max(t.ndim, 1) for d in dims)


def var(t, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """sum((t - mean)^2) / (n - correction) over ``dim``; correction 1 (Bessel's) unless unbiased=False."""
    if unbiased is not None and correction is not None:
        raise TypeError("var: give unbiased= or correction=, not both")
    correction = (0 if unbiased is False else 1) if correction is None else correction
    dims = _dims(t, dim)
    n = 1
    for d in dims:
        n *= t.shape[d]
    centred = t - t.mean(dim=dims, keepdim=True)
    return (centred * centred).sum(dim=dims, keepdim=keepdim) / max(n - correction, 0)


def std(t, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(t, dim, unbiased, keepdim, correction=correction).sqrt()


def pow_(t, exponent):
    return t ** exponent


def t_(t):
    """The transpose of a tensor of at most 2 dims (torch.Tensor.t)."""
    if t.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, got shape {t.shape}; use transpose(dim0, dim1)")
    return t.transpose(0, 1) if t.ndim == 2 else t


def mm(a, b):
    if a.ndim != 2 or not isinstance(b, Tensor) or b.ndim != 2:
        raise RuntimeError(f"mm: both operands must be 2-D, got shapes {a.shape} and {getattr(b, 'shape', b)}")
    return a @ b


def bmm(a, b):
    if a.ndim != 3 or not isinstance(b, Tensor) or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: both operands must be 3-D with the same batch size, got shapes {a.shape} and "
                           f"{getattr(b, 'shape', b)}")
    return a @ b


def _slices(t, dim, bounds):
    dim = _dims(t, dim)[0]
    lead = (slice(None),) * dim
    return tuple(t[lead + (slice(start, stop),)] for start, stop in bounds)


def split(t, split_size_or_sections, dim=0):
    """Pieces of ``split_size`` along dim (the last may be smaller), or of the given section sizes."""
    n = t.shape[_dims(t, dim)[0]]
    if isinstance(split_size_or_sections, numbers.Integral):
        size = int(split_size_or_sections)
        if size < 1:
            raise ValueError(f"split: split_size must be >= 1, got {size}")
        sizes = [min(size, n - start) for start in range(0, n, size)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split: section sizes {sizes} must be >= 0 and sum to dim {dim}'s size {n}")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return _slices(t, dim, [(s, s + k) for s, k in zip(starts, sizes)])


def chunk(t, chunks, dim=0):
    """At most ``chunks`` pieces of equal size ceil(n / chunks) along dim, as torch.chunk."""
    if isinstance(chunks, bool) or not isinstance(chunks, numbers.Integral) or chunks < 1:
        raise ValueError(f"chunk: chunks must be a positive integer, got {chunks!r}")
    n = t.shape[_dims(t, dim)[0]]
    return split(t, max(1, -(-n // int(chunks))), dim)


def masked_fill(t, mask, value):
    """t with ``value`` where the boolean mask (broadcast to t's shape) is True; gradient flows elsewhere."""
    mask = mask.data if isinstance(mask, Tensor) else mask
    if getattr(mask, "dtype", None) is None or mask.dtype.kind != "b":
        raise TypeError(f"masked_fill: mask must be a boolean tensor, got {getattr(mask, 'dtype', type(mask))}")
    keep = Tensor(backend.get_array_module(t.data).logical_not(mask).astype(t.dtype))
    fill = Tensor(backend.get_array_module(t.data).asarray(mask, dtype=t.dtype) * t.dtype.type(value))
    return t * keep + fill


def _new(fill):
    def method(t, *size, dtype=None, device=None, requires_grad=False):
        return full(size[0] if len(size) == 1 and not isinstance(size[0], numbers.Integral) else size, fill,
                    dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)
    return method


def new_full(t, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    return _new(fill_value)(t, size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_tensor(t, data, *, dtype=None, device=None, requires_grad=False):
    return tensor(data, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def _test(name):
    def method(t):
        """A boolean tensor (no gradient), elementwise."""
        return Tensor(getattr(backend.get_array_module(t.data), name)(t.data))
    method.__name__ = name
    return method


METHODS = {
    "var": var, "std": std, "pow": pow_, "t": t_, "mm": mm, "bmm": bmm, "split": split, "chunk": chunk,
    "masked_fill": masked_fill, "new_zeros": _new(0), "new_ones": _new(1), "new_full": new_full,
    "new_tensor": new_tensor, "nelement": lambda t: t.numel(),
    "isnan": _test("isnan"), "isinf": _test("isinf"), "isfinite": _test("isfinite"),
}


# What a PyTorch program may reach for and minidl does not provide: the error names it and says
# what to do instead (docs/from-pytorch.md has the whole list).
_NOT_PROVIDED = {
    "retain_grad": "gradients of non-leaf tensors are not kept; read one during backward with "
                   "t.register_hook(fn)",
    "cumsum": "no backward is written for it; use np.cumsum(t.numpy()) for a value without gradient",
    "cumprod": "no backward is written for it; use np.cumprod(t.numpy()) for a value without gradient",
    "prod": "no backward is written for it; use np.prod(t.numpy()) for a value without gradient",
    "topk": "use t.argmax(dim) for the best one, or np.argsort(t.numpy()) for a ranking without gradient",
    "sort": "use np.sort / np.argsort on t.numpy() (no gradient)",
    "to_sparse": "sparse tensors are not provided",
    "share_memory_": "minidl has no multiprocessing tensors (DataLoader workers are threads)",
}


def missing_attribute(t, name):
    """Tensor.__getattr__: only called for names Tensor does not have."""
    if name.startswith("_"):
        raise AttributeError(name)
    hint = _NOT_PROVIDED.get(name, "see docs/from-pytorch.md for what minidl provides and the minidl way")
    raise AttributeError(f"'Tensor' object has no attribute {name!r}: minidl does not provide torch.Tensor.{name}; "
                         f"{hint}")
