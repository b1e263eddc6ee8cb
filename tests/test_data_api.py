"""The torch-style data API: Dataset/TensorDataset/Subset/ConcatDataset/random_split, default_collate's
dtype rules, per-sample transforms, the DataLoader's two paths and threads, minidl.utils.data,
ImageFolder class lists, and data directories that are what they say or an error."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minidl as md
import minidl.data as D
from minidl.data import batch_transforms as BT, fashion_mnist, transforms as T
from minidl.data.download import DatasetNotFoundError
from minidl.data.idx import write_idx
from minidl.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset, random_split
from alexnet import runs
from minidl import nn
from minidl.train.trainer import evaluate


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "cache"))


def fake_fashion(directory, n=10, train=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    stems = fashion_mnist.split_files(train)
    Path(directory).mkdir(parents=True, exist_ok=True)
    write_idx(Path(directory) / (stems[0] + ".gz"), images)
    write_idx(Path(directory) / (stems[1] + ".gz"), labels)
    return images, labels


class Regression(D.Dataset):
    """A student's dataset: float32 features, float targets (Python floats)."""

    def __init__(self):
        self.x = np.linspace(0, 3, 8 * 3, dtype=np.float32).reshape(8, 3)
        self.y = [0.75, 1.5, 2.25, 0.0, 0.5, 3.0, 1.25, 0.25]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


# ------------------------------------------------------------------------ the silent wrong answer
@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_leaves_a_datasets_samples_alone(num_workers):
    ds = Regression()
    batches = list(D.DataLoader(ds, batch_size=3, num_workers=num_workers))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(x, ds.x)                     # not divided by 255
    assert x.dtype == np.float32
    np.testing.assert_array_equal(y, np.array(ds.y))           # 0.75 stays 0.75 (not int64 0)
    assert y.dtype == np.float64                                # torch: Python floats -> float64


def test_default_collate_rules():
    batch = D.default_collate([(np.ones(2, np.float32), 1, 0.5, "a", {"k": np.int16(3)}),
                               (np.zeros(2, np.float32), 2, 1.5, "b", {"k": np.int16(4)})])
    x, ints, floats, names, d = batch
    assert isinstance(x, md.Tensor) and x.shape == (2, 2) and x.dtype == np.float32
    assert ints.dtype == np.int64 and ints.numpy().tolist() == [1, 2]
    assert floats.dtype == np.float64 and floats.numpy().tolist() == [0.5, 1.5]
    assert names == ["a", "b"]
    assert d["k"].dtype == np.int16 and d["k"].numpy().tolist() == [3, 4]
    f64 = D.default_collate([np.zeros(3), np.ones(3)])
    assert f64.dtype == np.float64                               # arrays keep their dtype
    t = D.default_collate([md.tensor([1.0, 2.0]), md.tensor([3.0, 4.0])])
    assert t.shape == (2, 2) and t.dtype == np.float32
    with pytest.raises(ValueError, match=r"different shapes.*\(2,\).*\(3,\)"):
        D.default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="ToTensor"):
        D.default_collate([Image.new("L", (2, 2)), Image.new("L", (2, 2))])
    with pytest.raises(TypeError, match="NoneType"):
        D.default_collate([None, None])


# ---------------------------------------------------------------------------------- datasets
def test_tensor_dataset_subset_concat_and_random_split():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    ds = D.TensorDataset(md.tensor(x), y)
    xi, yi = ds[3]
    assert isinstance(xi, md.Tensor) and xi.numpy().tolist() == [6.0, 7.0] and int(yi.item()) == 3
    assert len(ds) == 10
    with pytest.raises(ValueError, match="same size in dim 0"):
        D.TensorDataset(x, y[:4])
    sub = D.Subset(ds, [9, 0])
    assert len(sub) == 2 and sub[0][1].item() == 9
    cat = D.ConcatDataset([sub, ds])
    assert len(cat) == 12 and cat[2][1].item() == 0 and cat[-1][1].item() == 9 and (sub + ds)[1][1].item() == 0
    with pytest.raises(IndexError):
        cat[12]
    a, b = D.random_split(ds, [7, 3], generator=5)
    assert sorted(a.indices.tolist() + b.indices.tolist()) == list(range(10)) and len(a) == 7
    a2, _ = D.random_split(ds, [7, 3], generator=5)
    assert a.indices.tolist() == a2.indices.tolist()
    parts = D.random_split(ds, [0.5, 0.3, 0.2])
    assert [len(p) for p in parts] == [5, 3, 2]
    parts = D.random_split(D.TensorDataset(np.arange(11)), [0.5, 0.5])
    assert [len(p) for p in parts] == [6, 5]                    # remainder to the first, as torch
    md.manual_seed(3)
    s1 = D.random_split(ds, [5, 5])[0].indices.tolist()
    md.manual_seed(3)
    assert D.random_split(ds, [5, 5])[0].indices.tolist() == s1
    with pytest.raises(ValueError, match="summing to the dataset's 10"):
        D.random_split(ds, [3, 3])


