"""Per-sample transforms with torchvision's names: one image in, one image out, ``t(img)``.

Give them to a dataset's ``transform=`` (``FashionMNIST(transform=...)``, ``ImageFolder(...)``,
or call them in your own ``Dataset.__getitem__``). The whole-batch transforms that the DataLoader
applies on minidl's fast path (``DataLoader(transform=...)``, called as ``t(batch, rng)``) are in
``minidl.data.batch_transforms``.

An image is a PIL Image, a minidl Tensor (C, H, W), or a NumPy array (C, H, W); the geometric
transforms return the type they were given. ``ToTensor`` turns a PIL Image or an (H, W[, C])
array into a float32 Tensor (C, H, W), dividing by 255 when the input is uint8 (as torchvision).

- ``Compose(ts)``, ``Lambda(fn)``, ``ToTensor()``, ``Normalize(mean, std)``
- ``Resize(size)``: an int matches the SHORTER side to it, keeping the aspect ratio (torchvision);
  (h, w) is exact. Bilinear: Pillow's filter for PIL Images, PyTorch's
  ``interpolate(mode="bilinear", align_corners=False)`` without antialiasing for Tensors/arrays.
- ``CenterCrop(size)``, ``RandomCrop(size, padding=None, fill=0)``, ``RandomHorizontalFlip(p=0.5)``

Randomness. Random transforms draw from ``sample_rng()``: inside a DataLoader that is a
Generator made for each batch from (seed, epoch, batch), so worker threads cannot change the
result; elsewhere it is minidl's seeded "augment" stream. Either way ``md.manual_seed`` makes
them reproducible.
"""
from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from .. import backend
from .. import random as _random
from ..tensor import Tensor
from .batch_transforms import Resize as _BatchResize, _size_pair

__all__ = ["CenterCrop", "Compose", "Lambda", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Resize",
           "ToTensor", "sample_rng", "using_rng"]

_local = threading.local()


def sample_rng() -> np.random.Generator:
    """The Generator random per-sample transforms draw from (see the module docstring)."""
    rng = getattr(_local, "rng", None)
    return rng if rng is not None else _random.generator("augment")


@contextlib.contextmanager
def using_rng(rng: np.random.Generator):
    """Within the block (in this thread), per-sample transforms draw from ``rng``."""
    previous = getattr(_local, "rng", None)
    _local.rng = rng
    try:
        yield rng
    finally:
        _local.rng = previous


def _is_pil(img) -> bool:
    return type(img).__module__.startswith("PIL.") and hasattr(img, "getbands")


def _as_chw(img, who):
    """(array (C, H, W), function giving the result back in the input's type)."""
    if _is_pil(img):
        from PIL import Image  # noqa: PLC0415 - Pillow loads only when images are decoded: keeps import minidl light
        a = np.asarray(img)
        if a.ndim == 2:
            return a[None], lambda out: Image.fromarray(np.ascontiguousarray(out[0]))
        return a.transpose(2, 0, 1), lambda out: Image.fromarray(np.ascontiguousarray(out.transpose(1, 2, 0)))
    if isinstance(img, Tensor):
        return backend.asnumpy(img.data), lambda out: Tensor(np.ascontiguousarray(out))
    if isinstance(img, np.ndarray) and img.ndim == 3:
        return img, np.ascontiguousarray
    raise TypeError(f"{who}: expected a PIL Image, a Tensor (C, H, W) or a NumPy array (C, H, W), got "
                    f"{getattr(img, 'shape', type(img).__name__)}")


class _PerSample:
    per_sample = True    # the DataLoader's transform= refuses these (they take one image, not a batch)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(_PerSample):
    """Apply the transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class Lambda(_PerSample):
    """Apply a user function."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: the argument must be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)


class ToTensor(_PerSample):
    """PIL Image or (H, W[, C]) array -> float32 Tensor (C, H, W); uint8 values are divided by 255."""

    def __call__(self, pic):
        if _is_pil(pic):
            a = np.asarray(pic)
        elif isinstance(pic, np.ndarray) and pic.ndim in (2, 3):
            a = pic
        else:
            raise TypeError(f"ToTensor: expected a PIL Image or a NumPy array (H, W) or (H, W, C), got "
                            f"{getattr(pic, 'shape', type(pic).__name__)}")
        a = a[:, :, None] if a.ndim == 2 else a
        chw = np.ascontiguousarray(a.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            return Tensor(chw.astype(np.float32) / np.float32(255))
        if chw.dtype.kind == "b" or chw.dtype.kind in "iu":
            return Tensor(chw.astype(np.float32))
        return Tensor(chw)


class Normalize(_PerSample):
    """Per channel: (x - mean[c]) / std[c] on a float Tensor or array (C, H, W)."""

    def __init__(self, mean, std, inplace=False):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has {self.std.size}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, img):
        if _is_pil(img):
            raise TypeError("Normalize: needs a Tensor, got a PIL Image; put transforms.ToTensor() before it")
        x, back = _as_chw(img, "Normalize")
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: needs a float image, got dtype {x.dtype}; put transforms.ToTensor() first")
        if max(self.mean.size, self.std.size) not in (1, x.shape[0]):
            raise ValueError(f"Normalize: the image has {x.shape[0]} channels (shape {x.shape}) but mean/std have "
                             f"{max(self.mean.size, self.std.size)} values")
        mean = self.mean.astype(x.dtype)[:, None, None]
        std = self.std.astype(x.dtype)[:, None, None]
        return back((x - mean) / std)


