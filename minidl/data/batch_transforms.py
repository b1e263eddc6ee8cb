"""Batch transforms: vectorised over a whole batch, float32 (N, C, H, W) in, float32 out.

These are the DataLoader's ``transform=`` (the fast path of minidl's image datasets). The
per-sample transforms with torchvision's names and calling convention (``t(img)``, given to a
dataset's ``transform=``) are in ``minidl.data.transforms``.

Each transform is a callable ``t(batch, rng) -> batch`` where ``rng`` is a NumPy Generator
(the DataLoader makes one per batch from (seed, epoch, batch)); deterministic transforms
ignore it. Random transforms draw per-image parameters from ``rng`` in a fixed order, so the
same batch and the same ``rng`` state give the same result.

- ``Compose([t1, t2, ...])``                 apply in order, passing the same rng along
- ``Resize(size)``                           bilinear, PyTorch's ``F.interpolate(mode="bilinear",
                                             align_corners=False)`` (no antialiasing); int = square
- ``RandomCrop(size, padding=0)``            zero padding, then one random offset per image
- ``CenterCrop(size)``                       torchvision's rounding of the offset
- ``RandomHorizontalFlip(p=0.5)``            each image flipped with probability p
- ``Normalize(mean, std)``                   per channel: (x - mean_c) / std_c
- ``PCALighting(eigval, eigvec, alphastd)``  Krizhevsky et al. 2012, section 4.1: add
                                             sum_i alpha_i * eigval_i * eigvec[:, i] to every RGB pixel,
                                             alpha ~ N(0, alphastd^2) drawn per image
- ``pca_lighting_basis(images)``             eigval, eigvec of the RGB covariance of a sample
- ``ten_crop(batch, size)``                  (10, N, C, h, w): 4 corners + centre, then the
                                             horizontal flip of each of those five
- ``ten_crop_predict(model_fn, batch, size)`` mean softmax over the 10 crops (the paper's test)
"""
from __future__ import annotations

import numpy as np

from ..grad_mode import no_grad

__all__ = ["CenterCrop", "Compose", "IMAGENET_PCA", "Normalize", "PCALighting", "RandomCrop",
           "RandomHorizontalFlip", "Resize", "pca_lighting_basis", "ten_crop", "ten_crop_predict"]

# The ImageNet RGB eigen-decomposition (pixel values in [0, 1]) used by fb.resnet.torch and many
# AlexNet re-implementations: eigenvalues, and eigenvectors as the COLUMNS of the matrix.
IMAGENET_PCA = {
    "eigval": np.array([0.2175, 0.0188, 0.0045], dtype=np.float32),
    "eigvec": np.array([[-0.5675, 0.7192, 0.4009],
                        [-0.5808, -0.0045, -0.8140],
                        [-0.5836, -0.6948, 0.4203]], dtype=np.float32),
}


def _size_pair(size, who):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: size must be an int or a pair (h, w), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{who}: size must be positive, got {size!r}")
    return h, w


def _check_batch(x, who):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"{who}: expected a batch array (N, C, H, W), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    return x


def _check_fits(x, h, w, who):
    if h > x.shape[2] or w > x.shape[3]:
        raise ValueError(f"{who}: crop size ({h}, {w}) is larger than the images (batch shape {x.shape})")


class Compose:
    """Apply transforms in order; each gets the same rng (so draws follow one another)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable as t(batch, rng)")
            if getattr(t, "per_sample", False):
                raise TypeError(f"batch_transforms.Compose: {t!r} is a per-sample transform "
                                "(minidl.data.transforms, called as t(img)); use the batch transform of the same "
                                "name from minidl.data.batch_transforms, or give it to the dataset's transform=")

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


def _bilinear_matrix(n_in, n_out, dtype):
    """(n_out, n_in) matrix M with M @ v = v linearly resampled (half-pixel centres, edges clamped)."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1 - frac)
    np.add.at(m, (rows, i1), frac)
    return m.astype(dtype)


