"""A cache of large host arrays, so that each training step reuses the memory of the last one.

Why: a fresh NumPy array of tens of MB comes straight from the operating system (mmap); its
first touch page-faults and the kernel zeroes every page, which costs about as much as writing
the array once more (docs/kernels/memory.md has the measurements).  A training step allocates the same
shapes every time, so the kernels take their large outputs from here instead of ``np.empty``
(PyTorch's CUDA caching allocator does the same on GPUs).

``empty(shape, dtype)`` returns an uninitialised C-contiguous NumPy array.  Arrays of at least
``MIN_BYTES`` lie in a cached 1-D block of exactly their byte size; smaller ones are plain
``np.empty``.  Each array handed out is made from a small lease object (its ``.base``; every
view of it holds it too), and the lease gives its block back to the free list when it dies, that
is when the last array or view using the block is gone.  So no explicit free is needed, and a
block can never be handed out while an array that uses it is alive.

Free blocks cost memory while nobody uses them; the free bytes never exceed the limit (512 MiB
by default, ``set_limit`` or MINIDL_ARRAY_CACHE_MB; 0 turns the cache off): whenever a block
comes back, the least recently used free blocks beyond the limit are released.  ``clear()``
releases every free block.  Thread-safe (one lock; a block that comes back while another thread,
or a garbage collection inside the cache's own code, holds the lock waits in a queue that the
lock's holder empties right after letting go).
"""
from __future__ import annotations

import os
import threading

import numpy as np

MIN_BYTES = 1 << 20            # smaller arrays come from malloc's own free lists: no page faults
_DEFAULT_LIMIT = 512 << 20

try:
    _limit = int(float(os.environ.get("MINIDL_ARRAY_CACHE_MB", "")) * 2 ** 20)
except ValueError:
    _limit = _DEFAULT_LIMIT
_free: list[np.ndarray] = []      # free blocks, least recently returned first
_free_bytes = 0
_used_bytes = 0                   # bytes of blocks handed out and not yet returned
_returned: list[np.ndarray] = []  # blocks given back while the lock was taken (see _give_back)
_lock = threading.Lock()


class _Lease:
    """The owner of a handed-out block: the array's ``.base``, alive while any view of it is."""

    __slots__ = ("block", "__array_interface__")

    def __init__(self, block: np.ndarray, shape: tuple, dtype: np.dtype):
        self.block = block
        self.__array_interface__ = {"shape": shape, "typestr": dtype.str, "version": 3,
                                    "data": (block.ctypes.data, False)}

    def __del__(self):
        _give_back(self.block)


def _give_back(block: np.ndarray) -> None:
    """A block's last user died: queue it, then file it under the lock if nobody holds the lock.

    Never blocks: this runs wherever the last reference drops, possibly inside the cache's own
    locked code (a garbage collection), where waiting for the lock would deadlock.  Whoever holds
    the lock drains the queue after releasing it (``_drain``), so no block stays queued."""
    if _returned is None:             # interpreter shutdown
        return
    _returned.append(block)
    _drain()


def _drain() -> None:
    global _free_bytes, _used_bytes
    while _returned and _lock.acquire(blocking=False):
        try:
            while _returned:
                block = _returned.pop()
                _used_bytes -= block.nbytes
                _free.append(block)
                _free_bytes += block.nbytes
            _trim(_limit)
        finally:
            _lock.release()


def _trim(keep: int) -> None:
    """Drop least recently returned free blocks until at most ``keep`` free bytes remain (lock held)."""
    global _free_bytes
    while _free_bytes > keep and _free:
        _free_bytes -= _free.pop(0).nbytes


def set_limit(nbytes):
    """The most bytes of free blocks kept (None: the default 512 MiB; 0: no caching at all)."""
    global _limit
    nbytes = _DEFAULT_LIMIT if nbytes is None else int(nbytes)
    if nbytes < 0:
        raise ValueError(f"memory.set_limit: the limit must be >= 0 bytes, got {nbytes}")
    _limit = nbytes
    _release(keep=_limit)


def get_limit() -> int:
    return _limit


def clear():
    """Release every free block (blocks in use come back, and are kept or released, when their arrays die)."""
    _release(keep=0)


def cached_bytes() -> tuple[int, int]:
    """(bytes in blocks in use, bytes in free blocks)."""
    _drain()
    with _lock:
        return _used_bytes, _free_bytes


def empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array; large ones reuse a free cached block of the same size."""
    global _free_bytes, _used_bytes
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MIN_BYTES or _limit == 0:
        return np.empty(shape, dtype)
    block = None
    with _lock:
        for i in range(len(_free) - 1, -1, -1):   # the most recently returned block of that size
            if _free[i].nbytes == nbytes:
                block = _free.pop(i)
                _free_bytes -= nbytes
                break
        _used_bytes += nbytes
    _drain()
    if block is None:
        block = np.empty(nbytes, np.uint8)
    return np.asarray(_Lease(block, shape, dtype))


def empty_like(a) -> np.ndarray:
    """empty(a.shape, a.dtype)."""
    return empty(a.shape, a.dtype)


def empty_on(xp, shape, dtype) -> np.ndarray:
    """``empty`` for NumPy (``xp is np``); ``xp.empty`` for another array module (CuPy pools its own)."""
    return empty(shape, dtype) if xp is np else xp.empty(shape, dtype=dtype)


def _release(keep):
    """Drop least recently returned free blocks until at most ``keep`` free bytes remain."""
    _drain()
    with _lock:
        _trim(keep)
    _drain()
