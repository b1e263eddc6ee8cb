"""``md.cuda``: what torch.cuda answers about GPUs, for minidl's GPU backend (CuPy).

``is_available()`` is False and ``device_count()`` 0 without CuPy or without a CUDA GPU;
``md.tensor(x, device="cuda")`` then raises saying which of the two is missing.
"""
from __future__ import annotations

from . import backend


def is_available() -> bool:
    """True when minidl can compute on a GPU (CuPy imports and sees a CUDA device)."""
    return backend.gpu_available()


def device_count() -> int:
    """How many CUDA GPUs CuPy sees (0 when none can be used); minidl computes on GPU 0."""
    if not backend.gpu_available():
        return 0
    return int(backend.cupy_module().cuda.runtime.getDeviceCount())
