"""2-D convolution by FFT, stride 1 (any kernel size): products of spectra instead of sliding sums.

Layouts as kernels/conv.py: x (N, C, H, W), w (O, C/groups, kh, kw), y (N, O, OH, OW).  Let xpad
be x padded by (ph, pw) (Hp x Wp) and S = (Hf, Wf) >= (Hp, Wp) an FFT size.  The circular
cross-correlation of xpad with a kernel k is irfft2(X * conj(K)) with X, K the rfft2's at size S,
and at lags p < OH = Hp - kh + 1 it equals the linear one (p + i <= Hp - 1 < Hf: nothing wraps):

    y[n, o]  = irfft2( sum_c X[n, c] * conj(W[o, c]) )[:OH, :OW]            + b[o]
    dw[o, c] = irfft2( sum_n X[n, c] * conj(DY[n, o]) )[:kh, :kw]           (xpad correlated with dy)
    dx       = the forward on dy with the flipped, channel-transposed filter, padding k - 1 - p

For each frequency f the channel sum is a complex matrix product, so the layer is Hf*(Wf/2+1)
complex GEMMs (per group):  Y (F, G, Og, B) = conj(W) (F, G, Og, Cg) @ X (F, G, Cg, B).

Versions: ``conv2d_forward_reference`` / ``conv2d_weight_grad_reference`` (one output plane at a
time, the formulas above); ``conv2d_forward_xp`` / ``conv2d_weight_grad_xp`` (batched, NumPy or
CuPy: numpy.fft / cupy.fft and matmul do the work; there is no Numba version).
The batch is chunked so that the spectra of one chunk stay under kernels/conv.py's workspace cap.
See docs/kernels/fft.md.
"""
from __future__ import annotations

import numpy as np  # the *_reference functions only; the fast paths use the backend's array module

from .. import backend
from . import conv as _conv
from . import memory, pick
from .winograd import flipped_weight


def fft_size(n):
    """The smallest 2^a 3^b 5^c >= n (sizes FFT libraries handle fastest)."""
    best = n
    while True:
        k = best
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return best
        best += 1


def _pad(x, ph, pw):
    """x with (ph, pw) zeros on each side; a negative padding crops instead (the input gradient's p > k - 1)."""
    xp = backend.get_array_module(x)
    h, w = x.shape[2:]
    x = x[:, :, max(0, -ph):h - max(0, -ph), max(0, -pw):w - max(0, -pw)]
    if ph > 0 or pw > 0:
        x = xp.pad(x, ((0, 0), (0, 0), (max(ph, 0),) * 2, (max(pw, 0),) * 2))
    return x


def _sizes(x_shape, w_shape, padding):
    hp, wp = x_shape[2] + 2 * padding[0], x_shape[3] + 2 * padding[1]
    kh, kw = w_shape[2:]
    return (hp - kh + 1, wp - kw + 1), (fft_size(hp), fft_size(wp))


