"""Datasets with torch.utils.data's names: Dataset, TensorDataset, Subset, ConcatDataset, random_split.

A dataset is anything with ``__len__`` and ``__getitem__(i) -> sample`` (a tuple such as
``(features, label)``, a dict, an array ...); the DataLoader stacks samples into batches with
``default_collate`` and changes nothing else.

The fast path.  minidl's image datasets (FashionMNIST, CIFAR10, ImageFolder) also hand the
loader whole batches of uint8 images at once; ``batch_source(dataset)`` returns that function
(``indices -> (uint8 (n, C, H, W), int64 (n,))``) or None when samples must go one by one through
``__getitem__`` (any other dataset, or a built-in one given a per-sample ``transform=``).
Subset and ConcatDataset pass it on when every dataset under them has one.
"""
from __future__ import annotations

import bisect
import math
import numbers

import numpy as np

from .. import random as _random
from ..tensor import Tensor

__all__ = ["ConcatDataset", "Dataset", "Subset", "TensorDataset", "batch_source", "random_split"]


def batch_source(dataset):
    """The fast path's ``indices -> (uint8 images (n, C, H, W), int64 labels (n,))``, or None.

    minidl's datasets say through ``_uint8_batch_source()``. An object with no ``__getitem__``
    but ``load_batch(indices)`` or ``.images``/``.targets`` (the batch contract) uses those."""
    hook = getattr(dataset, "_uint8_batch_source", None)
    if hook is not None:
        return hook()
    if hasattr(dataset, "__getitem__"):
        return None
    if hasattr(dataset, "load_batch"):
        return dataset.load_batch
    if hasattr(dataset, "images") and hasattr(dataset, "targets"):
        return lambda idx: (dataset.images[idx], np.asarray(dataset.targets)[idx])
    raise TypeError(f"DataLoader: the dataset ({type(dataset).__name__}) has no __getitem__ (nor the batch "
                    "contract: load_batch(indices) or .images and .targets); subclass minidl.data.Dataset")


class Dataset:
    """Base class of map-style datasets: define ``__getitem__(i)`` and ``__len__()`` (as torch)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Sample i is ``(t[i] for t in tensors)``; tensors (minidl Tensors, arrays or lists) share dim 0."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: all tensors need the same size in dim 0, got shapes "
                             f"{[t.shape for t in self.tensors]}")

    def __getitem__(self, index):
        rows = (t.data[index] for t in self.tensors)
        return tuple(Tensor(np.asarray(r) if isinstance(r, np.generic) else r) for r in rows)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples ``indices`` of ``dataset``; keeps ``.classes``, ``.targets`` and the fast path."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}) for a dataset of {n} samples, got "
                             f"{int(self.indices.min())}..{int(self.indices.max())}")
        if hasattr(dataset, "classes"):
            self.classes = dataset.classes
        if hasattr(dataset, "targets"):
            self.targets = np.asarray(dataset.targets)[self.indices]

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return [self.dataset[int(self.indices[i])] for i in index]
        return self.dataset[int(self.indices[index])]

    def __len__(self):
        return len(self.indices)

    @property
    def images(self):
        return self.dataset.images[self.indices]

    def _uint8_batch_source(self):
        base = batch_source(self.dataset)
        if base is None:
            return None
        return lambda idx: base(self.indices[np.asarray(idx, dtype=np.int64)])


class ConcatDataset(Dataset):
    """The datasets one after another: index i falls in the first dataset whose cumulative size exceeds it."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise IndexError(f"ConcatDataset: index {index} out of range for {len(self)} samples")
            index += len(self)
        k = bisect.bisect_right(self.cumulative_sizes, index)
        if k == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {index} out of range for {len(self)} samples")
        return self.datasets[k][index - (self.cumulative_sizes[k - 1] if k else 0)]

    def _uint8_batch_source(self):
        sources = [batch_source(d) for d in self.datasets]
        if any(s is None for s in sources):
            return None
        starts = np.array([0] + self.cumulative_sizes[:-1])

        def load(idx):
            idx = np.asarray(idx, dtype=np.int64)
            part = np.searchsorted(self.cumulative_sizes, idx, side="right")
            images, labels = None, np.empty(len(idx), np.int64)
            for k in np.unique(part):   # one batch load per dataset, then put back in order
                where = np.flatnonzero(part == k)
                im, lab = sources[k](idx[where] - starts[k])
                if images is None:
                    images = np.empty((len(idx),) + im.shape[1:], im.dtype)
                images[where], labels[where] = im, lab
            return images, labels
        return load


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths (ints summing to len(dataset), or
    fractions summing to 1: floor(f * n) each, the remainder added one by one from the first, as torch).

    ``generator``: an int seed or a NumPy Generator; None draws from minidl's seeded "split" stream,
    so ``md.manual_seed`` makes the split reproducible."""
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if all(isinstance(x, numbers.Real) and not isinstance(x, numbers.Integral) for x in lengths) \
            and math.isclose(sum(lengths), 1.0) and sum(lengths) <= 1.0 + 1e-9:
        if any(f < 0 or f > 1 for f in lengths):
            raise ValueError(f"random_split: fractions must be in [0, 1], got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if not all(isinstance(x, numbers.Integral) and x >= 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths must be non-negative ints summing to the dataset's {n} samples, "
                         f"or fractions summing to 1; got {lengths}")
    if generator is None:
        rng = _random.generator("split")
    elif isinstance(generator, np.random.Generator):
        rng = generator
    elif isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        rng = np.random.default_rng(int(generator))
    else:
        raise TypeError(f"random_split: generator must be an int seed or a numpy.random.Generator, got {generator!r}")
    order = rng.permutation(n)
    ends = np.cumsum(lengths)
    return [Subset(dataset, order[end - k:end]) for k, end in zip(lengths, ends)]
