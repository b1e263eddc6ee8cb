"""DataLoader: batches of float32 images in [0, 1], deterministic for bit-identical resumption.

``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, transform=None, prefetch=2)``
yields ``(x, y)``: x float32 NumPy (N, C, H, W) = uint8 / 255, then ``transform(x, rng)``;
y int64 (N,).

Determinism. ``seed = minidl.random.initial_seed()`` is read once, when the loader is made.
Everything random is a function of (seed, epoch, batch) alone:

- the order of epoch e: ``np.random.default_rng([seed, 0, e]).permutation(n)`` (``arange(n)``
  without shuffling);
- the augmentation of batch b of epoch e: ``transform(x, np.random.default_rng([seed, 1, e, b]))``.

No stream is shared between batches, so the prefetch thread cannot change the result, and
``loader.epoch(e, start_batch=k)`` (resuming mid-epoch) yields exactly the tail of
``loader.epoch(e)``. ``iter(loader)`` runs epochs ``loader.next_epoch`` = 0, 1, 2, ... on
successive calls (set ``next_epoch`` when resuming).

Prefetching. With ``prefetch > 0`` a daemon thread builds the next ``prefetch`` batches
(a bounded queue) while the consumer trains on the current one; NumPy and Pillow release
the GIL for most of that work. An exception in the thread is re-raised in the consumer.
Closing the iterator (``close()``, leaving a ``with`` block, or dropping the last reference)
stops the thread; being a daemon it never holds up interpreter exit. ``prefetch=0`` builds
batches in the consumer's thread.
"""
from __future__ import annotations

import math
import queue
import threading

import numpy as np

from .. import random as _random

__all__ = ["DataLoader"]

_END = object()


def _fetch(dataset, indices):
    """uint8 (n, C, H, W) images and int64 (n,) labels of ``indices`` from any of the supported datasets."""
    if hasattr(dataset, "load_batch"):
        images, labels = dataset.load_batch(indices)
    elif hasattr(dataset, "images") and hasattr(dataset, "targets"):
        images, labels = dataset.images[indices], dataset.targets[indices]
    else:
        items = [dataset[int(i)] for i in indices]
        images = np.stack([np.asarray(im) for im, _ in items])
        labels = np.array([lab for _, lab in items])
    return images, np.asarray(labels, dtype=np.int64)


class _Failure:
    def __init__(self, error):
        self.error = error


def _produce(make_batch, batches, q, stop):
    """Thread body: build batches in order into the bounded queue until done or told to stop.

    It holds no reference to the consumer's iterator, so dropping the iterator can stop it."""
    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for b in batches:
            if stop.is_set():
                return
            if not put(make_batch(b)):
                return
    except BaseException as e:  # noqa: BLE001  (re-raised in the consumer)
        put(_Failure(e))
        return
    put(_END)


class _EpochIterator:
    """Iterator over the batches of one epoch, optionally fed by a prefetch thread."""

    def __init__(self, loader, epoch, start_batch):
        self.epoch = epoch
        self._batches = iter(range(start_batch, len(loader)))
        order = loader.order(epoch)
        make = loader._batch_maker(epoch, order)
        self._make = None
        self._thread = None
        self._closed = False
        if loader.prefetch > 0:
            self._queue = queue.Queue(maxsize=loader.prefetch)
            self._stop = threading.Event()
            self._thread = threading.Thread(target=_produce, args=(make, self._batches, self._queue, self._stop),
                                            name=f"minidl-DataLoader-epoch{epoch}", daemon=True)
            self._thread.start()
        else:
            self._make = make

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        if self._thread is None:
            b = next(self._batches, None)
            if b is None:
                self._closed = True
                raise StopIteration
            return self._make(b)
        item = self._queue.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self, wait: bool = True):
        """Stop the prefetch thread (if any) and end the iteration; ``wait``: join the thread."""
        self._closed = True
        if self._thread is not None:
            self._stop.set()
            try:   # unblock a producer waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            if wait and self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:   # no join here: a finaliser must not block (the thread sees the stop flag within 50 ms)
            self.close(wait=False)
        except Exception:  # noqa: BLE001  (never raise from a finaliser)
            pass


class DataLoader:
    """Deterministic batches of a dataset (see the module docstring)."""

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 transform=None, prefetch: int = 2, sampler=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be a non-negative integer, got {prefetch!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable as transform(batch, rng), got {transform!r}")
        if sampler is not None and shuffle:   # as torch: the sampler decides the order
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive (the sampler shuffles)")
        self.sampler = sampler  # e.g. DistributedSampler: its indices() for each epoch replace the order
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.prefetch = int(prefetch)
        self.seed = _random.initial_seed()
        self.next_epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch`` in the order they are served."""
        if self.sampler is not None:
            self.sampler.set_epoch(int(epoch))
            return np.asarray(self.sampler.indices() if hasattr(self.sampler, "indices") else list(self.sampler))
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, 0, int(epoch)]).permutation(n)

    def batch_rng(self, epoch: int, batch: int) -> np.random.Generator:
        """The Generator handed to ``transform`` for batch ``batch`` of epoch ``epoch``."""
        return np.random.default_rng([self.seed, 1, int(epoch), int(batch)])

    def _batch_maker(self, epoch, order):
        dataset, bs, transform = self.dataset, self.batch_size, self.transform

        def make(b):
            images, labels = _fetch(dataset, order[b * bs:(b + 1) * bs])
            x = images.astype(np.float32) / np.float32(255)
            if transform is not None:
                x = transform(x, np.random.default_rng([self.seed, 1, int(epoch), int(b)]))
            return x, labels
        return make

    def batch(self, epoch: int, batch: int):
        """Batch ``batch`` of epoch ``epoch``, built in the calling thread."""
        self._check(epoch, 0)
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not 0 <= batch < len(self):
            raise ValueError(f"DataLoader.batch: batch must be an integer in [0, {len(self)}), got {batch!r}")
        return self._batch_maker(epoch, self.order(epoch))(batch)

    def _check(self, epoch, start_batch):
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.epoch: epoch must be a non-negative integer, got {epoch!r}")
        if isinstance(start_batch, bool) or not isinstance(start_batch, (int, np.integer)) \
                or not 0 <= start_batch <= len(self):
            raise ValueError(f"DataLoader.epoch: start_batch must be an integer in [0, {len(self)}] "
                             f"({len(self)} batches per epoch), got {start_batch!r}")

    def epoch(self, e: int, start_batch: int = 0) -> _EpochIterator:
        """Iterator over the batches of epoch ``e``, starting at batch ``start_batch`` (to resume mid-epoch)."""
        self._check(e, start_batch)
        return _EpochIterator(self, int(e), int(start_batch))

    def __iter__(self):
        e = self.next_epoch
        self.next_epoch += 1
        return self.epoch(e)

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, prefetch={self.prefetch}, seed={self.seed})")