# ======================================================================= reference
def conv2d_forward_reference(x, w, b=None, padding=(0, 0), groups=1):
    """y[n, o] = irfft2(sum_c rfft2(xpad[n, c]) * conj(rfft2(w[o, c])))[:OH, :OW] + b[o], plane by plane."""
    (oh, ow), s = _sizes(x.shape, w.shape, padding)
    xpad = _pad(x, *padding)
    n, o, cg = x.shape[0], w.shape[0], w.shape[1]
    og = o // groups
    y = np.zeros((n, o, oh, ow), x.dtype)
    for ni in range(n):
        for oi in range(o):
            c0 = (oi // og) * cg
            spec = sum(np.fft.rfft2(xpad[ni, c0 + c], s) * np.conj(np.fft.rfft2(w[oi, c], s)) for c in range(cg))
            y[ni, oi] = np.fft.irfft2(spec, s)[:oh, :ow] + (b[oi] if b is not None else 0)
    return y


def conv2d_weight_grad_reference(x, dy, w_shape, padding=(0, 0), groups=1):
    """dw[o, c] = irfft2(sum_n rfft2(xpad[n, c]) * conj(rfft2(dy[n, o])))[:kh, :kw], plane by plane."""
    _, s = _sizes(x.shape, w_shape, padding)
    xpad = _pad(x, *padding)
    o, cg, kh, kw = w_shape
    og = o // groups
    dw = np.zeros(w_shape, x.dtype)
    for oi in range(o):
        for c in range(cg):
            ci = (oi // og) * cg + c
            spec = sum(np.fft.rfft2(xpad[ni, ci], s) * np.conj(np.fft.rfft2(dy[ni, oi], s)) for ni in range(x.shape[0]))
            dw[oi, c] = np.fft.irfft2(spec, s)[:kh, :kw]
    return dw


# ======================================================================= batched (NumPy or CuPy)
def _spectra(a, s, groups):
    """(B, C, h, w) -> rfft2 at size s, as (F, groups, C/groups, B) contiguous (F = Hf * (Wf/2 + 1))."""
    xp = backend.get_array_module(a)
    spec = xp.fft.rfft2(a, s)
    b, c = a.shape[:2]
    return xp.ascontiguousarray(spec.reshape(b, c, -1).transpose(2, 1, 0)).reshape(-1, groups, c // groups, b)


def _per_image_bytes(c, o, s, itemsize):
    """Spectra of one image (input and output, complex) and their transposed copies."""
    return 4 * (c + o) * s[0] * (s[1] // 2 + 1) * itemsize


def conv2d_forward_xp(x, w, b=None, padding=(0, 0), groups=1):
    """As conv2d_forward_reference, batched: one complex GEMM per frequency and group."""
    xp = backend.get_array_module(x)
    (oh, ow), s = _sizes(x.shape, w.shape, padding)
    n, o, cg = x.shape[0], w.shape[0], w.shape[1]
    wspec = xp.conj(_spectra(w, s, 1)).reshape(-1, cg, groups, o // groups).transpose(0, 2, 3, 1)  # (F, G, Og, Cg)
    y = memory.empty_on(xp, (n, o, oh, ow), x.dtype)
    nb = _conv._chunk_size(n, _per_image_bytes(x.shape[1], o, s, x.itemsize))
    for n0 in range(0, n, nb):
        bsz = min(nb, n - n0)
        yspec = xp.matmul(wspec, _spectra(_pad(x[n0:n0 + bsz], *padding), s, groups))  # (F, G, Og, B)
        yspec = yspec.reshape(s[0], s[1] // 2 + 1, o, bsz).transpose(3, 2, 0, 1)
        y[n0:n0 + bsz] = xp.fft.irfft2(yspec, s)[:, :, :oh, :ow]
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    return y


def conv2d_weight_grad_xp(x, dy, w_shape, padding=(0, 0), groups=1):
    """As conv2d_weight_grad_reference, batched: per frequency and group, (Cg, B) @ (B, Og) summed over chunks."""
    xp = backend.get_array_module(x)
    (oh, ow), s = _sizes(x.shape, w_shape, padding)
    o, cg, kh, kw = w_shape
    n = x.shape[0]
    if tuple(dy.shape) != (n, o, oh, ow):
        raise ValueError(f"fft weight gradient: dy has shape {tuple(dy.shape)}, expected {(n, o, oh, ow)}")
    acc = None
    nb = _conv._chunk_size(n, _per_image_bytes(x.shape[1], o, s, x.itemsize))
    for n0 in range(0, n, nb):
        xs = _spectra(_pad(x[n0:n0 + nb], *padding), s, groups)                    # (F, G, Cg, B)
        ds = xp.conj(_spectra(dy[n0:n0 + nb], s, groups))                         # (F, G, Og, B)
        part = xp.matmul(xs, ds.transpose(0, 1, 3, 2))                             # (F, G, Cg, Og)
        acc = part if acc is None else acc + part
    spec = acc.transpose(1, 3, 2, 0).reshape(o, cg, s[0], s[1] // 2 + 1)
    return xp.ascontiguousarray(xp.fft.irfft2(spec, s)[:, :, :kh, :kw]).astype(x.dtype, copy=False)


# ======================================================================= dispatchers
def conv2d_forward(x, w, b=None, padding=(0, 0), groups=1):
    """y = conv(x, w) + b with stride 1 by FFT; the batched version on either device."""
    return pick(conv2d_forward_reference, conv2d_forward_xp, conv2d_forward_xp, x)(x, w, b, padding, groups)


def conv2d_backward(x, w, dy, padding=(0, 0), groups=1, need_dx=True, need_dw=True, need_db=True,
                    weight_grad="fft"):
    """(dx, dw, db) of conv2d_forward (dw by im2col's GEMM when ``weight_grad="im2col"``)."""
    db = _conv.bias_grad(dy) if need_db else None
    dx = dw = None
    if need_dw:
        if weight_grad == "im2col":
            dw = _conv.weight_grad(x, w, dy, 1, padding, groups)
        else:
            dw = pick(conv2d_weight_grad_reference, conv2d_weight_grad_xp, conv2d_weight_grad_xp, x)(
                x, dy, w.shape, padding, groups)
    if need_dx:
        kh, kw = w.shape[2:]
        dx = conv2d_forward(dy, flipped_weight(w, groups), None, (kh - 1 - padding[0], kw - 1 - padding[1]), groups)
    return dx, dw, db
