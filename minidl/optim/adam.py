"""Adam (Kingma & Ba 2015) with PyTorch's formulas (torch.optim.Adam, L2 weight decay):

    g = grad + wd * w
    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
"""
from __future__ import annotations

from .optimizer import Optimizer


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: need lr, eps, weight_decay >= 0 and betas in [0, 1) "
                             f"(got lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay})")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self):
        from ..kernels import adam as kernel  # noqa: PLC0415
        for group, p, state in self._params_with_grad():
            kernel.adam_step(p.data, p.grad.data, state, lr=group["lr"], betas=group["betas"],
                             eps=group["eps"], weight_decay=group["weight_decay"])
