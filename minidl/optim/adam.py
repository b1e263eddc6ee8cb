"""Adam (Kingma & Ba 2015) with PyTorch's formulas (torch.optim.Adam, L2 weight decay):

    g = grad + wd * w
    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
"""
from __future__ import annotations

from ..kernels import adam as kernel
from .optimizer import Optimizer, check_hyper


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False):
        if amsgrad:
            raise NotImplementedError(f"{type(self).__name__}: amsgrad=True is not implemented in minidl")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_group(self, group):
        check_adam_group(type(self).__name__, group)

    def step(self):
        for group, p, state in self._params_with_grad():
            kernel.adam_step(p.data, p.grad.data, state, lr=group["lr"], betas=group["betas"],
                             eps=group["eps"], weight_decay=group["weight_decay"])


def check_adam_group(where: str, group: dict) -> None:
    check_hyper(where, "learning rate", group["lr"], "lr must be >= 0 and finite")
    check_hyper(where, "epsilon value", group["eps"], "eps must be >= 0")
    check_hyper(where, "weight_decay value", group["weight_decay"], "weight_decay must be >= 0")
    betas = group["betas"]
    if len(betas) != 2:
        raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        check_hyper(where, f"beta parameter at index {i}", beta, "betas must be in [0, 1)", high=1.0)