class Resize:
    """Bilinear resize of every image to ``size`` (int: square; (h, w)); as torch's
    ``F.interpolate(x, size, mode="bilinear", align_corners=False)``, without antialiasing.

    Written as out = M_h @ x @ M_w^T with two small interpolation matrices, computed for the whole
    batch as two matrix products (one along W, one along H)."""

    def __init__(self, size):
        self.size = _size_pair(size, "Resize")
        self._cache = {}

    def __call__(self, x, rng=None):
        x = _check_batch(x, "Resize")
        h, w = self.size
        if x.shape[2:] == (h, w):
            return x
        key = (x.shape[2], x.shape[3], x.dtype.str)
        if key not in self._cache:
            self._cache[key] = (_bilinear_matrix(x.shape[2], h, x.dtype), _bilinear_matrix(x.shape[3], w, x.dtype).T)
        mh, mwt = self._cache[key]
        n, c, H, W = x.shape
        # Two large GEMMs rather than N*C small ones (far faster with a busy multithreaded BLAS):
        rows = x.reshape(n * c * H, W) @ mwt                                # (N*C*H, w): along W
        rows = rows.reshape(n * c, H, w).transpose(1, 0, 2).reshape(H, n * c * w)
        out = (mh @ rows).reshape(h, n * c, w).transpose(1, 0, 2)           # (N*C, h, w): along H
        return np.ascontiguousarray(out).reshape(n, c, h, w)

    def __repr__(self):
        return f"Resize({self.size})"


def _crop(x, tops, lefts, h, w):
    """Per-image crops: out[n] = x[n, :, tops[n]:tops[n]+h, lefts[n]:lefts[n]+w], by fancy indexing."""
    n, c = x.shape[:2]
    rows = tops[:, None] + np.arange(h)          # (N, h)
    cols = lefts[:, None] + np.arange(w)         # (N, w)
    return x[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :]]


class RandomCrop:
    """Zero-pad by ``padding`` on every side, then crop ``size`` at a random offset per image
    (top offsets drawn first, then left offsets, each uniform over all valid positions)."""

    def __init__(self, size, padding=0):
        self.size = _size_pair(size, "RandomCrop")
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative integer, got {padding!r}")
        self.padding = int(padding)

    def __call__(self, x, rng):
        x = _check_batch(x, "RandomCrop")
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        h, w = self.size
        _check_fits(x, h, w, f"RandomCrop (padding={p})")
        n = x.shape[0]
        tops = rng.integers(0, x.shape[2] - h + 1, size=n)
        lefts = rng.integers(0, x.shape[3] - w + 1, size=n)
        return _crop(x, tops, lefts, h, w)

    def __repr__(self):
        return f"RandomCrop({self.size}, padding={self.padding})"


def _center_offsets(x, h, w):
    return int(round((x.shape[2] - h) / 2.0)), int(round((x.shape[3] - w) / 2.0))


class CenterCrop:
    """Crop ``size`` from the centre (offset round((H - h) / 2), as torchvision)."""

    def __init__(self, size):
        self.size = _size_pair(size, "CenterCrop")

    def __call__(self, x, rng=None):
        x = _check_batch(x, "CenterCrop")
        h, w = self.size
        _check_fits(x, h, w, "CenterCrop")
        top, left = _center_offsets(x, h, w)
        return np.ascontiguousarray(x[:, :, top:top + h, left:left + w])

    def __repr__(self):
        return f"CenterCrop({self.size})"