def test_fast_path_through_subset_and_concat_matches_indexing():
    imgs = np.random.default_rng(0).integers(0, 256, (9, 1, 4, 4), dtype=np.uint8)

    class Arr:               # the batch contract (no __getitem__): .images uint8 and .targets
        images, targets = imgs, np.arange(9)

        def __len__(self):
            return 9

    cat = D.ConcatDataset([D.Subset(Arr(), [8, 1, 2]), Arr()])
    loader = D.DataLoader(cat, batch_size=5, shuffle=True)
    assert loader.fast_path
    ys = np.concatenate([y.numpy() for _, y in loader.epoch(0)])
    xs = np.concatenate([x.numpy() for x, _ in loader.epoch(0)])
    idx = np.r_[[8, 1, 2], np.arange(9)][loader.order(0)]
    np.testing.assert_array_equal(ys, idx)
    np.testing.assert_array_equal(xs, imgs[idx].astype(np.float32) / np.float32(255))


# --------------------------------------------------------------------------- per-sample transforms
def test_per_sample_transforms_against_numpy():
    hwc = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    t = T.ToTensor()(hwc)
    assert isinstance(t, md.Tensor) and t.shape == (3, 6, 8) and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), hwc.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(T.ToTensor()(Image.fromarray(hwc)).numpy(), t.numpy())
    n = T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))(t).numpy()
    ref = (t.numpy() - np.array([0.5, 0.4, 0.3], np.float32)[:, None, None]) / np.array([0.2, 0.25, 0.5], np.float32)[:, None, None]
    np.testing.assert_allclose(n, ref, rtol=1e-6)
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize((0.5,), (0.5,))(Image.fromarray(hwc))
    cc = T.CenterCrop(4)(t).numpy()
    np.testing.assert_array_equal(cc, t.numpy()[:, 1:5, 2:6])
    assert T.CenterCrop(4)(Image.fromarray(hwc)).size == (4, 4)
    assert T.Resize(3)(t).shape == (3, 3, 4)                     # int: the shorter side
    assert T.Resize(3)(Image.fromarray(hwc)).size == (4, 3)      # PIL size is (w, h)
    assert T.Resize((5, 2))(t).shape == (3, 5, 2)
    assert T.Lambda(lambda a: a * 2)(3) == 6
    assert T.RandomHorizontalFlip(p=1.0)(t).numpy().tolist() == t.numpy()[:, :, ::-1].tolist()
    assert T.RandomHorizontalFlip(p=0.0)(t) is t


def test_random_crop_draws_from_the_seeded_rng():
    img = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    crop = T.RandomCrop(3, padding=1)
    md.manual_seed(11)
    a = [crop(img) for _ in range(4)]
    md.manual_seed(11)
    b = [crop(img) for _ in range(4)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1)))
    with T.using_rng(np.random.default_rng(4)):
        out = crop(img)
    r = np.random.default_rng(4)
    top, left = r.integers(0, 5), r.integers(0, 5)
    np.testing.assert_array_equal(out, padded[:, top:top + 3, left:left + 3])


def test_the_two_kinds_of_transform_are_not_mixed():
    with pytest.raises(TypeError, match="per-sample transform"):
        D.DataLoader(Regression(), transform=T.RandomHorizontalFlip())
    with pytest.raises(TypeError, match="per-sample transform"):
        BT.Compose([T.Normalize((0.5,), (0.5,))])
    with pytest.raises(ValueError, match="fast path of minidl's image datasets only"):
        D.DataLoader(Regression(), transform=BT.RandomHorizontalFlip())


# --------------------------------------------------------------------------- built-in datasets
def test_fashion_mnist_transform_takes_the_per_sample_path(tmp_path):
    images, labels = fake_fashion(tmp_path / "fm", n=10)
    fast = D.FashionMNIST(tmp_path / "fm", download=False, verify=False)
    slow = D.FashionMNIST(tmp_path / "fm", download=False, verify=False, transform=T.ToTensor(),
                          target_transform=lambda c: c + 100)
    img, lab = slow[2]
    assert isinstance(img, md.Tensor) and img.shape == (1, 28, 28) and lab == int(labels[2]) + 100
    lf, ls = D.DataLoader(fast, batch_size=4), D.DataLoader(slow, batch_size=4)
    assert lf.fast_path and not ls.fast_path
    for (xf, yf), (xs, ys) in zip(lf.epoch(0), ls.epoch(0)):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())   # ToTensor's /255 == the fast path's
        np.testing.assert_array_equal(yf.numpy() + 100, ys.numpy())
        assert xs.to("cpu").shape[0] == len(ys)


