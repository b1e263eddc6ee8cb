"""Model parallelism: a differentiable all-gather, the one exchange a layer split across ranks needs.

A layer split by its output units (rank r holds units [r*n, (r+1)*n) of every rank's n) computes
its share from the FULL input; when the previous layer is split too, each rank holds only its own
slice of that input, so the ranks swap slices first::

    full = all_gather(mine, dim=1, name="fc7 input")   # (N, world*n) on every rank, rank 0's slice first

Backward. Rank r's slice of ``full`` fed every rank's share of the next layer, so its gradient is
the SUM over ranks of the gradient slice [r*n, (r+1)*n): a reduce-scatter (``grad="sum"``, the
default). Where everything after the gather is the same computation on every rank (the logits
going into a loss every rank computes alike), the gradients are identical copies and rank r just
keeps its own slice, with no message (``grad="slice"``).

Traffic. Every gather counts the bytes this rank sends, per ``name``: forward its slice to each
other rank, backward (``"sum"``) the other ranks' gradient slices. ``bytes_sent()`` returns the
counts, ``reset_bytes_sent()`` clears them. A small shape exchange precedes each gather (so a rank
with another shape raises instead of mixing data); its few bytes are not counted.
"""
from __future__ import annotations

import numpy as np

from .. import distributed as dist
from ..function import Function
from ..tensor import Tensor

__all__ = ["AllGather", "all_gather", "bytes_sent", "reset_bytes_sent"]

_traffic: dict = {}   # name -> {"forward": bytes, "backward": bytes}


def bytes_sent() -> dict:
    """{name: {"forward": bytes, "backward": bytes}} this rank has sent through all_gather since the last reset."""
    return {name: dict(counts) for name, counts in _traffic.items()}


def reset_bytes_sent() -> None:
    _traffic.clear()


def _count(name, direction, nbytes):
    _traffic.setdefault(name, {"forward": 0, "backward": 0})[direction] += int(nbytes)


def _check_same_shape(group, shape, name):
    """Every rank's piece must have the same shape: gather them (a few int64s) and compare."""
    mine = np.array([len(shape), *shape] + [0] * (7 - len(shape)), dtype=np.int64)   # 8 int64s on every rank
    every = np.empty(8 * group.size, dtype=np.int64)
    group.all_gather(every, mine, f"all_gather({name!r}) shape check").wait()
    every = every.reshape(group.size, 8)
    if (every != mine).any():
        shapes = {r: tuple(int(n) for n in row[1:1 + row[0]]) for r, row in enumerate(every)}
        raise ValueError(f"all_gather({name!r}): every rank must gather a piece of the same shape; "
                         f"the ranks have {shapes}")


class AllGather(Function):
    """forward: the ranks' pieces x (..., n, ...) concatenated along ``dim`` in rank order (..., world*n, ...);
    backward: rank r's gradient is the sum over ranks (``grad="sum"``) of the slice [r*n, (r+1)*n) along
    ``dim``, or this rank's own slice alone (``grad="slice"``, for replicated computation after the gather)."""

    def forward(self, x, dim=1, grad="sum", name="all_gather"):
        group = dist._require("all_gather")
        if x.ndim > 7:
            raise ValueError(f"all_gather({name!r}): at most 7 dims, got shape {tuple(x.shape)}")
        _check_same_shape(group, x.shape, name)
        self.dim, self.grad, self.name, self.group = dim, grad, name, group
        self.n = x.shape[dim]
        piece = self.xp.ascontiguousarray(self.xp.moveaxis(x, dim, 0))        # (n, rest...) rank's rows
        out = self.xp.empty((group.size * self.n, *piece.shape[1:]), dtype=x.dtype)
        group.all_gather(out, piece, f"all_gather({name!r})").wait()
        _count(name, "forward", piece.nbytes * (group.size - 1))
        return self.xp.ascontiguousarray(self.xp.moveaxis(out, 0, dim))

    def backward(self, g):
        rank, size, xp = self.group.rank, self.group.size, self.xp
        rows = xp.moveaxis(g, self.dim, 0)                                  # (world*n, rest...)
        if self.grad == "slice":
            mine = rows[rank * self.n:(rank + 1) * self.n]
        else:
            mine = xp.empty((self.n, *rows.shape[1:]), dtype=g.dtype)
            self.group.reduce_scatter(mine, xp.ascontiguousarray(rows), f"all_gather({self.name!r}) backward").wait()
            _count(self.name, "backward", mine.nbytes * (size - 1))
        return xp.ascontiguousarray(xp.moveaxis(mine, 0, self.dim))


def all_gather(x, dim: int = 1, grad: str = "sum", name: str = "all_gather"):
    """Differentiable all-gather of Tensor ``x`` along ``dim`` over the process group (see AllGather)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"all_gather({name!r}): x must be a Tensor, got {type(x).__name__}")
    if grad not in ("sum", "slice"):
        raise ValueError(f"all_gather({name!r}): grad must be 'sum' or 'slice', got {grad!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -x.ndim <= dim < x.ndim:
        raise ValueError(f"all_gather({name!r}): dim must be in [{-x.ndim}, {x.ndim}) for shape {tuple(x.shape)}, "
                         f"got {dim!r}")
    return AllGather.apply(x, dim=dim % x.ndim, grad=grad, name=name)
