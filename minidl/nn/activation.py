"""Activation layers: Softmax, LogSoftmax, Sigmoid, Tanh, LeakyReLU (as torch.nn)."""
from __future__ import annotations

from .. import functional as F
from .module import Module


def _check_dim(name: str, dim):
    if dim is None:  # torch guesses a dim (with a warning) here; a guess can be silently wrong
        raise ValueError(f"{name}: give dim explicitly (e.g. {name}(dim=1) for (N, C) scores)")
    return dim


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = _check_dim("Softmax", dim)

    def forward(self, x):
        return F.softmax(x, dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = _check_dim("LogSoftmax", dim)

    def forward(self, x):
        return F.log_softmax(x, dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace  # results are never written in place

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"
