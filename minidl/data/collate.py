"""default_collate: a list of samples -> one batch, by torch.utils.data.default_collate's rules.

Stacking is the only change made to the values; dtypes follow torch:

| each sample's element           | the batch's element                                     |
|---------------------------------|---------------------------------------------------------|
| minidl Tensor                   | Tensor, stacked on a new dim 0, dtype kept              |
| NumPy array or NumPy scalar     | Tensor, stacked, dtype kept (float64 stays float64)     |
| Python int (bool)               | int64 (bool) Tensor of shape (N,)                       |
| Python float                    | float64 Tensor of shape (N,) (torch's rule: cast it with .float() for float32) |
| str / bytes                     | the list of them, unchanged                             |
| dict                            | dict of the collated values, key by key                 |
| tuple / list / namedtuple       | list (namedtuple: the same type) of the collated positions; all samples must have the same length |

Anything else (None, a PIL image: add ``transforms.ToTensor()``) is a TypeError naming its type.
Arrays of different shapes cannot be stacked: a ValueError giving both shapes.
"""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor

__all__ = ["default_collate"]


def _stack(arrays, what):
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        other = next(a.shape for a in arrays if a.shape != first)
        raise ValueError(f"default_collate: cannot stack {what} of different shapes into a batch, e.g. {first} "
                         f"and {other}; resize them to one shape (a transform) or pass your own collate_fn")
    xp = backend.get_array_module(arrays[0])
    return Tensor(xp.stack(arrays))


def default_collate(batch):
    """Stack a list of samples into a batch (see the module docstring for the rules)."""
    if not isinstance(batch, collections.abc.Sequence) or len(batch) == 0:
        raise TypeError(f"default_collate: expected a non-empty list of samples, got {type(batch).__name__}")
    elem = batch[0]
    if isinstance(elem, Tensor):
        if not all(isinstance(b, Tensor) for b in batch):
            raise TypeError("default_collate: a batch mixes Tensors with other types")
        return _stack([b.data for b in batch], "tensors")
    if isinstance(elem, (np.ndarray, np.generic)) and elem.dtype.kind not in "OUSV":
        return _stack([np.asarray(b) for b in batch], "arrays")
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {key: default_collate([b[key] for b in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):   # namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if len({len(b) for b in batch}) != 1:
            raise ValueError(f"default_collate: each sample in the batch must have the same length, got lengths "
                             f"{sorted({len(b) for b in batch})}")
        return [default_collate(list(s)) for s in zip(*batch)]
    hint = "; add transforms.ToTensor() to the dataset's transform" if type(elem).__module__.startswith("PIL") else ""
    raise TypeError(f"default_collate: a batch must hold Tensors, NumPy arrays, numbers, strings, dicts or "
                    f"sequences; found {type(elem).__module__}.{type(elem).__name__}{hint}")
