"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 grey 28x28 images of 10 kinds of clothing.

``FashionMNIST(root=None, train=True, transform=None, target_transform=None, download=True)``
holds one split in memory: ``.images`` uint8 (N, 1, 28, 28), ``.targets`` int64 (N,),
``.classes`` (10 names). ``ds[i]`` is ``(uint8 (1, 28, 28), int)``; with ``transform`` set it is
``(transform(PIL image, mode "L"), target_transform(int))`` as in torchvision, and the DataLoader
then takes the per-sample path.

Where it looks (a directory counts when it holds both IDX files of the split, gzipped or not):

- ``root`` given: ``root``, ``root/FashionMNIST/raw`` (torchvision's layout) and ``root/fashion-mnist``,
  nowhere else; with ``download=True`` it downloads into ``root/FashionMNIST/raw``. A root that
  lacks the files is an error, never a silent fall-back to another copy.
- no ``root``: ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu: ``apt-get install
  dataset-fashion-mnist``), then the cache directory ``$MINIDL_DATA/fashion-mnist`` or
  ``~/.cache/minidl/fashion-mnist``, then (``download=True``) the Zalando Research URLs into the cache.

Downloads are checked against each ``.gz`` file's published MD5 before they are kept.

Checksums. Every file read is checked against the published MD5 of its *decompressed*
content (``RAW_MD5``), whatever its compression: the Debian package ships the files
re-gzipped (different ``.gz`` bytes, MD5s that do not match the published ``.gz`` ones)
with the very same content, which this check accepts. Pass ``verify=False`` to read other
IDX files laid out the same way.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .base import ImageDataset
from .download import ChecksumError, DatasetNotFoundError, cache_dir, download as _download
from .idx import IDXError, parse_idx, read_idx_bytes

__all__ = ["FashionMNIST"]

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# The official locations (https://github.com/zalandoresearch/fashion-mnist#get-the-data), tried in order.
MIRRORS = [
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]
# MD5 of the published .gz files (the README's table; torchvision uses the same).
GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
# MD5 of the decompressed files; checked on every load. The files of Debian's
# dataset-fashion-mnist 0.0~git20200523.55506a9-1 have exactly these.
RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
NAME = "fashion-mnist"


def split_files(train: bool) -> tuple[str, str]:
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def find_file(directory, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (uncompressed first)."""
    for name in (stem, stem + ".gz"):
        p = Path(directory) / name
        if p.is_file():
            return p
    return None


def read_verified(path, stem: str, verify: bool = True) -> np.ndarray:
    """Read an IDX file, then (``verify``) check the MD5 of its decompressed bytes against RAW_MD5."""
    data = read_idx_bytes(path)
    array = parse_idx(data, str(path))
    if verify:
        actual, expected = hashlib.md5(data).hexdigest(), RAW_MD5[stem]
        if actual != expected:
            raise ChecksumError(f"FashionMNIST: checksum mismatch for {path}: expected md5 {expected} of its "
                                f"decompressed content, got {actual}; the file is corrupt or not the published "
                                "Fashion-MNIST: delete it and fetch it again")
    return array


class FashionMNIST(ImageDataset):
    """One split of Fashion-MNIST in memory (see the module docstring for where the files come from)."""

    classes = CLASSES

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None, download: bool = True,
                 verify: bool = True):
        self.train = bool(train)
        self._set_transforms(transform, target_transform)
        stems = split_files(self.train)
        if root is not None:
            root = Path(root)
            places, target = [root, root / "FashionMNIST" / "raw", root / NAME], root / "FashionMNIST" / "raw"
        else:
            places, target = [SYSTEM_DIR, cache_dir(NAME)], cache_dir(NAME)
        looked = []
        paths = None
        for place in places:
            found = [find_file(place, s) for s in stems]
            if all(found):
                paths = found
                break
            lacking = ", ".join(s + "[.gz]" for s, f in zip(stems, found) if f is None)
            looked.append(f"{place} ({'lacks ' + lacking if place.is_dir() else 'missing directory'})")
        if paths is None and download:
            paths, errors = self._download(stems, target)
            if paths is None:
                looked.append(f"download into {target} failed: " + "; ".join(errors))
        if paths is None:
            raise DatasetNotFoundError(
                f"FashionMNIST: cannot find the {'training' if self.train else 'test'} files "
                f"{stems[0]}[.gz] and {stems[1]}[.gz]. Looked in:\n  - " + "\n  - ".join(looked)
                + ("" if download else "\n  (download=False: not downloaded)")
                + "\nTo get the data: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu, puts them in "
                f"{SYSTEM_DIR}, found when no root is given), or put the files {stems[0]}[.gz] and {stems[1]}[.gz] "
                f"from {MIRRORS[0]} into "
                + (f"{root}" if root is not None else "a directory and pass it as root=")
                + " (--data-dir on the command line), or run with network access and download=True.")
        self.root = paths[0].parent
        images = read_verified(paths[0], stems[0], verify)
        labels = read_verified(paths[1], stems[1], verify)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXError(f"FashionMNIST: {paths[0]} holds {images.dtype} of shape {images.shape}, "
                           "expected uint8 images (N, H, W)")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise IDXError(f"FashionMNIST: {paths[1]} holds labels of shape {labels.shape} but {paths[0]} has "
                           f"{images.shape[0]} images")
        if labels.size and labels.max() >= len(CLASSES):
            raise IDXError(f"FashionMNIST: {paths[1]} has label {int(labels.max())}, outside 0..{len(CLASSES) - 1}")
        self.images = np.ascontiguousarray(images[:, None])
        self.targets = labels.astype(np.int64)

    @staticmethod
    def _download(stems, target):
        errors, paths = [], []
        for stem in stems:
            for mirror in MIRRORS:
                try:
                    paths.append(_download(mirror + stem + ".gz", target / (stem + ".gz"), md5=GZ_MD5[stem]))
                    break
                except ChecksumError:
                    raise
                except OSError as e:   # URLError is an OSError
                    errors.append(f"{mirror}{stem}.gz: {e}")
            else:
                return None, errors
        return paths, errors

    def __repr__(self) -> str:
        return f"FashionMNIST({'train' if self.train else 'test'}, {len(self)} images from {self.root})"
