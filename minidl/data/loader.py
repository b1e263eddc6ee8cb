"""DataLoader: batches of a dataset as minidl Tensors, deterministic for bit-identical resumption.

``DataLoader(dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
pin_memory_device="", transform=None, prefetch=2)`` (torch's signature, then minidl's own two).

Two paths build a batch of the sample indices it is given:

- generic (any dataset): ``collate_fn([dataset[i] for i in indices])``; the default,
  ``default_collate``, only stacks (see collate.py for its dtype rules): values are never scaled.
- fast (minidl's image datasets FashionMNIST, CIFAR10, ImageFolder, and Subset/ConcatDataset of
  them, with no per-sample ``transform=`` and no ``collate_fn``): the whole batch of uint8 images
  is read at once and yields ``x = images.astype(float32) / 255``, then ``transform(x, rng)`` (a
  batch transform), and y int64. This is the only place the loader scales anything.

Both yield minidl Tensors on the CPU (``x.to(device)`` moves them). ``transform=`` is for the fast
path only; per-sample transforms belong to the dataset.

Determinism. ``seed = minidl.random.initial_seed()`` (or ``generator=``: an int, or an object
with ``initial_seed()``) is read once, when the loader is made. Everything random is a function of
(seed, epoch, batch) alone:

- the order of epoch e: ``np.random.default_rng([seed, 0, e]).permutation(n)`` (``arange(n)``
  without shuffling; the sampler's order when one is given);
- the batch transform of batch b of epoch e: ``transform(x, np.random.default_rng([seed, 1, e, b]))``;
- the per-sample transforms of batch b of epoch e draw from ``np.random.default_rng([seed, 2, e, b])``
  (``transforms.using_rng`` sets it while the batch's samples are read).

No stream is shared between batches, so worker threads cannot change the result, and
``loader.epoch(e, start_batch=k)`` (resuming mid-epoch) yields exactly the tail of
``loader.epoch(e)``. ``iter(loader)`` runs epochs ``loader.next_epoch`` = 0, 1, 2, ... on
successive calls (set ``next_epoch`` when resuming).

Threads. With ``num_workers=0`` and ``prefetch > 0`` one daemon thread builds the next
``prefetch`` batches (a bounded queue) while the consumer trains on the current one; with
``num_workers=k > 0``, k worker threads build batches in parallel and the consumer still gets them
in order (threads, not processes: NumPy and Pillow release the GIL for most of the work). With
``num_workers=0, prefetch=0`` batches are built in the consumer's thread. An exception in a thread
is re-raised in the consumer. Closing the iterator (``close()``, leaving a ``with`` block, or
dropping the last reference) stops the threads; being daemons they never hold up interpreter exit.
``pin_memory``, ``timeout``, ``worker_init_fn``, ``multiprocessing_context``, ``prefetch_factor``,
``persistent_workers`` and ``pin_memory_device`` are accepted and ignored.
"""
from __future__ import annotations

import collections
import concurrent.futures
import math
import numbers
import queue
import threading

import numpy as np

from .. import random as _random
from ..tensor import Tensor
from .collate import default_collate
from .dataset import batch_source
from .transforms import using_rng

__all__ = ["DataLoader"]

_END = object()


class _Failure:
    def __init__(self, error):
        self.error = error


def _produce(make_batch, batches, q, stop, workers):
    """Thread body: build batches (``workers`` threads, or this one) into the bounded queue, in order,
    until done or told to stop. It holds no reference to the consumer's iterator, so dropping the
    iterator can stop it."""
    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    pool = concurrent.futures.ThreadPoolExecutor(workers, "minidl-DataLoader-worker") if workers else None
    try:
        if pool is None:
            for b in batches:
                if stop.is_set() or not put(make_batch(b)):
                    return
        else:
            pending = collections.deque()
            for b in batches:
                if stop.is_set():
                    return
                pending.append(pool.submit(make_batch, b))
                if len(pending) >= workers and not put(pending.popleft().result()):
                    return
            while pending:
                if not put(pending.popleft().result()):
                    return
    except BaseException as e:  # noqa: BLE001  (re-raised in the consumer)
        put(_Failure(e))
        return
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    put(_END)


class _EpochIterator:
    """Iterator over the batches of one epoch, optionally fed by a producer thread."""

    def __init__(self, loader, epoch, start_batch):
        self.epoch = epoch
        self._batches = iter(range(start_batch, len(loader)))
        order = loader.order(epoch)
        make = loader._batch_maker(epoch, order)
        self._make = None
        self._thread = None
        self._closed = False
        if loader.prefetch > 0 or loader.num_workers > 0:
            self._queue = queue.Queue(maxsize=max(loader.prefetch, 1))
            self._stop = threading.Event()
            self._thread = threading.Thread(target=_produce, args=(make, self._batches, self._queue, self._stop,
                                                                   loader.num_workers),
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
        """Stop the producer thread (if any) and end the iteration; ``wait``: join the thread."""
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


def _count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"DataLoader: {name} must be a {kind} integer, got {value!r}")
    return int(value)


