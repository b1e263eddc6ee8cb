"""A cache of large host arrays, so that each training step reuses the memory of the last one.

Why: a fresh NumPy array of tens of MB comes straight from the operating system (mmap); its
first touch page-faults and the kernel zeroes every page, which costs about as much as writing
the array once more (a 37 MB array, the size of AlexNet's first activations at batch 32, takes
3.5 ms to fill fresh against 1.5 ms reused on the quiet development machine; ~10 ms fresh when
another job competes for memory).  A training step allocates the same
shapes every time, so the kernels take their large outputs from here instead of ``np.empty``
(PyTorch's CUDA caching allocator does the same on GPUs).

``empty(shape, dtype)`` returns an uninitialised C-contiguous NumPy array.  Arrays of at least
``MIN_BYTES`` are views of a cached 1-D block of exactly their byte size; smaller ones are plain
``np.empty``.  A block is free when nothing but the cache refers to it: every array handed out
holds its block as ``.base`` (and so does every view of it), so the block's reference count
stays above the cache's own while any of them is alive.  No explicit free is needed, and a block
can never be handed out while an array that uses it is alive.

Free blocks cost memory while nobody uses them; when the free bytes exceed the limit (512 MiB
by default, ``set_limit`` or MINIDL_ARRAY_CACHE_MB; 0 turns the cache off), the least recently
used free blocks are released.  ``clear()`` releases every free block.  Thread-safe (one lock).
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20            # smaller arrays come from malloc's own free lists: no page faults
_DEFAULT_LIMIT = 512 << 20

try:
    _limit = int(float(os.environ.get("MINIDL_ARRAY_CACHE_MB", "")) * 2 ** 20)
except ValueError:
    _limit = _DEFAULT_LIMIT
_blocks: list[np.ndarray] = []  # least recently handed out first
_lock = threading.Lock()


def _is_free(i: int) -> bool:
    """Whether nothing but the cache refers to block i (the list's reference + getrefcount's argument)."""
    return sys.getrefcount(_blocks[i]) == 2


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
    """Release every free block (blocks in use are forgotten when their arrays die)."""
    _release(keep=0)


def cached_bytes() -> tuple[int, int]:
    """(bytes in blocks in use, bytes in free blocks)."""
    with _lock:
        free = sum(_blocks[i].nbytes for i in range(len(_blocks)) if _is_free(i))
        return sum(block.nbytes for block in _blocks) - free, free


def empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array; large ones reuse a free cached block of the same size."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MIN_BYTES or _limit == 0:
        return np.empty(shape, dtype)
    with _lock:
        for i in range(len(_blocks)):
            if _blocks[i].nbytes == nbytes and _is_free(i):
                block = _blocks.pop(i)
                break
        else:
            block = None
        missed = block is None
        if missed:
            block = np.empty(nbytes, np.uint8)
        _blocks.append(block)            # most recently used last
        result = block.view(dtype).reshape(shape)
        del block
    if missed:                           # the free bytes only matter when the cache grows
        _release(keep=_limit)
    return result


def empty_like(a) -> np.ndarray:
    """empty(a.shape, a.dtype)."""
    return empty(a.shape, a.dtype)


def empty_on(xp, shape, dtype) -> np.ndarray:
    """``empty`` for NumPy (``xp is np``); ``xp.empty`` for another array module (CuPy pools its own)."""
    return empty(shape, dtype) if xp is np else xp.empty(shape, dtype=dtype)


def _release(keep):
    """Drop least recently used free blocks until at most ``keep`` free bytes remain."""
    with _lock:
        excess = sum(_blocks[i].nbytes for i in range(len(_blocks)) if _is_free(i)) - keep
        i = 0
        while excess > 0 and i < len(_blocks):
            if _is_free(i):
                excess -= _blocks.pop(i).nbytes
            else:
                i += 1
