"""Conv2d layer (as torch.nn.Conv2d, without dilation and padding modes)."""
from __future__ import annotations

import numpy as np

from .. import _validate as V, functional as F
from . import init
from .module import Module, Parameter


class Conv2d(Module):
    """2-D convolution over NCHW input; weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,).

    PyTorch's default initialisation: weight kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, groups: int = 1,
                 bias: bool = True, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        # the raw values as pairs first, so that the errors below name the layer as its repr does
        self.kernel_size, self.stride, self.padding = (tuple(v) if isinstance(v, (tuple, list)) else (v, v)
                                                       for v in (kernel_size, stride, padding))
        where = self._name()
        self.in_channels = V.positive_int(where, "in_channels", in_channels)
        self.out_channels = V.positive_int(where, "out_channels", out_channels)
        self.groups = V.positive_int(where, "groups", groups)
        self.kernel_size = V.int_pair(where, "kernel_size", kernel_size, 1)
        self.stride = V.int_pair(where, "stride", stride, 1)
        self.padding = V.int_pair(where, "padding", padding, 0)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{self._name()}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        init.default_layer_init_(self.weight, self.bias)

    def _name(self):
        return f"Conv2d({self.extra_repr()})"

    def forward(self, x):
        # F.conv2d's checks, with this layer's name in the errors
        return F._conv2d(self._name(), x, self.weight, self.bias, self.stride, self.padding, self.groups)

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
