"""Pooling Functions: max_pool2d, avg_pool2d, adaptive_avg_pool2d (kernels in minidl/kernels/pool.py).

Arguments arrive checked and normalised by minidl/functional.py: kernel_size,
stride and padding as (height, width) pairs of ints.
"""
from __future__ import annotations

from ..function import Function
from ..kernels import pool


class MaxPool2dFunction(Function):
    def forward(self, x, kernel_size, stride, padding):
        self.settings = kernel_size, stride, padding
        self.input_hw = tuple(x.shape[2:])
        y, self.idx = pool.max_pool2d_forward(x, kernel_size, stride, padding)  # idx: int32 argmax per output
        return y

    def backward(self, g):
        return pool.max_pool2d_backward(g, self.idx, self.input_hw, *self.settings)


class AvgPool2dFunction(Function):
    def forward(self, x, kernel_size, stride, padding):
        self.settings = kernel_size, stride, padding
        self.input_hw = tuple(x.shape[2:])
        return pool.avg_pool2d_forward(x, kernel_size, stride, padding)

    def backward(self, g):
        return pool.avg_pool2d_backward(g, self.input_hw, *self.settings)


class AdaptiveAvgPool2dFunction(Function):
    def forward(self, x, output_size):
        self.input_hw = tuple(x.shape[2:])
        return pool.adaptive_avg_pool2d_forward(x, output_size)

    def backward(self, g):
        return pool.adaptive_avg_pool2d_backward(g, self.input_hw)
