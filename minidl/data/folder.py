"""Image folders: one sub-directory per class, JPEG/PNG files inside (Caltech-101, ImageNet layout).

``ImageFolder(root, transform=None, target_transform=None, *, size=None, classes=None)`` lists
the files up front and decodes them lazily with Pillow:

- ``.classes``: the sorted sub-directory names, or ``classes`` when given: a validation folder
  takes its training folder's list (``ImageFolder(val_dir, classes=train.classes)``) so that
  every name keeps its index even when val/ lacks a class; a sub-directory not in ``classes``
  is an error naming it. ``.class_to_idx``; ``.samples``: sorted list of (path, class_index);
  ``.targets``: int64 array of the class indices.
- A class directory with no image file, and a folder with no image at all, are errors.
- ``ds[i]`` -> (uint8 (3, H, W), label): converted to RGB, resized to ``size`` (int for a
  square, or (h, w)) with Pillow's bilinear filter when ``size`` is given. With ``transform``
  set: ``(transform(PIL RGB image, resized when size is given), target_transform(label))``.
- ``ds.load_batch(indices)`` -> (uint8 (n, 3, H, W), int64 (n,)); all images must share one
  size after resizing, else a ValueError that says to pass ``size=``.

An unreadable or corrupt image file raises ``ValueError`` naming the file (no silent skip:
skipping would change the dataset's length and order under the loader's feet). Remove or
fix the file, or list unreadable files beforehand with ``ImageFolder.find_unreadable()``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import ImageDataset
from .batch_transforms import _size_pair

__all__ = ["IMG_EXTENSIONS", "ImageFolder", "find_classes"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp")


def find_classes(root) -> list:
    """The sorted class sub-directory names of ``root`` (hidden ones skipped); none is an error."""
    found = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not found:
        raise FileNotFoundError(f"ImageFolder: {root} has no class sub-directories (expected root/<class>/<image>)")
    return found


class ImageFolder(ImageDataset):
    """A classification dataset read from ``root/<class>/<image file>`` (see the module docstring)."""

    def __init__(self, root, transform=None, target_transform=None, *, size=None, classes=None,
                 extensions=IMG_EXTENSIONS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: root {self.root} is not a directory")
        self._set_transforms(transform, target_transform)
        self.size = None if size is None else _size_pair(size, "ImageFolder")
        found = find_classes(self.root)
        if classes is None:
            self.classes = found
        else:
            self.classes = list(classes)
            unknown = [c for c in found if c not in self.classes]
            if unknown:
                raise ValueError(f"ImageFolder: {self.root} has class director{'ies' if len(unknown) > 1 else 'y'} "
                                 f"{unknown} not among the given classes {self.classes} (e.g. the training "
                                 "folder's): a model trained on those classes cannot score them")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        extensions = tuple(e.lower() for e in extensions)
        self.samples = []
        for c in found:
            count = len(self.samples)
            for dirpath, dirnames, filenames in os.walk(self.root / c, followlinks=True):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.lower().endswith(extensions) and not name.startswith("."):
                        self.samples.append((os.path.join(dirpath, name), self.class_to_idx[c]))
            if len(self.samples) == count:
                raise FileNotFoundError(f"ImageFolder: class directory {self.root / c} holds no image files "
                                        f"({', '.join(extensions)}); add images or remove the directory")
        self.targets = np.array([t for _, t in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def _open(self, path):
        """The RGB PIL Image of ``path``, resized to ``size`` when given."""
        from PIL import Image  # noqa: PLC0415 - Pillow loads only when images are decoded: keeps import minidl light
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if self.size is not None and img.size != (self.size[1], self.size[0]):
                    img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
                img.load()
        except (OSError, ValueError, SyntaxError) as e:   # PIL.UnidentifiedImageError is an OSError
            raise ValueError(f"ImageFolder: cannot decode image file {path}: {e}. Remove or replace the file "
                             "(ImageFolder.find_unreadable() lists all such files)") from None
        return img

    def _decode(self, path) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(self._open(path), dtype=np.uint8).transpose(2, 0, 1))

    def __getitem__(self, i):
        path, label = self.samples[i]
        image = self._open(path) if self.transform is not None else self._decode(path)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def load_batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Decode the images at ``indices`` -> (uint8 (n, 3, H, W), int64 (n,))."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        images = [self._decode(self.samples[i][0]) for i in indices]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            first = images[0].shape
            j = next(k for k, im in enumerate(images) if im.shape != first)
            raise ValueError(
                f"ImageFolder.load_batch: images have different sizes, e.g. {self.samples[indices[0]][0]} is "
                f"{first[1]}x{first[2]} but {self.samples[indices[j]][0]} is {images[j].shape[1]}x{images[j].shape[2]}; "
                "pass size= to ImageFolder (e.g. ImageFolder(root, size=256)) to resize them to one size")
        if not images:
            h, w = self.size if self.size is not None else (0, 0)
            return np.empty((0, 3, h, w), np.uint8), np.empty(0, np.int64)
        return np.stack(images), self.targets[indices]

    def find_unreadable(self) -> list[tuple[str, str]]:
        """(path, reason) for every file Pillow cannot decode (decodes every image: slow on big folders)."""
        bad = []
        for path, _ in self.samples:
            try:
                self._decode(path)
            except ValueError as e:
                bad.append((path, str(e)))
        return bad

    def __repr__(self) -> str:
        return f"ImageFolder({self.root}, {len(self)} images, {len(self.classes)} classes, size={self.size})"
