"""Stochastic gradient descent with momentum and weight decay: PyTorch's rule and the paper's.

PyTorch's rule (torch.optim.SGD):
    g = grad + wd * w
    v = g on the first step, else mu * v + (1 - dampening) * g
    w -= lr * (g + mu * v if nesterov else v)
The paper's rule (Krizhevsky et al. 2012, section 5), selected with rule="paper":
    v = mu * v - wd * lr * w - lr * grad;   w += v      (v starts at 0)
The two agree when dampening=0 and nesterov=False except for where lr enters:
the paper folds lr into v, so changing lr mid-training changes old momentum less.
"""
from __future__ import annotations

from ..kernels import sgd as kernel
from .optimizer import Optimizer, check_hyper

RULES = ("pytorch", "paper")


class SGD(Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, rule: str = "pytorch"):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, rule=rule))

    def _check_group(self, group):
        rule = "lr, momentum and weight_decay must be >= 0 and finite, momentum < 1"
        check_hyper("SGD", "learning rate", group["lr"], rule)
        check_hyper("SGD", "momentum value", group["momentum"], rule, high=1.0)
        check_hyper("SGD", "weight_decay value", group["weight_decay"], rule)
        check_hyper("SGD", "dampening value", group["dampening"], "dampening must be in [0, 1]", high=1.0,
                    high_inclusive=True)
        if group["rule"] not in RULES:
            raise ValueError(f"SGD: rule must be one of {RULES}, got {group['rule']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0 "
                             "(Nesterov momentum requires a momentum and zero dampening)")
        if group["rule"] == "paper" and (group["nesterov"] or group["dampening"]):
            raise ValueError("SGD: the paper's rule has no nesterov or dampening option")

    def step(self):
        for group, p, state in self._params_with_grad():
            kernel.sgd_step(p.data, p.grad.data, state, lr=group["lr"], momentum=group["momentum"],
                            dampening=group["dampening"], weight_decay=group["weight_decay"],
                            nesterov=group["nesterov"], rule=group["rule"])
