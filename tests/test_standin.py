"""scripts/standin_data.py writes files that minidl's own CIFAR-10 and ImageFolder readers accept,
holding the images and labels it was given."""
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from minidl.data import CIFAR10, ImageFolder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "standin_data.py"


def load_script():
    spec = importlib.util.spec_from_file_location("standin_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_fashion(n, seed):
    rng = np.random.default_rng(seed)
    return SimpleNamespace(images=rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8),
                           targets=np.arange(n, dtype=np.int64) % 3, classes=["T-shirt/top", "Trouser", "Bag"])


def test_cifar_format_round_trip(tmp_path):
    train, test = fake_fashion(25, 0), fake_fashion(7, 1)
    load_script().write_cifar_format(tmp_path, train, test)
    ours = CIFAR10(tmp_path, train=True, download=False)
    assert len(ours) == 25
    images, labels = ours.images, ours.targets
    assert images.shape == (25, 3, 32, 32) and np.array_equal(labels, train.targets)
    for ch in range(3):   # grey repeated over R, G, B; a 2-pixel zero border
        assert np.array_equal(images[:, ch, 2:30, 2:30], train.images[:, 0])
    assert images[:, :, :2].max() == 0 and images[:, :, :, 30:].max() == 0
    assert len(CIFAR10(tmp_path, train=False, download=False)) == 7


def test_folder_layout(tmp_path):
    train, test = fake_fashion(12, 0), fake_fashion(30, 1)
    load_script().write_folder(tmp_path, train, test, per_class=2)
    tr, va = ImageFolder(tmp_path / "folder" / "train"), ImageFolder(tmp_path / "folder" / "val")
    assert tr.classes == ["Bag", "T-shirt-top", "Trouser"] and len(tr) == 6 and len(va) == 3
    image, label = tr[0]
    assert image.shape == (3, 256, 256) and image.dtype == np.uint8
    assert np.array_equal(image[0], image[1])   # grey in RGB
