"""minidl.data.DataLoader: batches, determinism under a seed, resumption, prefetch thread behaviour."""
import gc
import time

import numpy as np
import pytest

import minidl as md
from minidl.data import DataLoader, batch_transforms as T


class ArrayDataset:
    """In-memory dataset with the contract's .images/.targets."""

    def __init__(self, n=23, shape=(3, 6, 5), seed=0):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, (n,) + shape, dtype=np.uint8)
        self.targets = rng.integers(0, 10, n).astype(np.int64)

    def __len__(self):
        return len(self.targets)


class ItemDataset:
    """Only __len__/__getitem__ (no .images/.targets): the loader's generic path."""

    def __init__(self):
        base = ArrayDataset()
        self._x, self.labels = base.images, base.targets

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self._x[i], int(self.labels[i])


AUG = T.Compose([T.RandomCrop(4, padding=1), T.RandomHorizontalFlip(), T.PCALighting([0.2, 0.02, 0.005], np.eye(3))])


def collect(it):
    batches = []
    for x, y in it:
        assert isinstance(x, md.Tensor) and isinstance(y, md.Tensor)
        batches.append((x.numpy(), y.numpy()))
    return batches


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype == np.float32
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_batches_cover_dataset_scaled(prefetch):
    ds = ArrayDataset()
    loader = DataLoader(ds, batch_size=5, prefetch=prefetch)
    assert len(loader) == 5
    batches = collect(loader.epoch(0))
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(x, ds.images.astype(np.float32) / np.float32(255))
    assert x.min() >= 0 and x.max() <= 1 and y.dtype == np.int64
    np.testing.assert_array_equal(y, ds.targets)
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 4
    assert [len(y) for _, y in DataLoader(ds, batch_size=5, drop_last=True).epoch(0)] == [5] * 4


def test_shuffle_order_and_transform_rng_are_functions_of_seed_epoch_batch():
    md.manual_seed(1234)
    ds = ArrayDataset()
    seen = []

    def probe(x, rng):
        seen.append(rng.random())
        return x

    loader = DataLoader(ds, batch_size=4, shuffle=True, transform=probe, prefetch=0)
    batches = collect(loader.epoch(3))
    order = np.random.default_rng([1234, 0, 3]).permutation(len(ds))
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), ds.targets[order])
    assert seen == [np.random.default_rng([1234, 1, 3, b]).random() for b in range(len(loader))]
    np.testing.assert_array_equal(loader.order(3), order)


def test_same_seed_same_batches_with_and_without_thread():
    ds = ArrayDataset()
    md.manual_seed(7)
    a = DataLoader(ds, batch_size=4, shuffle=True, transform=AUG, prefetch=3)
    md.manual_seed(99)      # the seed is read when the loader is made
    b = DataLoader(ds, batch_size=4, shuffle=True, transform=AUG, prefetch=0)
    md.manual_seed(7)
    c = DataLoader(ds, batch_size=4, shuffle=True, transform=AUG, prefetch=0)
    assert a.seed == c.seed == 7 and b.seed == 99
    for e in (0, 1):
        assert_same(collect(a.epoch(e)), collect(c.epoch(e)))
    assert not np.array_equal(collect(a.epoch(0))[0][0], collect(b.epoch(0))[0][0])
    assert not np.array_equal(collect(a.epoch(0))[0][1], collect(a.epoch(1))[0][1])   # epochs differ


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_start_batch_is_the_tail(prefetch):
    ds = ArrayDataset()
    loader = DataLoader(ds, batch_size=4, shuffle=True, transform=AUG, prefetch=prefetch)
    full = collect(loader.epoch(2))
    for k in (0, 1, 4, len(loader)):
        assert_same(collect(loader.epoch(2, start_batch=k)), full[k:])
    assert_same(collect([loader.batch(2, 3)]), full[3:4])


def test_iter_runs_successive_epochs():
    ds = ArrayDataset()
    loader = DataLoader(ds, batch_size=6, shuffle=True, transform=AUG)
    first, second = collect(loader), collect(loader)
    assert_same(first, collect(loader.epoch(0)))
    assert_same(second, collect(loader.epoch(1)))
    assert loader.next_epoch == 2


def test_dataset_with_getitem_only_and_image_folder_like():
    ds = ItemDataset()
    batches = [(x.numpy(), y.numpy()) for x, y in DataLoader(ds, batch_size=10).epoch(0)]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), ds.labels)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), ds._x)   # stacked, not scaled

    class Lazy(ArrayDataset):
        def load_batch(self, idx):
            return self.images[idx], self.targets[idx]

    lazy = Lazy()
    assert_same(collect(DataLoader(lazy, batch_size=4, shuffle=True).epoch(0)),
                collect(DataLoader(ArrayDataset(), batch_size=4, shuffle=True).epoch(0)))


def test_exception_in_thread_is_reraised():
    def boom(x, rng):
        boom.calls += 1
        if boom.calls == 3:
            raise RuntimeError("augmentation failed on purpose")
        return x
    boom.calls = 0
    it = DataLoader(ArrayDataset(), batch_size=4, transform=boom, prefetch=2).epoch(0)
    next(it), next(it)
    with pytest.raises(RuntimeError, match="on purpose"):
        next(it)
    assert not it._thread.is_alive()
    with pytest.raises(StopIteration):
        next(it)


def _wait_dead(thread, seconds=5.0):
    deadline = time.time() + seconds
    while thread.is_alive() and time.time() < deadline:
        time.sleep(0.01)
    return not thread.is_alive()


def test_thread_stops_on_close_and_on_garbage_collection():
    loader = DataLoader(ArrayDataset(n=200), batch_size=1, prefetch=2)
    it = loader.epoch(0)
    next(it)
    thread = it._thread
    assert thread.daemon
    it.close()
    assert _wait_dead(thread)
    with pytest.raises(StopIteration):
        next(it)

    it = loader.epoch(0)
    next(it)
    thread = it._thread
    del it
    gc.collect()
    assert _wait_dead(thread)

    with loader.epoch(1) as it:
        next(it)
        thread = it._thread
    assert _wait_dead(thread)


def test_bad_arguments():
    ds = ArrayDataset()
    with pytest.raises(ValueError, match="DataLoader: batch_size must be a positive integer, got 0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="DataLoader: prefetch must be a non-negative integer, got -1"):
        DataLoader(ds, prefetch=-1)
    with pytest.raises(TypeError, match="DataLoader: transform must be callable"):
        DataLoader(ds, transform="flip")
    loader = DataLoader(ds, batch_size=4)
    with pytest.raises(ValueError, match=r"start_batch must be an integer in \[0, 6\].*got 7"):
        loader.epoch(0, start_batch=7)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got -1"):
        loader.epoch(-1)
    with pytest.raises(ValueError, match=r"batch must be an integer in \[0, 6\), got 6"):
        loader.batch(0, 6)
