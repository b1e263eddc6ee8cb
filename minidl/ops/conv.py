"""Conv2d as a Function: the kernels of minidl/kernels/conv.py (im2col + GEMM), winograd.py,
winograd_rows.py and fft_conv.py behind autograd; minidl.backends.conv picks the algorithm of each call.

forward saves x and w.  A forward that will need a weight gradient (grad mode on, w requiring grad)
and handles the whole batch in one chunk under the workspace cap also keeps what the weight
gradient would compute again: im2col its column matrix (which backward uses for dw, then
overwrites with dx's column gradient and drops), Winograd (2-D or along the rows) its transformed
input V (F(m, r) and the weight gradient's F(r, m) share B^T).  FFT keeps nothing.  backward uses the algorithm its forward used.
Derivations: docs/kernels/conv.md, winograd.md, fft.md.
"""
from __future__ import annotations

from .. import backend
from ..backends import conv as settings
from ..function import Function
from ..grad_mode import is_grad_enabled
from ..kernels import conv as kernels
from ..kernels import fft_conv, winograd, winograd_rows


def _winograd(name):
    """(module, tile) of a Winograd algorithm: 2-D tiles or tiles along the rows."""
    if name in settings.ROW_TILE:
        return winograd_rows, settings.ROW_TILE[name]
    return winograd, settings.TILE[name]


def conv2d_forward(name, x, w, b, stride, padding, groups, keep_v=False):
    """y = conv(x, w) + b by algorithm ``name`` (one of minidl.backends.conv.ALGORITHMS); keep_v (Winograd
    only): (y, V) as winograd.conv2d_forward returns it."""
    if name == "im2col":
        return kernels.conv2d_forward(x, w, b, stride, padding, groups)
    if name == "fft":
        return fft_conv.conv2d_forward(x, w, b, padding, groups)
    module, m = _winograd(name)
    return module.conv2d_forward(x, w, b, padding, groups, m, keep_v=keep_v)


def conv2d_backward(name, x, w, g, stride, padding, groups, need_dx, need_dw, need_db, kept=None):
    """(dx, dw, db) by algorithm ``name``; the weight gradient by im2col when settings.weight_grad says so.
    kept: what the forward kept (im2col's column matrix, consumed; Winograd's V), or None."""
    if name == "im2col":
        return kernels.conv2d_backward(x, w, g, stride, padding, groups, need_dx=need_dx, need_dw=need_dw,
                                       need_db=need_db, col=kept)
    wg = settings.weight_grad
    if wg not in ("same", "im2col"):
        raise ValueError(f"minidl.backends.conv.weight_grad must be 'same' or 'im2col', got {wg!r}")
    if name == "fft":
        return fft_conv.conv2d_backward(x, w, g, padding, groups, need_dx, need_dw, need_db, weight_grad=wg)
    module, m = _winograd(name)
    return module.conv2d_backward(x, w, g, padding, groups, m, need_dx, need_dw, need_db,
                                  weight_grad=wg, v=kept if wg == "same" else None)


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b; x (N, C, H, W), w (O, C/groups, kh, kw), b (O,) or absent."""

    def forward(self, x, w, b=None, *, stride=(1, 1), padding=(0, 0), groups=1):
        self.x, self.w, self.has_bias = x, w, b is not None
        self.stride, self.padding, self.groups = stride, padding, groups
        device = "gpu" if backend.is_gpu_array(x) else "cpu"
        self.algorithm = settings.select(x.shape, w.shape, stride, padding, groups, x.dtype, device,
                                         trial=lambda name: self._trial(name, b))
        self.kept = None
        if is_grad_enabled() and self.needs_input_grad[1]:
            if self.algorithm == "im2col":
                y, self.kept = kernels.conv2d_forward(x, w, b, stride, padding, groups, keep_col=True)
                return y
            if self.algorithm != "fft" and settings.weight_grad == "same":   # Winograd: keep V
                y, self.kept = conv2d_forward(self.algorithm, x, w, b, stride, padding, groups, keep_v=True)
                return y
        return conv2d_forward(self.algorithm, x, w, b, stride, padding, groups)

    def _trial(self, name, b):
        """One forward and backward by ``name`` (what "benchmark" times), on this call's arrays."""
        y = conv2d_forward(name, self.x, self.w, b, self.stride, self.padding, self.groups)
        conv2d_backward(name, self.x, self.w, y, self.stride, self.padding, self.groups, True, True, b is not None)
        if backend.is_gpu_array(y):
            backend.cupy_module().cuda.Stream.null.synchronize()

    def backward(self, g):
        need = self.needs_input_grad
        kept, self.kept = self.kept, None   # dropped after use (im2col's is overwritten): a second
        # backward (retain_graph) computes it again
        dx, dw, db = conv2d_backward(self.algorithm, self.x, self.w, g, self.stride, self.padding, self.groups,
                                     need[0], need[1], self.has_bias and need[2], kept=kept)
        return (dx, dw, db) if self.has_bias else (dx, dw)
