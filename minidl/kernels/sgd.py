"""SGD parameter update, in place: PyTorch's rule and the paper's (see minidl/optim/sgd.py).

Arrays: w (parameter), g (its gradient), state["momentum_buffer"] (same shape),
created on the first step.  Plain array code, valid for NumPy and CuPy.
"""
from __future__ import annotations


def sgd_step_reference(w, g, state, lr, momentum, dampening, weight_decay, nesterov, rule):
    if rule == "paper":  # v = mu v - wd lr w - lr g; w += v
        v = state.get("momentum_buffer")
        if v is None:
            v = state["momentum_buffer"] = w * 0
        v *= momentum
        v -= (weight_decay * lr) * w
        v -= lr * g
        w += v
        return
    if weight_decay:
        g = g + weight_decay * w
    if momentum:
        v = state.get("momentum_buffer")
        if v is None:
            v = state["momentum_buffer"] = g.copy()
        else:
            v *= momentum
            v += (1 - dampening) * g
        g = g + momentum * v if nesterov else v
    w -= lr * g


sgd_step = sgd_step_reference
