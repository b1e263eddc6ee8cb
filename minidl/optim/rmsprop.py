"""RMSprop (Hinton's lecture 6e) with PyTorch's formulas (torch.optim.RMSprop), on whole arrays:

    g = grad + wd * w
    s = alpha s + (1 - alpha) g^2                      (s: state["square_avg"], starts at 0)
    centered: a = alpha a + (1 - alpha) g; d = sqrt(s - a^2) + eps      (a: state["grad_avg"])
    else:     d = sqrt(s) + eps
    momentum > 0: b = mu b + g / d; w -= lr b          (b: state["momentum_buffer"], starts at 0)
    else:         w -= lr g / d
"""
from __future__ import annotations

from .. import backend
from .optimizer import Optimizer, check_hyper


class RMSprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _check_group(self, group):
        check_hyper("RMSprop", "learning rate", group["lr"], "lr must be >= 0 and finite")
        check_hyper("RMSprop", "alpha value", group["alpha"], "alpha must be in [0, 1]", high=1.0, high_inclusive=True)
        check_hyper("RMSprop", "epsilon value", group["eps"], "eps must be >= 0")
        check_hyper("RMSprop", "weight_decay value", group["weight_decay"], "weight_decay must be >= 0")
        check_hyper("RMSprop", "momentum value", group["momentum"], "momentum must be in [0, 1)", high=1.0)

    def step(self):
        for group, p, state in self._params_with_grad():
            w, g = p.data, p.grad.data.astype(p.dtype, copy=False)
            xp = backend.get_array_module(w)
            alpha, eps, mu = group["alpha"], group["eps"], group["momentum"]
            if "square_avg" not in state:
                state["step"], state["square_avg"] = 0, xp.zeros_like(w)
                if mu > 0:
                    state["momentum_buffer"] = xp.zeros_like(w)
                if group["centered"]:
                    state["grad_avg"] = xp.zeros_like(w)
            state["step"] += 1
            if group["weight_decay"]:
                g = g + group["weight_decay"] * w
            s = state["square_avg"]
            s *= alpha
            s += (1 - alpha) * g * g
            if group["centered"]:
                a = state["grad_avg"]
                a += (1 - alpha) * (g - a)  # torch's lerp: a + (1 - alpha) (g - a)
                d = xp.sqrt(s - a * a) + eps
            else:
                d = xp.sqrt(s) + eps
            if mu > 0:
                b = state["momentum_buffer"]
                b *= mu
                b += g / d
                w -= group["lr"] * b
            else:
                w -= group["lr"] * (g / d)