class RandomHorizontalFlip:
    """Flip each image left-right with probability ``p`` (flip[n] = rng.random(N)[n] < p)."""

    def __init__(self, p=0.5):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x, rng):
        x = _check_batch(x, "RandomHorizontalFlip")
        flip = rng.random(x.shape[0]) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """Per channel: (x - mean[c]) / std[c]."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has {self.std.size}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, x, rng=None):
        x = _check_batch(x, "Normalize")
        if x.shape[1] != self.mean.size:
            raise ValueError(f"Normalize: the batch has {x.shape[1]} channels (shape {x.shape}) but mean/std "
                             f"have {self.mean.size} values")
        mean = self.mean.astype(x.dtype)[None, :, None, None]
        std = self.std.astype(x.dtype)[None, :, None, None]
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class PCALighting:
    """The paper's colour augmentation: to every pixel [R, G, B] of image n add
    ``eigvec @ (alpha[n] * eigval)`` with alpha[n] ~ N(0, alphastd^2) (3 values per image).

    ``eigval`` (3,), ``eigvec`` (3, 3) with the eigenvectors p_i as COLUMNS, both for pixel values
    on the batch's scale ([0, 1] from the DataLoader): ``pca_lighting_basis`` computes them, and
    ``IMAGENET_PCA`` holds the usual ImageNet ones."""

    def __init__(self, eigval, eigvec, alphastd=0.1):
        self.eigval = np.asarray(eigval, dtype=np.float64).reshape(-1)
        self.eigvec = np.asarray(eigvec, dtype=np.float64)
        if self.eigval.shape != (3,) or self.eigvec.shape != (3, 3):
            raise ValueError(f"PCALighting: eigval must have shape (3,) and eigvec (3, 3), got "
                             f"{self.eigval.shape} and {self.eigvec.shape}")
        self.alphastd = float(alphastd)

    def __call__(self, x, rng):
        x = _check_batch(x, "PCALighting")
        if x.shape[1] != 3:
            raise ValueError(f"PCALighting: needs RGB images (3 channels), got batch shape {x.shape}")
        if self.alphastd == 0:
            return x
        alpha = rng.normal(0.0, self.alphastd, size=(x.shape[0], 3))     # (N, 3)
        shift = (alpha * self.eigval) @ self.eigvec.T                    # (N, 3): shift[n, c] = sum_i eigvec[c, i] a_ni l_i
        return x + shift.astype(x.dtype)[:, :, None, None]

    def __repr__(self):
        return f"PCALighting(eigval={self.eigval.tolist()}, alphastd={self.alphastd})"


def pca_lighting_basis(images, chunk: int = 1024):
    """Eigenvalues (3,) descending and eigenvectors (3, 3) (columns) of the covariance of RGB pixels.

    ``images``: (N, 3, H, W) uint8 (scaled to [0, 1] first, the DataLoader's scale) or float
    (taken as is). The covariance is accumulated in float64 over chunks of images, so a whole
    training set fits in little memory. Returns float32 arrays for ``PCALighting``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"pca_lighting_basis: expected RGB images (N, 3, H, W), got shape {images.shape}")
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    total, outer, count = np.zeros(3), np.zeros((3, 3)), 0
    for start in range(0, images.shape[0], chunk):
        p = images[start:start + chunk].astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1) * scale
        total += p.sum(axis=1)
        outer += p @ p.T
        count += p.shape[1]
    if count < 2:
        raise ValueError(f"pca_lighting_basis: need at least 2 pixels, got images of shape {images.shape}")
    mean = total / count
    cov = (outer - count * np.outer(mean, mean)) / (count - 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    return eigval[order].astype(np.float32), eigvec[:, order].astype(np.float32)


def ten_crop(batch, size) -> np.ndarray:
    """(10, N, C, h, w): top-left, top-right, bottom-left, bottom-right, centre, then the
    horizontal flips of those five in the same order (crop k + 5 = crop k flipped)."""
    x = _check_batch(batch, "ten_crop")
    h, w = _size_pair(size, "ten_crop")
    _check_fits(x, h, w, "ten_crop")
    H, W = x.shape[2:]
    top, left = _center_offsets(x, h, w)
    corners = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), (top, left)]
    five = np.stack([x[:, :, t:t + h, l:l + w] for t, l in corners])
    return np.concatenate([five, five[..., ::-1]])


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ten_crop_predict(model_fn, batch, size) -> np.ndarray:
    """Mean over the 10 crops of softmax(model_fn(crop)): (N, num_classes) probabilities.

    ``model_fn`` maps a NumPy batch (N, C, h, w) to logits (N, K); it is called once per crop
    under ``minidl.no_grad()`` (no graph is built); a Tensor or CuPy result is brought to NumPy."""
    crops = ten_crop(batch, size)
    total = None
    with no_grad():
        for crop in crops:
            logits = model_fn(np.ascontiguousarray(crop))
            if hasattr(logits, "numpy"):
                logits = logits.numpy()
            elif hasattr(logits, "get"):
                logits = logits.get()
            logits = np.asarray(logits)
            if logits.ndim != 2 or logits.shape[0] != crop.shape[0]:
                raise ValueError(f"ten_crop_predict: model_fn returned shape {logits.shape} for a crop batch of "
                                 f"shape {crop.shape}; expected logits (N, num_classes) = ({crop.shape[0]}, K)")
            p = _softmax(logits.astype(np.float64))
            total = p if total is None else total + p
    return (total / len(crops)).astype(np.float32)