def _resized_hw(size, h, w, who):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError(f"{who}: size must be positive, got {size}")
        if h <= w:   # the shorter side becomes size (torchvision's int rule)
            return int(size), max(1, int(size * w / h))
        return max(1, int(size * h / w)), int(size)
    return _size_pair(size, who)


class Resize(_PerSample):
    """Bilinear resize: an int matches the shorter side (aspect kept), (h, w) is exact."""

    def __init__(self, size):
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if size <= 0:
                raise ValueError(f"Resize: size must be positive, got {size}")
            self.size = int(size)
        else:
            self.size = _size_pair(size, "Resize")

    def __call__(self, img):
        if _is_pil(img):
            from PIL import Image  # noqa: PLC0415 - Pillow loads only when images are decoded: keeps import minidl light
            h, w = _resized_hw(self.size, img.height, img.width, "Resize")
            return img if (h, w) == (img.height, img.width) else img.resize((w, h), Image.BILINEAR)
        x, back = _as_chw(img, "Resize")
        h, w = _resized_hw(self.size, x.shape[1], x.shape[2], "Resize")
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        return back(_BatchResize((h, w))(x[None].astype(dtype, copy=False))[0])


def _check_fits(x, h, w, who):
    if h > x.shape[1] or w > x.shape[2]:
        raise ValueError(f"{who}: crop size ({h}, {w}) is larger than the image ({x.shape[1]}, {x.shape[2]})")


class CenterCrop(_PerSample):
    """Crop ``size`` from the centre, offset round((H - h) / 2) (torchvision's rounding)."""

    def __init__(self, size):
        self.size = _size_pair(size, "CenterCrop")

    def __call__(self, img):
        x, back = _as_chw(img, "CenterCrop")
        h, w = self.size
        _check_fits(x, h, w, "CenterCrop")
        top, left = int(round((x.shape[1] - h) / 2.0)), int(round((x.shape[2] - w) / 2.0))
        return back(x[:, top:top + h, left:left + w])


def _padding4(padding, who):
    """torchvision's padding: int (all sides), (lr, tb) or (left, top, right, bottom)."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        padding = (padding,) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        padding = padding * 2
    if len(padding) != 4 or min(padding) < 0:
        raise ValueError(f"{who}: padding must be a non-negative int, (lr, tb) or (l, t, r, b), got {padding}")
    return padding


class RandomCrop(_PerSample):
    """Pad by ``padding`` with ``fill``, then crop ``size`` at a random offset (top drawn, then left)."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _size_pair(size, "RandomCrop")
        self.padding = None if padding is None else _padding4(padding, "RandomCrop")
        self.pad_if_needed, self.fill = bool(pad_if_needed), fill
        if padding_mode != "constant":
            raise ValueError(f"RandomCrop: only padding_mode='constant' is supported, got {padding_mode!r}")

    def __call__(self, img):
        x, back = _as_chw(img, "RandomCrop")
        h, w = self.size
        if self.padding is not None:
            left, top, right, bottom = self.padding
            x = np.pad(x, ((0, 0), (top, bottom), (left, right)), constant_values=self.fill)
        if self.pad_if_needed and (x.shape[1] < h or x.shape[2] < w):
            dh, dw = max(h - x.shape[1], 0), max(w - x.shape[2], 0)
            x = np.pad(x, ((0, 0), (dh, dh), (dw, dw)), constant_values=self.fill)
        _check_fits(x, h, w, "RandomCrop")
        rng = sample_rng()
        top = int(rng.integers(0, x.shape[1] - h + 1))
        left = int(rng.integers(0, x.shape[2] - w + 1))
        return back(x[:, top:top + h, left:left + w])


class RandomHorizontalFlip(_PerSample):
    """Flip left-right when ``sample_rng().random() < p``."""

    def __init__(self, p=0.5):
        if not 0.0 <= float(p) <= 1.0 or math.isnan(float(p)):
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, img):
        x, back = _as_chw(img, "RandomHorizontalFlip")
        if sample_rng().random() < self.p:
            return back(x[:, :, ::-1])
        return img
