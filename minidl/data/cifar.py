"""CIFAR-10 (Krizhevsky 2009) from the official BINARY batches: raw bytes, no pickle.

``cifar-10-batches-bin/`` holds ``data_batch_1.bin`` .. ``data_batch_5.bin`` (training, 10,000
images each), ``test_batch.bin`` and ``batches.meta.txt`` (the 10 class names, one a line).
Each batch is a run of 3073-byte records: 1 label byte (0..9), then the 32x32 image as
1024 red, 1024 green and 1024 blue bytes, each plane row-major - so a record's last 3072
bytes reshape directly to (3, 32, 32), the (C, H, W) layout used here.

``CIFAR10(root=None, train=True, transform=None, target_transform=None, download=True)``
(``ds[i]`` and the transforms as FashionMNIST, see base.py) looks for those files in
``root/cifar-10-batches-bin`` and ``root`` when ``root`` is given (and nowhere else: a root
without them is an error), else in the cache directory (``$MINIDL_DATA/cifar-10`` or
``~/.cache/minidl/cifar-10``); otherwise it downloads ``cifar-10-binary.tar.gz`` from the
authors' page (into ``root`` when given, else the cache), checks its published MD5, extracts the seven expected members
(regular files only, names fixed in advance: no path traversal) and deletes the archive.
The extracted batches are checked for their size (a whole number of records) and labels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ImageDataset
from .download import ChecksumError, DatasetNotFoundError, cache_dir, download as _download, extract_tar

__all__ = ["CIFAR10", "read_cifar_batch"]

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"   # published on https://www.cs.toronto.edu/~kriz/cifar.html
ARCHIVE = "cifar-10-binary.tar.gz"
DIRNAME = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]
META = "batches.meta.txt"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RECORD = 1 + 3 * 32 * 32
NAME = "cifar-10"


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch -> (images uint8 (n, 3, 32, 32), labels int64 (n,))."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % RECORD:
        raise ValueError(f"CIFAR10: {path} has {data.size} bytes, not a positive multiple of the {RECORD}-byte "
                         "record (1 label byte + 3072 pixel bytes): truncated or not a CIFAR-10 binary batch")
    records = data.reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        bad = int(np.argmax(labels >= len(CLASSES)))
        raise ValueError(f"CIFAR10: {path} record {bad} has label {int(labels[bad])}, outside 0..9: "
                         "corrupt or not a CIFAR-10 binary batch")
    return np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32), labels


class CIFAR10(ImageDataset):
    """One split of CIFAR-10 in memory: ``.images`` uint8 (N, 3, 32, 32), ``.targets`` int64 (N,), ``.classes``."""

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None, download: bool = True):
        self.train = bool(train)
        self._set_transforms(transform, target_transform)
        files = TRAIN_FILES if self.train else TEST_FILES
        target = Path(root) if root is not None else cache_dir(NAME)
        places = [Path(root) / DIRNAME, Path(root)] if root is not None else [cache_dir(NAME) / DIRNAME]
        looked, directory = [], None
        for place in places:
            missing = [f for f in files if not (place / f).is_file()]
            if not missing:
                directory = place
                break
            looked.append(f"{place} ({'missing directory' if not place.is_dir() else 'lacks ' + ', '.join(missing)})")
        if directory is None and download:
            try:
                directory = self._download(target)
            except ChecksumError:
                raise
            except (OSError, ValueError) as e:
                looked.append(f"download of {URL} into {target} failed: {e}")
        if directory is None:
            raise DatasetNotFoundError(
                f"CIFAR10: cannot find the {'training' if self.train else 'test'} batches ({', '.join(files)}). "
                "Looked in:\n  - " + "\n  - ".join(looked)
                + ("" if download else "\n  (download=False: not downloaded)")
                + f"\nTo get the data: download {URL} (MD5 {MD5}), extract it and pass the directory holding "
                f"{DIRNAME}/ as root= (--data-dir on the command line), or run with network access and download=True.")
        self.root = directory
        parts = [read_cifar_batch(directory / f) for f in files]
        self.images = np.concatenate([p[0] for p in parts])
        self.targets = np.concatenate([p[1] for p in parts])
        meta = directory / META
        names = [line.strip() for line in meta.read_text().splitlines() if line.strip()] if meta.is_file() else []
        self.classes = names if len(names) == len(CLASSES) else list(CLASSES)

    @staticmethod
    def _download(target) -> Path:
        archive = _download(URL, target / ARCHIVE, md5=MD5)
        members = [f"{DIRNAME}/{f}" for f in TRAIN_FILES + TEST_FILES + [META]]
        extract_tar(archive, target, wanted=members)
        archive.unlink()
        return target / DIRNAME

    def __repr__(self) -> str:
        return f"CIFAR10({'train' if self.train else 'test'}, {len(self)} images from {self.root})"
