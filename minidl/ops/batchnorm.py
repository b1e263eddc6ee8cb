"""Batch normalisation as a Function (kernels in kernels/batchnorm.py, derivation in
docs/kernels/batchnorm.md).

Inputs: x (N, C) or (N, C, *spatial), weight (C,), bias (C,) — constants of ones/zeros when the
layer has no affine parameters.  Settings: the running statistics (raw arrays, updated in place
when training, as PyTorch), training, momentum, eps.
"""
from __future__ import annotations

from ..function import Function
from ..kernels import batchnorm as kernel


class BatchNormFunction(Function):
    def forward(self, x, weight, bias, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        if training:   # batch statistics; running statistics move towards them
            y, mean, var, invstd = kernel.batch_norm_forward(x, weight, bias, eps)
            if running_mean is not None:
                count = x.size // x.shape[1]
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
                running_var[...] = (1 - momentum) * running_var + momentum * (var * (count / (count - 1)))
        else:          # the given (running) statistics, constants for backward
            mean = running_mean.astype(x.dtype, copy=False)
            var = running_var.astype(x.dtype, copy=False)
            y, mean, var, invstd = kernel.batch_norm_forward(x, weight, bias, eps, mean=mean, var=var)
        self.x, self.weight, self.mean, self.invstd, self.batch_stats = x, weight, mean, invstd, training
        return y

    def backward(self, g):
        dx, dw, db = kernel.batch_norm_backward(g, self.x, self.mean, self.invstd, self.weight, self.batch_stats)
        need = self.needs_input_grad
        return (dx if need[0] else None), (dw if need[1] else None), (db if need[2] else None)
