"""Conv2d layer (as torch.nn.Conv2d, without dilation and padding modes)."""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from . import init
from .module import Module, Parameter


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class Conv2d(Module):
    """2-D convolution over NCHW input; weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,).

    PyTorch's default initialisation: weight kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, groups: int = 1,
                 bias: bool = True, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.groups = groups
        for arg, value, minimum in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                    ("groups", groups, 1)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{self._name()}: {arg} must be an int >= {minimum}, got {value!r}")
        for arg, pair, minimum in (("kernel_size", self.kernel_size, 1), ("stride", self.stride, 1),
                                   ("padding", self.padding, 0)):
            if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum
                                         for v in pair):
                raise ValueError(f"{self._name()}: {arg} must be an int or a pair of ints >= {minimum}, "
                                 f"got {pair!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{self._name()}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        init.default_layer_init_(self.weight, self.bias)

    def _name(self):
        return f"Conv2d({self.extra_repr()})"

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self._name()}: input must be 4-D (N, C, H, W), got shape {x.shape}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._name()}: input has {x.shape[1]} channels (shape {x.shape}), "
                             f"expected in_channels={self.in_channels}")
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if kh > x.shape[2] + 2 * ph or kw > x.shape[3] + 2 * pw:
            raise ValueError(f"{self._name()}: input of shape {x.shape} padded to "
                             f"({x.shape[2] + 2 * ph}, {x.shape[3] + 2 * pw}) is smaller than the kernel ({kh}, {kw})")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            text += f", stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if getattr(self, "bias", 0) is None:
            text += ", bias=False"
        return text
