"""The array cache (minidl/kernels/memory.py): reuse only of blocks nothing refers to, the limit."""
import gc

import numpy as np
import pytest

from minidl.kernels import memory
import threading

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
    held = {"view": lambda x: x.view(np.int32), "slice": lambda x: x[3:7],
            "transpose": lambda x: x.T[::2], "base": lambda x: x.base}[keep](a)
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
    memory.set_limit(10 << 20)             # room for two free 4 MiB blocks, not three
    a, b, c = memory.empty(BIG), memory.empty(BIG), memory.empty(BIG)
    a_block, c_address = a.base.block, c.ctypes.data
    del a, b
    assert memory.cached_bytes() == (4 << 20, 8 << 20)
    del c                                  # the free bytes would reach 12 MiB: a's block (the oldest) goes
    assert memory.cached_bytes() == (0, 8 << 20)
    assert all(block is not a_block for block in memory._free)
    d = memory.empty(BIG)                  # the most recently returned block is reused first
    assert d.ctypes.data == c_address
    del d
    memory.clear()
    assert memory.cached_bytes() == (0, 0)


def test_the_limit_holds_when_arrays_die_without_a_new_allocation():
    """A training step ends by dropping its activations and gradients all at once; the free
    bytes must not pile up above the limit until the next step allocates."""
    memory.set_limit(10 << 20)
    step = [memory.empty(BIG) for _ in range(8)] + [memory.empty((3, 1024, 1024))]   # 44 MiB in use
    assert memory.cached_bytes() == (44 << 20, 0)
    views = [a[1:] for a in step[:4]]      # views keep their blocks in use
    del step
    assert memory.cached_bytes()[0] == 16 << 20 and memory.cached_bytes()[1] <= 10 << 20
    del views
    assert memory.cached_bytes()[0] == 0 and memory.cached_bytes()[1] <= 10 << 20


def test_blocks_come_back_from_other_threads():
    memory.set_limit(10 << 20)
    arrays = [memory.empty(BIG) for _ in range(6)]

    def drop(chunk):
        chunk.clear()
    chunks = [arrays[i::3] for i in range(3)]
    del arrays
    threads = [threading.Thread(target=drop, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del chunks
    assert memory.cached_bytes() == (0, 8 << 20)


def test_limit_zero_turns_caching_off_and_bad_limits_are_refused():
    memory.set_limit(0)
    a = memory.empty(BIG)
    assert memory.cached_bytes() == (0, 0) and a.shape == BIG
    with pytest.raises(ValueError, match="limit must be >= 0"):
        memory.set_limit(-1)
