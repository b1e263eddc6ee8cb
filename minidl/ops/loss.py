"""Linear layer, softmax, log-softmax and cross-entropy as fused Functions."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..function import Function
from ..kernels import memory


class Linear(Function):
    """y = x w^T + b, x (..., in_features), w (out_features, in_features), b (out_features,).

    With few rows (a batch smaller than out_features), OpenBLAS computes the forward as the
    transposed product (w @ x^T)^T 1.3-1.5x faster than x @ w^T (AlexNet's fc6-fc8 at batch 32,
    quiet machine); the result is the same numbers, as a transposed (F-order) view.  For the
    input gradient the two orders measured within 10% of each other: it stays g @ w."""

    def forward(self, x, w, b=None):
        self.x, self.w, self.has_bias = x, w, b is not None
        xp = backend.get_array_module(x)
        x2 = x.reshape(-1, x.shape[-1])
        if _transposed_is_faster(xp, x2.shape[0], w.shape[0]):
            y = xp.matmul(w, x2.T, out=memory.empty((w.shape[0], x2.shape[0]), xp.result_type(x, w))).T
        else:
            y = xp.matmul(x2, w.T, out=memory.empty_on(xp, (x2.shape[0], w.shape[0]), xp.result_type(x, w)))
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + w.shape[:1])

    def backward(self, g):  # dL/dx = g w, dL/dw = g^T x (over all leading dims), dL/db = sum g
        xp, w = self.xp, self.w
        x2, g2 = self.x.reshape(-1, self.x.shape[-1]), g.reshape(-1, g.shape[-1])
        gx = None
        if self.needs_input_grad[0]:
            gx = xp.matmul(g2, w, out=memory.empty_on(xp, (g2.shape[0], w.shape[1]), xp.result_type(g, w)))
            gx = gx.reshape(self.x.shape)
        gw = xp.matmul(g2.T, x2, out=memory.empty_on(xp, w.shape, xp.result_type(g, x2))) if self.needs_input_grad[1] else None
        if not self.has_bias:
            return gx, gw
        return gx, gw, g2.sum(axis=0)


def _transposed_is_faster(xp, rows, out_features):
    return xp is np and rows < out_features


def _log_softmax(x, axis):
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)  # exp never overflows
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, x, dim):
        self.dim = dim
        self.y = _log_softmax(x, dim)
        return self.y

    def backward(self, g):  # y = x - logsumexp(x): dL/dx = g - softmax(x) * sum(g)
        return g - self.xp.exp(self.y) * g.sum(axis=self.dim, keepdims=True)


class Softmax(Function):
    def forward(self, x, dim):
        self.dim = dim
        self.y = backend.get_array_module(x).exp(_log_softmax(x, dim))
        return self.y

    def backward(self, g):  # dL/dx = y * (g - sum(g * y))
        return self.y * (g - (g * self.y).sum(axis=self.dim, keepdims=True))


class CrossEntropy(Function):
    """Mean over the batch of -log softmax(logits)[i, target_i]; logits (N, C), target (N,) ints."""

    def forward(self, logits, target):
        xp = backend.get_array_module(logits)
        n = logits.shape[0]
        self.target = target
        self.log_p = _log_softmax(logits, 1)
        return -self.log_p[xp.arange(n), target].mean()

    def backward(self, g):  # dL/dlogits = (softmax - onehot) / N
        xp = self.xp
        n = self.log_p.shape[0]
        grad = xp.exp(self.log_p)
        grad[xp.arange(n), self.target] -= 1
        return grad * (g / n), None


def check_labels(logits_shape, target, where="cross_entropy"):
    """Raise ValueError unless target is a 1-D integer array of N labels in [0, C)."""
    if target.dtype.kind not in "iu":
        raise ValueError(f"{where}: target must hold integer class labels, got dtype {target.dtype} "
                         f"(convert with .astype(int) if the values are whole numbers)")
    if len(logits_shape) != 2:
        raise ValueError(f"{where}: logits must be 2-D (batch, classes), got shape {tuple(logits_shape)}")
    n, c = logits_shape
    if target.shape != (n,):
        raise ValueError(f"{where}: target has shape {tuple(target.shape)} but logits have batch size {n} "
                         f"(expected target shape ({n},))")
    if n and (int(target.min()) < 0 or int(target.max()) >= c):
        bad = backend.asnumpy(target)
        bad = bad[(bad < 0) | (bad >= c)]
        raise ValueError(f"{where}: labels must lie in [0, {c}) for {c} classes; got {np.unique(bad)[:10].tolist()}")
