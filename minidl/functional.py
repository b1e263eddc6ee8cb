"""minidl.functional: the differentiable functions, with PyTorch's names and signatures.

Each function checks its arguments (so bad input gets an error naming the
function, the argument and the shapes) and then applies a Function from
``minidl.ops``; the layers in ``minidl.nn`` call these.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _validate as V, backend
from .ops import basic, linear as _linear, loss
from .ops import _flatten
from . import random as _random
from .ops import batchnorm as _bn, conv as _conv, dropout as _dropout
from .ops import lrn as _lrn, pool as _pool
from .tensor import Tensor, as_tensor


def relu(x: Tensor) -> Tensor:
    return basic.ReLUFunction.apply(x)


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
    return _linear.LinearFunction.apply(x, w) if b is None else _linear.LinearFunction.apply(x, w, b)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return loss.SoftmaxFunction.apply(x, dim=dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return loss.LogSoftmaxFunction.apply(x, dim=dim)


# ---------------------------------------------------------------- losses (minidl/ops/loss.py)
def _reduction(name: str, size_average, reduce, reduction: str) -> str:
    """torch's legacy size_average/reduce flags folded into ``reduction``, which is then checked."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
    if reduction not in loss.REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {loss.REDUCTIONS}, got {reduction!r}")
    return reduction


def _labels(name: str, scores, target, ignore_index: int):
    """target as an integer array on scores' device, checked against scores' shape."""
    if not isinstance(scores, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(scores).__name__}")
    _check_float(name, scores)
    target = target.data if isinstance(target, Tensor) else target
    if not hasattr(target, "dtype"):
        target = np.asarray(target)
    loss.check_labels(scores.shape, target, name, V.integer(name, "ignore_index", ignore_index))
    return backend.to_device(target, scores.device) if backend.device_of(target) != scores.device else target


def _class_weight(name: str, scores, weight):
    """The per-class weight as an array of shape (C,) on scores' device, or None."""
    if weight is None:
        return None
    weight = weight.data if isinstance(weight, Tensor) else backend.to_device(np.asarray(weight), scores.device)
    if tuple(weight.shape) != (scores.shape[1],) or weight.dtype.kind != "f":
        raise ValueError(f"{name}: weight must be a float tensor of shape ({scores.shape[1]},), one per class "
                         f"(input shape {scores.shape}), got {weight.dtype} of shape {tuple(weight.shape)}")
    return weight


