"""Adam parameter update, in place (see minidl/optim/adam.py for the formulas).

Arrays: w, g, state["exp_avg"], state["exp_avg_sq"] (same shape); state["step"] an int.
"""
from __future__ import annotations


def adam_step_reference(w, g, state, lr, betas, eps, weight_decay):
    b1, b2 = betas
    if weight_decay:
        g = g + weight_decay * w
    if "exp_avg" not in state:
        state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, w * 0, w * 0
    state["step"] += 1
    t = state["step"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    denom = (v ** 0.5) / (1 - b2 ** t) ** 0.5 + eps
    w -= (lr / (1 - b1 ** t)) * m / denom


adam_step = adam_step_reference
