"""Operations that rearrange or copy elements without arithmetic: expand, repeat, cat, stack,
clone, and squeeze/unsqueeze (which are reshapes). Each backward sends every output
element's gradient back to the input element it was copied from, summing over copies.
"""
from __future__ import annotations

import itertools

from .. import backend
from ..function import Function
from ..tensor import Tensor
from .basic import Reshape, sum_to


class Expand(Function):
    """Broadcast to ``shape`` (a read-only view, as torch.Tensor.expand)."""

    def forward(self, a, shape):
        self.in_shape = a.shape
        return backend.get_array_module(a).broadcast_to(a, shape)

    def backward(self, g):  # every copy of an element sends its gradient back: a sum
        return sum_to(g, self.in_shape)


class Repeat(Function):
    """Tile ``reps`` times along each dim (torch.Tensor.repeat; reps may add leading dims)."""

    def forward(self, a, reps):
        self.in_shape = (1,) * (len(reps) - a.ndim) + tuple(a.shape)
        self.reps, self.ndim_in = reps, a.ndim
        return backend.get_array_module(a).tile(a, reps)

    def backward(self, g):  # output dim i is (reps[i], n_i) flattened: sum over the reps axes
        split = [m for r, n in zip(self.reps, self.in_shape) for m in (r, n)]
        g = g.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return g.reshape(self.in_shape[len(self.in_shape) - self.ndim_in:])


class Cat(Function):
    """Join tensors along an existing dim (torch.cat)."""

    def forward(self, *arrays, dim):
        self.dim = dim
        self.ends = list(itertools.accumulate(a.shape[dim] for a in arrays))
        return backend.get_array_module(*arrays).concatenate(arrays, axis=dim)

    def backward(self, g):  # each input gets back its own slice
        return tuple(self.xp.split(g, self.ends[:-1], axis=self.dim))


class Stack(Function):
    """Join same-shaped tensors along a new dim (torch.stack)."""

    def forward(self, *arrays, dim):
        self.dim = dim
        return backend.get_array_module(*arrays).stack(arrays, axis=dim)

    def backward(self, g):  # input i gets back slice i along the new dim
        return tuple(self.xp.take(g, i, axis=self.dim) for i in range(g.shape[self.dim]))


class Clone(Function):
    """A copy with its own memory (torch.Tensor.clone); the gradient passes through."""

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


# ------------------------------------------------------------- helpers for the methods
def _dim(dim: int, ndim: int, what: str) -> int:
    if not isinstance(dim, int) or not -ndim <= dim < max(ndim, 1):
        raise IndexError(f"{what}: dim {dim!r} is out of range for a tensor with {ndim} dimensions")
    return dim % max(ndim, 1)


def unsqueeze(t: Tensor, dim: int) -> Tensor:
    """A new dim of size 1 at ``dim`` (which may be ndim: at the end)."""
    dim = _dim(dim, t.ndim + 1, "unsqueeze")
    return Reshape.apply(t, shape=t.shape[:dim] + (1,) + t.shape[dim:])


def squeeze(t: Tensor, dim=None) -> Tensor:
    """Drop dims of size 1: all of them, or only ``dim`` (an int or a tuple), as torch."""
    if dim is None:
        dims = {i for i, n in enumerate(t.shape) if n == 1}
    else:
        dims = {_dim(d, t.ndim, "squeeze") for d in ((dim,) if isinstance(dim, int) else dim)}
        dims = {d for d in dims if t.shape[d] == 1}  # a dim that is not 1 stays, as torch
    return Reshape.apply(t, shape=tuple(n for i, n in enumerate(t.shape) if i not in dims))


def expand(t: Tensor, *sizes) -> Tensor:
    """Broadcast to ``sizes`` (-1 keeps a dim); new dims may be added in front only."""
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    lead = len(sizes) - t.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of shape {t.shape}; "
                         "give at least one per dim")
    shape = tuple(t.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
    for i, n in enumerate(t.shape):
        if n != 1 and shape[i + lead] != n:
            raise ValueError(f"expand: the size of dim {i} is {n} and can only become itself, not "
                             f"{sizes[i + lead]} (tensor shape {t.shape}, sizes {sizes}); only dims of size 1 expand")
    if any(n < 0 for n in shape):
        raise ValueError(f"expand: -1 is not allowed for a new leading dim (sizes {sizes})")
    return Expand.apply(t, shape=shape)


def repeat(t: Tensor, *reps) -> Tensor:
    reps = tuple(reps[0]) if len(reps) == 1 and isinstance(reps[0], (tuple, list)) else reps
    if len(reps) < t.ndim:
        raise ValueError(f"repeat: {len(reps)} repeat counts {reps} for a tensor of shape {t.shape}; "
                         "give at least one per dim")
    return Repeat.apply(t, reps=tuple(int(r) for r in reps))


def _join_check(tensors, what):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{what}: expected a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{what}: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: element {i} is a {type(t).__name__}, not a Tensor")


def cat(tensors, dim: int = 0) -> Tensor:
    """Join along ``dim``; every other dim must match (as torch.cat)."""
    _join_check(tensors, "cat")
    ndim = tensors[0].ndim
    dim = _dim(dim, ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != ndim or t.shape[:dim] + t.shape[dim + 1:] != tensors[0].shape[:dim] + tensors[0].shape[dim + 1:]:
            raise ValueError(f"cat: tensor {i} has shape {t.shape} but tensor 0 has {tensors[0].shape}; "
                             f"all dims except dim {dim} must match")
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join along a new dim ``dim``; all shapes must be equal (as torch.stack)."""
    _join_check(tensors, "stack")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape} but tensor 0 has {tensors[0].shape}; "
                             "stack needs equal shapes")
    return Stack.apply(*tensors, dim=_dim(dim, tensors[0].ndim + 1, "stack"))
