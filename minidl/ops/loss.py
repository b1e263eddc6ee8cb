"""Softmax, log-softmax and the losses, each a fused Function (derivations: docs/losses.md).

Class losses take scores of shape (N, C) or (N, C, d1, ...) (classes on dim 1, as torch) and
integer targets of shape (N,) or (N, d1, ...).  They are computed on an (M, C) view, M the
number of positions, with per-position class coefficients A (M, C):

    A[n, c] = (1 - eps) w[t_n] [c == t_n] + eps / C * w[c]      (0 where t_n == ignore_index)
    loss_n  = -sum_c A[n, c] log p[n, c]

(w the class weights, 1 if none; eps the label smoothing).  "mean" divides the sum by
W = sum of w[t_n] over the positions not ignored, which is torch's weighted mean.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..function import Function

REDUCTIONS = ("mean", "sum", "none")


def _log_softmax(x, axis):
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)  # exp never overflows
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmaxFunction(Function):
    def forward(self, x, dim):
        self.dim = dim
        self.y = _log_softmax(x, dim)
        return self.y

    def backward(self, g):  # y = x - logsumexp(x): dL/dx = g - softmax(x) * sum(g)
        return g - self.xp.exp(self.y) * g.sum(axis=self.dim, keepdims=True)


class SoftmaxFunction(Function):
    def forward(self, x, dim):
        self.dim = dim
        self.y = backend.get_array_module(x).exp(_log_softmax(x, dim))
        return self.y

    def backward(self, g):  # dL/dx = y * (g - sum(g * y))
        return self.y * (g - (g * self.y).sum(axis=self.dim, keepdims=True))


# ------------------------------------------------------------------ class losses
def _rows(x):
    """(N, C, d1, ...) -> (M, C) with classes last (a copy when there are extra dims)."""
    return x if x.ndim == 2 else backend.get_array_module(x).moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(g, shape):
    """Inverse of _rows: (M, C) -> (N, C, d1, ...)."""
    if len(shape) == 2:
        return g
    xp = backend.get_array_module(g)
    return xp.moveaxis(g.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],)), -1, 1)


class _ClassLoss(Function):
    """Shared by NLLLoss and CrossEntropy: coefficients, reduction and the upstream gradient."""

    def _coefficients(self, scores, target, weight, ignore_index, label_smoothing):
        xp = backend.get_array_module(scores)
        m, c = scores.shape
        t = target.reshape(-1)
        keep = t != ignore_index
        safe_t = xp.where(keep, t, 0)
        w = xp.ones(c, dtype=scores.dtype) if weight is None else weight.astype(scores.dtype, copy=False)
        wt = w[safe_t] * keep                     # w[t_n], 0 where ignored
        a = xp.zeros((m, c), dtype=scores.dtype)
        a[xp.arange(m), safe_t] = (1 - label_smoothing) * wt
        if label_smoothing:
            a += (label_smoothing / c) * (w[None, :] * keep[:, None])
        return a, wt.sum()

    def _reduce(self, per_row, target_shape, reduction, total_weight):
        self.reduction, self.target_shape, self.total_weight = reduction, target_shape, total_weight
        if reduction == "none":
            return per_row.reshape(target_shape)
        total = per_row.sum()
        return total / total_weight if reduction == "mean" else total

    def _row_grad(self, g):
        """The upstream gradient per position, (M, 1): dL/dloss_n."""
        if self.reduction == "none":
            return g.reshape(-1, 1)
        return (g / self.total_weight if self.reduction == "mean" else g).reshape(1, 1)


class NLLLoss(_ClassLoss):
    """loss_n = -sum_c A[n, c] x[n, c] for log-probabilities x (no label smoothing in torch's)."""

    def forward(self, x, target, weight=None, ignore_index=-100, reduction="mean"):
        self.in_shape = x.shape
        x2 = _rows(x)
        self.a, total_weight = self._coefficients(x2, target, weight, ignore_index, 0.0)
        return self._reduce(-(self.a * x2).sum(axis=1), target.shape, reduction, total_weight)

    def backward(self, g):  # dloss_n/dx[n, c] = -A[n, c]
        return _unrows(-self.a * self._row_grad(g), self.in_shape), None


class CrossEntropy(_ClassLoss):
    """NLLLoss of log_softmax(logits, dim=1), fused; with label smoothing as torch."""

    def forward(self, logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        self.in_shape = logits.shape
        self.log_p = _log_softmax(_rows(logits), 1)
        self.a, total_weight = self._coefficients(self.log_p, target, weight, ignore_index, label_smoothing)
        return self._reduce(-(self.a * self.log_p).sum(axis=1), target.shape, reduction, total_weight)

    def backward(self, g):  # dloss_n/dx[n, j] = softmax[n, j] * sum_c A[n, c] - A[n, j]
        xp = self.xp
        grad = xp.exp(self.log_p) * self.a.sum(axis=1, keepdims=True) - self.a
        return _unrows(grad * self._row_grad(g), self.in_shape), None


# ------------------------------------------------------------- regression losses
def _reduce_elementwise(loss, reduction):
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


def _elementwise_grad(g, shape, reduction):
    """The upstream gradient per element: g itself for "none", else g (/ size for "mean")."""
    if reduction == "none":
        return g
    return g / int(np.prod(shape)) if reduction == "mean" else g


class MSELoss(Function):
    def forward(self, x, y, reduction="mean"):
        self.d, self.reduction = x - y, reduction
        return _reduce_elementwise(self.d * self.d, reduction)

    def backward(self, g):  # d(x - y)^2/dx = 2 (x - y) = -d(x - y)^2/dy
        gx = 2 * self.d * _elementwise_grad(g, self.d.shape, self.reduction)
        return gx, -gx


class BCEWithLogits(Function):
    """loss = (1 - y) x + L softplus(-x), L = 1 + (pos_weight - 1) y, times ``weight`` (torch's form).

    softplus(-x) = log(1 + e^-x) is computed as max(-x, 0) + log1p(e^-|x|), which never overflows.
    """

    def forward(self, x, y, weight=None, pos_weight=None, reduction="mean"):
        xp = backend.get_array_module(x)
        self.x, self.y, self.weight, self.pos_weight, self.reduction = x, y, weight, pos_weight, reduction
        self.softplus = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        self.lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        loss = (1 - y) * x + self.lw * self.softplus
        if weight is not None:
            loss = loss * weight
        return _reduce_elementwise(loss, reduction)

    def backward(self, g):
        # dloss/dx = (1 - y) - L sigmoid(-x);  dloss/dy = -x + (pos_weight - 1) softplus(-x)
        xp = self.xp
        g = _elementwise_grad(g, self.x.shape, self.reduction)
        if self.weight is not None:
            g = g * self.weight
        e = xp.exp(-xp.abs(self.x))
        sigmoid_neg = xp.where(self.x >= 0, e, 1) / (1 + e)  # sigmoid(-x) = 1 / (1 + e^x), no overflow
        gx = g * ((1 - self.y) - self.lw * sigmoid_neg) if self.needs_input_grad[0] else None
        gy = None
        if self.needs_input_grad[1]:
            gy = -self.x if self.pos_weight is None else -self.x + (self.pos_weight - 1) * self.softplus
            gy = g * gy
        return gx, gy


# ------------------------------------------------------------------ label checks
def check_labels(scores_shape, target, where="cross_entropy", ignore_index=None):
    """Raise ValueError unless target holds integer labels in [0, C) (or ignore_index), one per position of scores
    (N, C) or (N, C, d1, ...): shape (N,) or (N, d1, ...)."""
    if target.dtype.kind not in "iu":
        raise ValueError(f"{where}: target must hold integer class labels, got dtype {target.dtype} "
                        f"(shape {tuple(target.shape)}); class-probability targets are not supported "
                        f"(convert whole-number labels with .long() or .astype(int))")
    scores_shape = tuple(scores_shape)
    if len(scores_shape) < 2:
        raise ValueError(f"{where}: input must be (N, C) or (N, C, d1, ...), got shape {scores_shape}")
    c = scores_shape[1]
    expected = scores_shape[:1] + scores_shape[2:]
    if tuple(target.shape) != expected:
        raise ValueError(f"{where}: target has shape {tuple(target.shape)} but input has shape {scores_shape}, "
                         f"batch size {scores_shape[0]} (expected target shape {expected}: one label per "
                         f"position, classes on dim 1)")
    if target.size == 0:
        return
    bad = (target < 0) | (target >= c)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bool(bad.any()):
        values = np.unique(backend.asnumpy(target[bad]))[:10].tolist()
        also = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(f"{where}: labels must lie in [0, {c}) for {c} classes (input shape {scores_shape})"
                         f"{also}; got {values}")