def test_per_sample_augmentation_is_reproducible_and_thread_independent(tmp_path):
    fake_fashion(tmp_path / "fm", n=24)
    tf = T.Compose([T.RandomCrop(24, padding=2), T.RandomHorizontalFlip(), T.ToTensor()])
    ds = D.FashionMNIST(tmp_path / "fm", download=False, verify=False, transform=tf)

    def run(workers, prefetch, seed=5):
        md.manual_seed(seed)
        loader = D.DataLoader(ds, batch_size=5, shuffle=True, num_workers=workers, prefetch=prefetch,
                              pin_memory=True, drop_last=True)
        return [x.numpy() for x, _ in loader.epoch(1)], loader

    ref, loader = run(0, 0)
    assert len(ref) == 4 == len(loader)                        # drop_last: 24 // 5
    for workers, prefetch in ((0, 2), (3, 1), (4, 0)):
        got, _ = run(workers, prefetch)
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(ref, run(0, 0, seed=6)[0]))
    tail = [x.numpy() for x, _ in loader.epoch(1, start_batch=2)]
    for a, b in zip(ref[2:], tail):
        np.testing.assert_array_equal(a, b)


def test_loader_options():
    ds = Regression()
    a = [y.numpy() for _, y in D.DataLoader(ds, batch_size=3, shuffle=True, generator=42)]
    b = [y.numpy() for _, y in D.DataLoader(ds, batch_size=3, shuffle=True, generator=42)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    got = list(D.DataLoader(ds, batch_size=4, collate_fn=lambda s: len(s)))
    assert got == [4, 4]
    order = list(D.DataLoader(ds, batch_size=8, sampler=[7, 6, 5, 4, 3, 2, 1, 0]))[0][1].numpy()
    np.testing.assert_array_equal(order, np.array(ds.y)[::-1])
    with pytest.raises(ValueError, match="mutually exclusive"):
        D.DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match="num_workers must be a non-negative integer"):
        D.DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="empty: 0 samples"):
        D.DataLoader(D.TensorDataset(np.zeros((0, 2))), batch_size=2)


def test_worker_exception_is_reraised():
    class Bad(Regression):
        def __getitem__(self, i):
            if i == 5:
                raise RuntimeError("sample 5 is broken")
            return super().__getitem__(i)

    with pytest.raises(RuntimeError, match="sample 5 is broken"):
        list(D.DataLoader(Bad(), batch_size=2, num_workers=3))


def test_utils_data_is_torch_utils_data():
    assert DataLoader is D.DataLoader and Dataset is D.Dataset and md.utils.data.DataLoader is D.DataLoader
    assert (Subset, TensorDataset, random_split, ConcatDataset) == (D.Subset, D.TensorDataset, D.random_split,
                                                                    D.ConcatDataset)


# ---------------------------------------------------------------------------- image folders
def _images(root, spec):
    for cls, n in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            Image.fromarray(np.full((4, 4, 3), 40 * k, np.uint8)).save(root / cls / f"{k}.png")


def test_val_folder_lacking_a_class_keeps_train_labels(tmp_path):
    _images(tmp_path / "train", {"a": 2, "b": 2, "c": 2})
    _images(tmp_path / "val", {"a": 1, "c": 1})                # no "b"
    cfg = {"dataset": "folder", "data_dir": str(tmp_path), "limit_train": None, "limit_test": None,
           "val_fraction": 0.1}
    train, val = runs.load_datasets(cfg, (4, 4))
    assert val.classes == train.classes == ["a", "b", "c"]
    assert [(Path(p).parent.name, t) for p, t in val.samples] == [("a", 0), ("c", 2)]   # "c" is 2, not 1
    _images(tmp_path / "val", {"d": 1})
    with pytest.raises(ValueError, match=r"\['d'\] not among the given classes"):
        runs.load_datasets(cfg, (4, 4))


def test_empty_class_directory_and_empty_splits(tmp_path):
    _images(tmp_path / "x", {"a": 1})
    (tmp_path / "x" / "b").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class directory .*b holds no image files"):
        D.ImageFolder(tmp_path / "x")
    _images(tmp_path / "one", {"a": 1, "b": 1})                # one image per class: nothing held out
    cfg = {"dataset": "folder", "data_dir": str(tmp_path / "one"), "limit_train": None, "limit_test": None,
           "val_fraction": 0.1}
    with pytest.raises(ValueError, match="no test images"):
        runs.load_datasets(cfg, (4, 4))


def test_evaluate_refuses_no_samples():
    with pytest.raises(ValueError, match="no test images"):
        evaluate(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), [], 2)


def test_data_dir_given_means_that_directory(tmp_path, monkeypatch):
    fake_fashion(tmp_path / "system", n=5)
    fake_fashion(tmp_path / "system", n=5, train=False)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(fashion_mnist, "RAW_MD5", {})
    (tmp_path / "empty").mkdir()
    for given in ("empty", "missing"):
        cfg = {"dataset": "fashion-mnist", "data_dir": str(tmp_path / given), "limit_train": None, "limit_test": None}
        with pytest.raises(DatasetNotFoundError, match=given):
            runs.load_datasets(cfg, (28, 28))
    monkeypatch.setattr(fashion_mnist, "read_verified", lambda p, s, v=True: fashion_mnist.parse_idx(
        fashion_mnist.read_idx_bytes(p), str(p)))
    cfg = {"dataset": "fashion-mnist", "data_dir": None, "limit_train": None, "limit_test": None}
    train, test = runs.load_datasets(cfg, (28, 28))           # no --data-dir: the system copy is fine
    assert len(train) == 5 and train.root == tmp_path / "system"