def _seed_of(generator):
    if generator is None:
        return _random.initial_seed()
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool) and generator >= 0:
        return int(generator)
    if hasattr(generator, "initial_seed"):
        return int(generator.initial_seed())
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(2**63))
    raise TypeError(f"DataLoader: generator must be a non-negative int seed, a numpy.random.Generator or an "
                    f"object with initial_seed(), got {generator!r}")


class DataLoader:
    """Deterministic batches of a dataset, as minidl Tensors (see the module docstring)."""

    def __init__(self, dataset, batch_size: int = 1, shuffle=False, sampler=None, batch_sampler=None,
                 num_workers: int = 0, collate_fn=None, pin_memory: bool = False, drop_last: bool = False,
                 timeout: float = 0, worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers: bool = False, pin_memory_device: str = "",
                 transform=None, prefetch: int = 2):
        if batch_size is None or batch_sampler is not None:
            raise ValueError("DataLoader: batch_sampler and batch_size=None are not supported; give batch_size "
                             "(and sampler= for a custom order)")
        self.batch_size = _count(batch_size, "batch_size", 1)
        self.prefetch = _count(prefetch, "prefetch", 0)
        self.num_workers = _count(num_workers, "num_workers", 0)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable as transform(batch, rng), got {transform!r}")
        if getattr(transform, "per_sample", False):
            raise TypeError(f"DataLoader: transform= takes a batch transform (minidl.data.batch_transforms, called "
                            f"as t(batch, rng)); {transform!r} is a per-sample transform: give it to the dataset "
                            "(e.g. FashionMNIST(transform=...)) as with torchvision")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {collate_fn!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if len(dataset) == 0:
            raise ValueError(f"DataLoader: the dataset ({type(dataset).__name__}) is empty: 0 samples")
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.collate_fn = collate_fn
        self.pin_memory = bool(pin_memory)
        self.seed = _seed_of(generator)
        self.next_epoch = 0
        self._source = batch_source(dataset) if collate_fn is None else None
        if transform is not None and self._source is None:
            why = ("a collate_fn is given" if collate_fn is not None else
                   f"{type(dataset).__name__} samples go one by one through __getitem__ (not one of minidl's image "
                   "datasets, or one given a per-sample transform=)")
            raise ValueError(f"DataLoader: transform= (a batch transform) works on the fast path of minidl's image "
                             f"datasets only, but {why}; use per-sample transforms in the dataset instead")

    @property
    def fast_path(self) -> bool:
        """True when batches come from the dataset's uint8 batch source (scaled by 1/255)."""
        return self._source is not None

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch`` in the order they are served."""
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):   # e.g. DistributedSampler: the loader's epoch decides its order
                self.sampler.set_epoch(int(epoch))
            return np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, 0, int(epoch)]).permutation(n)

    def batch_rng(self, epoch: int, batch: int) -> np.random.Generator:
        """The Generator handed to ``transform`` for batch ``batch`` of epoch ``epoch``."""
        return np.random.default_rng([self.seed, 1, int(epoch), int(batch)])

    def _batch_maker(self, epoch, order):
        dataset, bs, transform, source = self.dataset, self.batch_size, self.transform, self._source
        collate = self.collate_fn or default_collate
        seed = self.seed

        def fast(b):
            images, labels = source(order[b * bs:(b + 1) * bs])
            images = np.asarray(images)
            if images.dtype != np.uint8 or images.ndim != 4:
                raise TypeError(f"DataLoader: the batch source of {type(dataset).__name__} gave {images.dtype} "
                                f"images of shape {images.shape}; the fast path needs uint8 (N, C, H, W). Give the "
                                "dataset a __getitem__ (samples are then stacked, never scaled)")
            x = images.astype(np.float32) / np.float32(255)
            if transform is not None:
                x = transform(x, np.random.default_rng([seed, 1, int(epoch), int(b)]))
            return Tensor(np.ascontiguousarray(x)), Tensor(np.asarray(labels, dtype=np.int64))

        def generic(b):
            with using_rng(np.random.default_rng([seed, 2, int(epoch), int(b)])):
                samples = [dataset[int(i)] for i in order[b * bs:(b + 1) * bs]]
            return collate(samples)
        return fast if source is not None else generic

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
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            e = getattr(self.sampler, "epoch", e)   # as torch: the user's sampler.set_epoch(epoch) decides
        return self.epoch(e)

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, num_workers={self.num_workers}, "
                f"prefetch={self.prefetch}, seed={self.seed}, {'fast' if self.fast_path else 'generic'} path)")
