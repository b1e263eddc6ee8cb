"""AdamW (Loshchilov & Hutter 2019) with PyTorch's formulas (torch.optim.AdamW): weight decay is
decoupled from the gradient, applied to the weights before the Adam step:

    w = w * (1 - lr * wd)
    m = b1 m + (1 - b1) grad;   v = b2 v + (1 - b2) grad^2
    w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

so the decay is not rescaled by 1/sqrt(v) as Adam's L2 term is.
"""
from __future__ import annotations

from ..kernels import adam as kernel
from .adam import Adam


class AdamW(Adam):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def step(self):
        for group, p, state in self._params_with_grad():
            if group["weight_decay"]:
                p.data *= p.dtype.type(1 - group["lr"] * group["weight_decay"])
            kernel.adam_step(p.data, p.grad.data, state, lr=group["lr"], betas=group["betas"],
                             eps=group["eps"], weight_decay=0.0)