def cross_entropy(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """As torch.nn.functional.cross_entropy: -log softmax(input, dim=1)[target], per position.

    input (N, C) or (N, C, d1, ...) floats; target (N,) or (N, d1, ...) integer labels in [0, C), a
    Tensor or a NumPy/CuPy array; positions whose label is ``ignore_index`` count for nothing.
    ``weight`` (C,) scales each class; "mean" is then the weighted mean (divided by the sum of the
    targets' weights), as torch.  ``label_smoothing`` eps mixes the target with a uniform one.
    """
    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
    target = _labels("cross_entropy", input, target, ignore_index)
    label_smoothing = V.probability("cross_entropy", "label_smoothing", label_smoothing)
    return loss.CrossEntropy.apply(input, target, weight=_class_weight("cross_entropy", input, weight),
                                   ignore_index=int(ignore_index), reduction=reduction,
                                   label_smoothing=float(label_smoothing))


def nll_loss(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> Tensor:
    """As torch.nn.functional.nll_loss: -input[n, target[n]] for log-probabilities ``input``
    (N, C) or (N, C, d1, ...); weight, ignore_index and reduction as in cross_entropy."""
    reduction = _reduction("nll_loss", size_average, reduce, reduction)
    target = _labels("nll_loss", input, target, ignore_index)
    return loss.NLLLoss.apply(input, target, weight=_class_weight("nll_loss", input, weight),
                              ignore_index=int(ignore_index), reduction=reduction)


def _same_shape_pair(name: str, input, target, target_name: str = "target"):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    _check_float(name, input)
    target = as_tensor(target, like=input)
    if target.shape != input.shape:  # torch broadcasts (with a warning); a mismatch is nearly always a bug
        raise ValueError(f"{name}: {target_name} shape {target.shape} differs from input shape {input.shape}; "
                         f"reshape one of them (e.g. target.reshape({', '.join(map(str, input.shape))}))")
    if target.dtype != input.dtype:
        raise TypeError(f"{name}: {target_name} dtype {target.dtype} differs from input dtype {input.dtype} "
                        f"(shape {input.shape}); convert it with .float() or .astype")
    return target


def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """As torch.nn.functional.mse_loss: (input - target)^2, reduced; the shapes must match."""
    reduction = _reduction("mse_loss", size_average, reduce, reduction)
    return loss.MSELoss.apply(input, _same_shape_pair("mse_loss", input, target), reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """As torch.nn.functional.binary_cross_entropy_with_logits: -[y log sigmoid(x) + (1-y) log(1-sigmoid(x))]
    in a form that never overflows; ``pos_weight`` multiplies the positive term (broadcast over the
    last dim), ``weight`` each element.  The shapes of input and target must match."""
    name = "binary_cross_entropy_with_logits"
    reduction = _reduction(name, size_average, reduce, reduction)
    target = _same_shape_pair(name, input, target)
    extras = {}
    for arg, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            continue
        value = as_tensor(value, like=input).data.astype(input.dtype, copy=False)
        try:
            shape = np.broadcast_shapes(value.shape, input.shape)
        except ValueError:
            shape = None
        if shape != tuple(input.shape):
            raise ValueError(f"{name}: {arg} of shape {tuple(value.shape)} does not broadcast to the input's "
                             f"shape {input.shape}")
        extras[arg] = value
    return loss.BCEWithLogits.apply(input, target, reduction=reduction, **extras)


# ------------------------------------------------------------- pooling, LRN
def _check_float_input(name: str, x, ndim: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
    if ndim == "4" and x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if ndim == "3+" and x.ndim < 3:
        raise ValueError(f"{name}: expected an input of 3 or more dims (N, C, ...), got shape {x.shape}")
    if x.dtype.name not in ("float32", "float64"):
        raise TypeError(f"{name}: input has dtype {x.dtype} (shape {x.shape}); supported: float32, float64")


def _pool_settings(name: str, kernel_size, stride, padding) -> tuple:
    """Checked (kernel, stride, padding) pairs; stride None means stride = kernel_size."""
    kernel = V.int_pair(name, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else V.int_pair(name, "stride", stride, 1)
    padding = V.int_pair(name, "padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half of kernel_size {kernel} "
                         f"(padding <= kernel_size // 2, as PyTorch requires)")
    return kernel, stride, padding


def _pool_args(name: str, x, kernel_size, stride, padding) -> tuple:
    _check_float_input(name, x, "4")
    kernel, stride, padding = _pool_settings(name, kernel_size, stride, padding)
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if padded[0] < kernel[0] or padded[1] < kernel[1]:
        raise ValueError(f"{name}: kernel_size {kernel} is larger than the padded input {padded} "
                         f"(input shape {x.shape}, padding {padding}): the output would be empty")
    return kernel, stride, padding


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """As torch.nn.functional.max_pool2d (floor mode, no dilation) on NCHW input; padding counts as -inf.

    Overlapping when stride < kernel_size (AlexNet's 3/2).  On ties the gradient goes to the first
    maximum in row-major window order, as PyTorch's CPU kernel does.
    """
    kernel, stride, padding = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    return _pool.MaxPool2dFunction.apply(x, kernel_size=kernel, stride=stride, padding=padding)


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    """As torch.nn.functional.avg_pool2d with its defaults (count_include_pad=True, ceil_mode=False)."""
    kernel, stride, padding = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    return _pool.AvgPool2dFunction.apply(x, kernel_size=kernel, stride=stride, padding=padding)


def _adaptive_output_size(name: str, x, output_size) -> tuple:
    """int, or a pair whose entries are ints or None (None keeps that input dim), checked >= 1."""
    pair = (output_size, output_size) if isinstance(output_size, numbers.Integral) else output_size
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool)) for v in pair)):
        raise TypeError(f"{name}: output_size must be an int or a pair of ints (or None), got {output_size!r}")
    pair = tuple(int(x.shape[2 + i]) if v is None else int(v) for i, v in enumerate(pair))
    if min(pair) < 1:
        raise ValueError(f"{name}: output_size must be >= 1, got {pair} (input shape {x.shape})")
    return pair


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """As torch.nn.functional.adaptive_avg_pool2d: output bin i averages input rows
    floor(i*H/out) .. ceil((i+1)*H/out) - 1 (likewise columns)."""
    _check_float_input("adaptive_avg_pool2d", x, "4")
    size = _adaptive_output_size("adaptive_avg_pool2d", x, output_size)
    return _pool.AdaptiveAvgPool2dFunction.apply(x, output_size=size)


def local_response_norm(x: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """As torch.nn.functional.local_response_norm, across channels (dim 1) of an (N, C, ...) input:

        b_c = a_c / (k + alpha/size * sum_{c'=c-size//2}^{c+(size-1)//2} a_{c'}^2)^beta

    with channels outside [0, C) counting as zero.  The paper (and TensorFlow) do not divide alpha
    by size: the paper's k=2, n=5, alpha=1e-4, beta=0.75 is local_response_norm(x, 5, 5e-4, 0.75, 2.0).
    """
    size, alpha, beta, k = _lrn_settings("local_response_norm", size, alpha, beta, k)
    _check_float_input("local_response_norm", x, "3+")
    return _lrn.LocalResponseNormFunction.apply(x, size=size, alpha=alpha, beta=beta, k=k)


def _lrn_settings(where: str, size, alpha, beta, k) -> tuple:
    """Checked (size, alpha, beta, k), shared with nn.LocalResponseNorm."""
    return (V.positive_int(where, "size", size), V.number(where, "alpha", alpha), V.number(where, "beta", beta),
            V.number(where, "k", k))


# ------------------------------------------------------- dropout, batch norm
def _check_float(name: str, x: Tensor) -> None:
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be a floating-point tensor, got dtype {x.dtype} (shape {x.shape})")


def dropout(x: Tensor, p: float = 0.5, training: bool = True, mode: str = "inverted", inplace: bool = False) -> Tensor:
    """Zero each element with probability p, from a seeded counter-based mask (md.manual_seed).

    mode="inverted" (PyTorch): kept elements are scaled by 1/(1-p) when training; identity otherwise.
    mode="paper" (Krizhevsky et al. 2012): no scaling when training; multiply by (1-p) otherwise.
    The two agree in expectation (docs/kernels/dropout.md).  ``inplace`` is accepted for PyTorch
    compatibility; the result is always a new tensor.
    """
    p, mode = _dropout_settings("dropout", p, mode)
    _check_float("dropout", x)
    if not training:
        return x if mode == "inverted" or p == 0 else x * (1.0 - p)
    if p == 0:
        return x
    scale = 1.0 if mode == "paper" else (0.0 if p == 1 else 1.0 / (1.0 - p))
    return _dropout.DropoutFunction.apply(x, p=p, scale=scale, key=_random.dropout_key())


def _dropout_settings(where: str, p, mode: str) -> tuple:
    """Checked (p, mode), shared with nn.Dropout."""
    return V.probability(where, "p", p), V.one_of(where, "mode", mode, ("inverted", "paper"))


def batch_norm(x: Tensor, running_mean, running_var, weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """As torch.nn.functional.batch_norm, for x of shape (N, C) or (N, C, *spatial).

    running_mean/running_var: raw arrays of shape (C,) (or None when training), updated in place
    when training: r = (1 - momentum) r + momentum * batch_stat, with the unbiased batch variance.
    """
    _check_float("batch_norm", x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C) or (N, C, *spatial), got shape {x.shape}")
    channels = x.shape[1]
    running_mean = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    running_var = running_var.data if isinstance(running_var, Tensor) else running_var
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if running_mean is None and not training:
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} has shape {tuple(t.shape)} but the input of shape {x.shape} "
                             f"has {channels} channels (expected ({channels},))")
        if t is not None and t.dtype.kind != "f":
            raise TypeError(f"batch_norm: {name} must be floating-point, got dtype {t.dtype}")
    if training and x.numel() // channels < 2:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {x.shape}")
    if running_mean is not None and backend.device_of(running_mean) != x.device:
        raise ValueError(f"batch_norm: running statistics are on {backend.device_of(running_mean)} "
                         f"but the input is on {x.device}")
    xp = backend.get_array_module(x.data)
    weight = weight if weight is not None else xp.ones(channels, dtype=x.dtype)
    bias = bias if bias is not None else xp.zeros(channels, dtype=x.dtype)
    return _bn.BatchNormFunction.apply(x, weight, bias, running_mean=running_mean, running_var=running_var,
                               training=bool(training), momentum=momentum, eps=eps)


# ---------------------------------------------------------------- conv2d (minidl/ops/conv.py)
def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, stride=1, padding=0, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as torch.nn.functional.conv2d) by im2col + GEMM.

    x (N, C, H, W), w (O, C/groups, kh, kw), b (O,) or None; stride and padding an int or a
    pair; output (N, O, (H + 2 ph - kh) // sh + 1, (W + 2 pw - kw) // sw + 1).
    """
    return _conv2d("conv2d", x, w, b, stride, padding, groups)


def _conv2d(where: str, x: Tensor, w: Tensor, b: Tensor | None, stride, padding, groups) -> Tensor:
    """conv2d with its errors named after ``where`` (nn.Conv2d passes its own name)."""
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise TypeError(f"{where}: input and weight must be Tensors, got {type(x).__name__} and {type(w).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{where}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"{where}: weight must be 4-D (out_channels, in_channels/groups, kh, kw), got shape {w.shape}")
    floats = (np.dtype(np.float32), np.dtype(np.float64))
    if x.dtype not in floats or w.dtype not in floats:
        raise TypeError(f"{where}: input and weight must be float32 or float64, got {x.dtype} (input {x.shape}) "
                        f"and {w.dtype} (weight {w.shape})")
    if x.dtype != w.dtype:
        raise TypeError(f"{where}: input dtype {x.dtype} and weight dtype {w.dtype} differ (input {x.shape}, "
                        f"weight {w.shape}); convert one of them")
    groups = V.positive_int(where, "groups", groups)
    stride, padding = V.int_pair(where, "stride", stride, 1), V.int_pair(where, "padding", padding, 0)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups:
        raise ValueError(f"{where}: input has {c} channels (shape {x.shape}) but weight expects {cg * groups} "
                         f"(weight shape {w.shape}, groups={groups})")
    if c % groups or o % groups:
        raise ValueError(f"{where}: groups={groups} must divide both the input channels ({c}, input shape {x.shape}) "
                         f"and the output channels ({o}, weight shape {w.shape})")
    if kh > h + 2 * padding[0] or kw > wd + 2 * padding[1] or min(kh, kw) < 1:
        raise ValueError(f"{where}: kernel size ({kh}, {kw}) is larger than the padded input "
                         f"({h + 2 * padding[0]}, {wd + 2 * padding[1]}) (input shape {x.shape}, padding {padding})")
    if b is not None:
        if not isinstance(b, Tensor):
            raise TypeError(f"{where}: bias must be a Tensor or None, got {type(b).__name__}")
        if b.shape != (o,):
            raise ValueError(f"{where}: bias has shape {b.shape}, expected ({o},) for weight shape {w.shape}")
        if b.dtype != w.dtype:
            raise TypeError(f"{where}: bias dtype {b.dtype} differs from weight dtype {w.dtype}")
        return _conv.Conv2dFunction.apply(x, w, b, stride=stride, padding=padding, groups=groups)
    return _conv.Conv2dFunction.apply(x, w, stride=stride, padding=padding, groups=groups)


# ------------------------------------------------- activations (minidl/ops/activation.py)
from .ops.activation import leaky_relu, sigmoid, tanh  # noqa: E402,F401
