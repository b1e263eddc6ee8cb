"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (as torch.nn; NCHW input)."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class _Pool2d(Module):
    _function = None  # the F.* function the layer applies

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        # checked here so a bad setting fails when the model is built, naming the layer
        F._pool_settings(type(self).__name__, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, kernel_size if stride is None else stride, padding

    def forward(self, x):
        return type(self)._function(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over kernel_size windows; stride defaults to kernel_size; padding counts as -inf."""
    _function = staticmethod(F.max_pool2d)


class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows (padding counts as zeros, included in the divisor)."""
    _function = staticmethod(F.avg_pool2d)


class AdaptiveAvgPool2d(Module):
    """Average-pool to a fixed output size (an int, or a pair of ints or None)."""

    def __init__(self, output_size):
        super().__init__()
        if not isinstance(output_size, int) and not (isinstance(output_size, (tuple, list)) and len(output_size) == 2):
            raise TypeError(f"AdaptiveAvgPool2d: output_size must be an int or a pair, got {output_size!r}")
        sizes = (output_size,) if isinstance(output_size, int) else output_size
        if any(v is not None and (not isinstance(v, int) or v < 1) for v in sizes):
            raise ValueError(f"AdaptiveAvgPool2d: output_size entries must be ints >= 1 (or None), got {output_size!r}")
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
