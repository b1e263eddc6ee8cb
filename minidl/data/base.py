"""ImageDataset: what minidl's image datasets share (in memory: ``.images`` uint8 (N, C, H, W), ``.targets``).

- ``ds[i]``: ``(uint8 (C, H, W), int label)``; with ``transform``/``target_transform`` set (as
  torchvision), ``(transform(PIL Image), target_transform(label))``: the image reaches the
  transform as a PIL Image (mode "L" for one channel, "RGB" for three), as torchvision's do.
- ``load_batch(indices)``: ``(uint8 (n, C, H, W), int64 (n,))`` in one read.
- ``_uint8_batch_source()``: ``load_batch`` for the DataLoader's fast path, or None when a
  per-sample transform is set (the loader then stacks ``ds[i]`` instead).
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset

__all__ = ["ImageDataset", "to_pil"]


def to_pil(chw: np.ndarray):
    """uint8 (1, H, W) or (3, H, W) -> PIL Image ("L" or "RGB")."""
    from PIL import Image  # noqa: PLC0415 - Pillow loads only when images are decoded: keeps import minidl light
    if chw.shape[0] == 1:
        return Image.fromarray(np.ascontiguousarray(chw[0]))
    return Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))


class ImageDataset(Dataset):
    """Base of FashionMNIST and CIFAR10 (and the contract ImageFolder follows)."""

    transform = None
    target_transform = None

    def _set_transforms(self, transform, target_transform):
        for name, t in (("transform", transform), ("target_transform", target_transform)):
            if t is not None and not callable(t):
                raise TypeError(f"{type(self).__name__}: {name} must be callable, got {t!r}")
        self.transform, self.target_transform = transform, target_transform

    def _image(self, i) -> np.ndarray:
        return self.images[i]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        image, label = self._image(i), int(self.targets[i])
        if self.transform is not None:
            image = self.transform(to_pil(image))
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def load_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return self.images[indices], self.targets[indices]

    def _uint8_batch_source(self):
        if self.transform is not None or self.target_transform is not None:
            return None
        return self.load_batch
