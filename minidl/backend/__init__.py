"""The backend layer: the only place in minidl that knows about CuPy.

A device is the string "cpu" (NumPy arrays) or "gpu" (CuPy arrays).  Everything
else asks this module for the array module of an array (``get_array_module``)
and moves arrays with ``to_device``; nothing else imports CuPy.
"""
from __future__ import annotations

import numpy as np

DEVICES = ("cpu", "gpu")

_cupy = None          # the cupy module once loaded and a GPU was found
_cupy_problem = None  # why "gpu" is unavailable, as a sentence


def _load_cupy():
    """Import CuPy once; remember why it failed so the error can say so."""
    global _cupy, _cupy_problem
    if _cupy is not None or _cupy_problem is not None:
        return _cupy
    try:
        import cupy  # noqa: PLC0415 - the one import of CuPy in the project
    except Exception as exc:  # ImportError, or a broken CUDA install
        _cupy_problem = (f"CuPy is not installed or failed to import ({exc.__class__.__name__}: {exc}); "
                         "install the GPU extra: pip install -e '.[gpu]'")
        return None
    version = getattr(cupy, "__version__", "?")
    try:   # no driver (a machine without a GPU) raises CUDARuntimeError here, not at import
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        count, detail = 0, f"{exc.__class__.__name__}: {exc}"
    else:
        detail = "the CUDA runtime reports 0 devices"
    if count < 1:
        _cupy_problem = f"CuPy {version} is installed but no CUDA GPU is usable ({detail})"
        return None
    _cupy = cupy
    return _cupy


def gpu_available() -> bool:
    """True when CuPy imports and at least one CUDA GPU is visible."""
    return _load_cupy() is not None


def gpu_unavailable_reason():
    """Why device "gpu" cannot be used, as a sentence (None when it can)."""
    return None if gpu_available() else _cupy_problem


def cupy_module():
    """The cupy module; raises RuntimeError saying why when it cannot be used."""
    cp = _load_cupy()
    if cp is None:
        raise RuntimeError(f"device 'gpu' is not available: {_cupy_problem}")
    return cp


def _parse_device(device):
    """(name, index) for "cpu", "gpu", "cuda", "cuda:N", "gpu:N" or a device object; ValueError otherwise."""
    if not isinstance(device, str):
        raise TypeError(f"a device must be a string such as 'cpu' or 'cuda', or a minidl.device; got {device!r}")
    text = str.__str__(device).strip().lower()
    kind, _, index = text.partition(":")
    if kind == "cuda":
        kind = "gpu"
    if kind not in DEVICES or (index and not index.isdigit()) or (kind == "cpu" and index not in ("", "0")):
        raise ValueError(f"unknown device {str.__str__(device)!r}; expected 'cpu', 'gpu', 'cuda' or 'cuda:N'")
    return kind, (int(index) if index else None)


class device(str):
    """A device, as torch.device: ``device("cpu")``, ``device("cuda")``, ``device("cuda:0")``.

    It is the string "cpu" or "gpu" ("gpu:N" for another GPU), so it works wherever a device
    string does; ``.type`` says "cpu" or "cuda" and ``.index`` the GPU's number (None for the CPU).
    Making one checks only the spelling; using a GPU device where there is none raises.
    """

    def __new__(cls, spec="cpu", index=None):
        kind, parsed = _parse_device(spec)
        index = parsed if index is None else int(index)
        value = kind if not index else f"{kind}:{index}"
        self = super().__new__(cls, value)
        self.type, self.index = ("cuda" if kind == "gpu" else "cpu"), (index if kind == "gpu" else None)
        return self

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (TypeError, ValueError):
                return False
            return str.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = str.__hash__

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"


def check_device(device) -> str:
    """Normalise a device ("cpu", "gpu"; "cuda", "cuda:0" and minidl.device objects as aliases)
    to "cpu" or "gpu", and check it is usable (a clear error where there is no GPU)."""
    name, index = _parse_device(device)
    if name == "gpu":
        cp = cupy_module()
        if index:  # minidl computes on one GPU per process: the current one
            count = cp.cuda.runtime.getDeviceCount()
            where = f"this machine has {count} GPU{'s' * (count != 1)}" if index >= count else \
                "minidl uses one GPU per process, GPU 0; choose which one with CUDA_VISIBLE_DEVICES"
            raise ValueError(f"device {str.__str__(device)!r} is not available: {where}")
    return name


def is_gpu_array(array) -> bool:
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def get_array_module(*arrays):
    """numpy, or cupy when any of the arrays lives on the GPU (as cupy.get_array_module)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def device_of(array) -> str:
    return "gpu" if is_gpu_array(array) else "cpu"


def to_device(array, device: str):
    """Copy an array to "cpu" or "gpu"; returns the same array when it is already there."""
    device = check_device(device)
    if device == "gpu":
        return cupy_module().asarray(array)
    return asnumpy(array)


def asnumpy(array):
    """A host NumPy array for a NumPy or CuPy array (no copy for NumPy arrays)."""
    if is_gpu_array(array):
        return array.get()
    return np.asarray(array)


def scatter_add(target, index, values):
    """target[index] += values, with repeated indices accumulated (np.add.at)."""
    if is_gpu_array(target):
        import cupyx  # noqa: PLC0415 - ships with CuPy
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)
