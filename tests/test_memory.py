"""The array cache (minidl/kernels/memory.py): reuse only of blocks nothing refers to, the limit."""
import gc

import numpy as np
import pytest

from minidl.kernels import memory

BIG = (1024, 1024)   # 4 MiB of float32: above MIN_BYTES


@pytest.fixture(autouse=True)
def fresh_cache():
    memory.clear()
    previous = memory.get_limit()
    memory.set_limit(None)
    yield
    memory.set_limit(previous)
    memory.clear()


def test_small_arrays_are_plain_numpy():
    a = memory.empty((10, 10), np.float64)
    assert a.shape == (10, 10) and a.dtype == np.float64 and a.flags.c_contiguous
    assert memory.cached_bytes() == (0, 0)


def test_a_freed_block_is_reused_and_a_live_one_never():
    a = memory.empty(BIG)
    a[...] = 1.0
    b = memory.empty(BIG)                  # a is alive: a new block
    assert not np.shares_memory(a, b)
    address = a.ctypes.data
    del a
    gc.collect()
    c = memory.empty(BIG)
    assert c.ctypes.data == address        # a's block, reused
    assert memory.cached_bytes() == (2 * 4 << 20, 0)


@pytest.mark.parametrize("keep", ["view", "slice", "transpose", "base"])
def test_any_view_keeps_its_block_in_use(keep):
    a = memory.empty(BIG)
    held = {"view": lambda: a.view(np.int32), "slice": lambda: a[3:7],
            "transpose": lambda: a.T[::2], "base": lambda: a.base}[keep]()
    address = a.ctypes.data
    del a
    gc.collect()
    b = memory.empty(BIG)
    assert b.ctypes.data != address, f"a block still referenced through a {keep} was handed out again"
    del held


def test_same_byte_size_other_dtype_and_shape():
    a = memory.empty((512, 1024), np.float64)
    address = a.ctypes.data
    del a
    b = memory.empty((4, 1024, 256), np.float32)
    assert b.ctypes.data == address and b.shape == (4, 1024, 256) and b.dtype == np.float32
    assert b.flags.c_contiguous and b.flags.writeable


def test_limit_releases_least_recently_used_free_blocks():
    memory.set_limit(6 << 20)              # room for one free 4 MiB block, not two
    a, b = memory.empty(BIG), memory.empty((2048, 1024))
    del a, b
    assert memory.cached_bytes() == (0, 12 << 20)   # nothing released until the cache grows
    c = memory.empty((3, 1024, 1024))      # a miss: the free blocks are trimmed to the limit
    assert memory.cached_bytes()[1] <= 6 << 20
    del c
    memory.clear()
    assert memory.cached_bytes() == (0, 0)


def test_limit_zero_turns_caching_off_and_bad_limits_are_refused():
    memory.set_limit(0)
    a = memory.empty(BIG)
    assert memory.cached_bytes() == (0, 0) and a.shape == BIG
    with pytest.raises(ValueError, match="limit must be >= 0"):
        memory.set_limit(-1)
