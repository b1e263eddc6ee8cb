"""minidl.functional: the differentiable functions, with PyTorch's names and signatures.

Each function checks its arguments (so bad input gets an error naming the
function, the argument and the shapes) and then applies a Function from
``minidl.ops``; the layers in ``minidl.nn`` call these.
"""
from __future__ import annotations

from . import backend
from .ops import basic, loss
from .ops import _flatten
from .tensor import Tensor, as_tensor


def relu(x: Tensor) -> Tensor:
    return basic.ReLU.apply(x)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """As torch.flatten: merge dims start_dim..end_dim into one."""
    return _flatten(x, start_dim, end_dim)


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """y = x w^T + b with w of shape (out_features, in_features), as torch.nn.functional.linear."""
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape {w.shape} "
                         f"(input's last dim must equal in_features = weight.shape[1])")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias has shape {b.shape}, expected ({w.shape[0]},) for weight {w.shape}")
    return loss.Linear.apply(x, w) if b is None else loss.Linear.apply(x, w, b)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return loss.Softmax.apply(x, dim=dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return loss.LogSoftmax.apply(x, dim=dim)


def cross_entropy(logits: Tensor, target) -> Tensor:
    """Mean over the batch of -log softmax(logits)[i, target[i]].

    logits: (N, C) floats; target: N integer labels in [0, C), a Tensor or a NumPy/CuPy array.
    """
    target = target.data if isinstance(target, Tensor) else target
    if not hasattr(target, "dtype"):
        import numpy as np  # noqa: PLC0415
        target = np.asarray(target)
    loss.check_labels(logits.shape, target)
    if backend.device_of(target) != logits.device:
        target = backend.to_device(target, logits.device)
    return loss.CrossEntropy.apply(logits, as_tensor(target, like=logits))
