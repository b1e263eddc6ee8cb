"""Adadelta (Zeiler 2012) with PyTorch's formulas (torch.optim.Adadelta), on whole arrays:

    g = grad + wd * w
    s = rho s + (1 - rho) g^2                          (s: state["square_avg"], starts at 0)
    delta = sqrt(u + eps) / sqrt(s + eps) * g          (u: state["acc_delta"], starts at 0)
    u = rho u + (1 - rho) delta^2
    w -= lr * delta
"""
from __future__ import annotations

from .. import backend
from .optimizer import Optimizer, check_hyper


class Adadelta(Optimizer):
    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group):
        check_hyper("Adadelta", "learning rate", group["lr"], "lr must be >= 0 and finite")
        check_hyper("Adadelta", "rho value", group["rho"], "rho must be in [0, 1]", high=1.0, high_inclusive=True)
        check_hyper("Adadelta", "epsilon value", group["eps"], "eps must be >= 0")
        check_hyper("Adadelta", "weight_decay value", group["weight_decay"], "weight_decay must be >= 0")

    def step(self):
        for group, p, state in self._params_with_grad():
            w, g = p.data, p.grad.data.astype(p.dtype, copy=False)
            xp = backend.get_array_module(w)
            rho, eps = group["rho"], group["eps"]
            if "square_avg" not in state:
                state["step"], state["square_avg"], state["acc_delta"] = 0, xp.zeros_like(w), xp.zeros_like(w)
            state["step"] += 1
            if group["weight_decay"]:
                g = g + group["weight_decay"] * w
            s, u = state["square_avg"], state["acc_delta"]
            s *= rho
            s += (1 - rho) * g * g
            delta = xp.sqrt(u + eps) / xp.sqrt(s + eps) * g
            u *= rho
            u += (1 - rho) * delta * delta
            w -= group["lr"] * delta
