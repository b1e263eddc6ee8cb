"""Pooling kernels: max_pool2d, avg_pool2d and adaptive_avg_pool2d, forward and backward.

Layout: NCHW.  x is (N, C, H, W), float32 or float64; every output plane (n, c)
depends only on the input plane (n, c).  ``kernel_size``, ``stride`` and
``padding`` are (height, width) pairs of ints, already checked by the caller
(minidl/functional.py): output size Ho = (H + 2*ph - kh) // sh + 1 (floor
mode, PyTorch's ``ceil_mode=False``), likewise Wo.

max_pool2d
    y[n, c, i, j] = max over the window rows i*sh - ph .. +kh-1, cols j*sw - pw .. +kw-1,
    where padded positions count as -inf (so they never win).  The forward also
    returns ``idx`` (int32, y's shape): the flat index h*W + w, within the input
    plane, of the winning element; on ties the FIRST maximum in row-major window
    order wins (PyTorch's CPU rule; NumPy's argmax does the same).  The backward
    routes each g[n, c, i, j] to x[n, c].flat[idx[n, c, i, j]] (added, since
    overlapping windows can pick the same element).
avg_pool2d
    y = sum over the window / (kh*kw): padded positions count as zeros and are
    counted in the divisor (PyTorch's ``count_include_pad=True``).  Backward:
    each g spreads g / (kh*kw) over its window.
adaptive_avg_pool2d
    output (Ho, Wo) given; output row i averages input rows
    floor(i*H/Ho) .. ceil((i+1)*H/Ho) - 1 (PyTorch's bins), columns likewise.
    The divisor is (rows in bin) * (cols in bin), so the operation is separable:
    y = A_h x A_w^T with A_h[i, h] = 1/len(bin i) for h in bin i.

Each operation has a ``_reference`` (plain NumPy, the ground truth), a ``_numba`` (the CPU
default: prange over the N*C planes), an ``_xp`` version (array-generic, the GPU default: strided
views of the padded input, run by the tests with NumPy too) and a dispatcher, in one block per
operation.  All versions of one operation share its signature (the backward of max_pool2d takes
the window settings, which only the array-generic version needs).  Derivations of the backwards:
docs/kernels/pool.md.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import memory, pick


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Floor-mode output length of a pooling window sliding over ``size`` (+ padding)."""
    return (size + 2 * padding - kernel) // stride + 1


def adaptive_bins(size: int, out: int):
    """PyTorch's adaptive-pool bins: (starts, ends), bin i = [floor(i*size/out), ceil((i+1)*size/out))."""
    starts = [(i * size) // out for i in range(out)]
    ends = [-((-(i + 1) * size) // out) for i in range(out)]
    return starts, ends


# ===================================================================== max_pool2d
# ---------------------------------------------------------------------- reference
def max_pool2d_forward_reference(x, kernel_size, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xpad, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :Ho, :Wo]
    win = win.reshape(N, C, Ho, Wo, kh * kw)
    inside = np.pad(np.ones((H, W), dtype=bool), ((ph, ph), (pw, pw)))          # False on the padding
    inside = np.lib.stride_tricks.sliding_window_view(inside, (kh, kw))[::sh, ::sw][:Ho, :Wo].reshape(Ho, Wo, -1)
    y = win.max(axis=-1)                         # NaN if the window holds one (as PyTorch)
    # the first in-bounds position (row-major window order) that holds the maximum
    k = (inside & ((win == y[..., None]) | (np.isnan(win) & np.isnan(y)[..., None]))).argmax(axis=-1)
    rows = np.arange(Ho)[:, None] * sh - ph + k // kw
    cols = np.arange(Wo)[None, :] * sw - pw + k % kw
    return y, (rows * W + cols).astype(np.int32)


def max_pool2d_backward_reference(g, idx, input_hw, kernel_size, stride, padding):
    H, W = input_hw
    N, C = g.shape[:2]
    gx = np.zeros((N * C, H * W), dtype=g.dtype)
    planes = np.repeat(np.arange(N * C), g.shape[2] * g.shape[3])
    np.add.at(gx, (planes, idx.reshape(-1)), g.reshape(-1))
    return gx.reshape(N, C, H, W)


# -------------------------------------------------------------------------- numba
@njit(cache=True)
def _max_pool2d_window_general(plane, h0, w0, kh, kw):
    """(max, flat index) of one window that may cross the padding or hold NaN: clipped to the
    plane, the first in-bounds element enters, then strict '>' (ties keep the first), and the
    first NaN wins (NumPy's argmax rule; PyTorch returns the last NaN's index)."""
    H, W = plane.shape
    hs, he = max(h0, 0), min(h0 + kh, H)
    ws, we = max(w0, 0), min(w0 + kw, W)
    best = plane[hs, ws]
    where = hs * W + ws
    for h in range(hs, he):
        for w in range(ws, we):
            v = plane[h, w]
            if v > best or (v != v and best == best):
                best = v
                where = h * W + w
    return best, where


@njit(cache=True, inline="always")
def _max_pool2d_window_inside(xf, base, W, kh, kw):
    """(max, its flat index in the plane) of a window inside the plane (no NaN) whose top-left
    element is xf[base], xf the plane flattened: taps in row-major window order, strict '>' (ties
    keep the first).  Scalar on purpose: AlexNet's pooled rows are 6-27 outputs long, too short
    for a loop over a row's outputs to pay for its per-tap slices; called with literal kh, kw, it unrolls."""
    best = xf[base]
    at = base
    for r in range(kh):
        for t in range(kw):
            v = xf[base + r * W + t]
            if v > best:
                best = v
                at = base + r * W + t
    return best, at


@njit(cache=True, inline="always")
def _max_pool2d_plane_inside(xf, W, sh, sw, kh, kw, yp, ip):
    """Every output of a plane whose windows all lie inside it (no padding) and hold no NaN."""
    Ho, Wo = yp.shape
    for i in range(Ho):
        yrow, irow = yp[i], ip[i]
        for j in range(Wo):
            yrow[j], irow[j] = _max_pool2d_window_inside(xf, i * sh * W + j * sw, W, kh, kw)


@njit(parallel=True, cache=True)
def _max_pool2d_forward_nb(x, kh, kw, sh, sw, ph, pw, y, idx):
    """x (N*C, H, W) -> y, idx (N*C, Ho, Wo): one plane per task, outputs written row by row."""
    NC, H, W = x.shape
    Ho, Wo = y.shape[1:]
    j0 = (pw + sw - 1) // sw                       # outputs j0..j1-1 have windows inside horizontally
    j1 = max(j0, min(Wo, (W + pw - kw) // sw + 1))
    for p in prange(NC):
        plane, yp, ip = x[p], y[p], idx[p]
        xf = plane.reshape(H * W)
        has_nan = False
        for q in range(H * W):
            has_nan |= xf[q] != xf[q]
        # No padding (AlexNet's pools): every window lies inside the plane.  This short loop nest,
        # with literal sizes, compiles to much faster code than the general one below.
        if ph == 0 and pw == 0 and not has_nan:
            if kh == 3 and kw == 3:
                _max_pool2d_plane_inside(xf, W, sh, sw, 3, 3, yp, ip)
            else:
                _max_pool2d_plane_inside(xf, W, sh, sw, kh, kw, yp, ip)
            continue
        for i in range(Ho):
            h0 = i * sh - ph
            yrow, irow = yp[i], ip[i]
            if h0 >= 0 and h0 + kh <= H and not has_nan:
                for j in range(j0, j1):
                    base = h0 * W + j * sw - pw
                    if kh == 3 and kw == 3:            # AlexNet's pooling: literal sizes unroll the taps
                        yrow[j], irow[j] = _max_pool2d_window_inside(xf, base, W, 3, 3)
                    elif kh == 2 and kw == 2:
                        yrow[j], irow[j] = _max_pool2d_window_inside(xf, base, W, 2, 2)
                    else:
                        yrow[j], irow[j] = _max_pool2d_window_inside(xf, base, W, kh, kw)
                for j in range(0, j0):                 # windows on the left or right padding
                    yrow[j], irow[j] = _max_pool2d_window_general(plane, h0, j * sw - pw, kh, kw)
                for j in range(j1, Wo):
                    yrow[j], irow[j] = _max_pool2d_window_general(plane, h0, j * sw - pw, kh, kw)
            else:                                      # on the top or bottom padding, or a NaN in the plane
                for j in range(Wo):
                    yrow[j], irow[j] = _max_pool2d_window_general(plane, h0, j * sw - pw, kh, kw)


@njit(parallel=True, cache=True)
def _max_pool2d_backward_nb(g, idx, gx):
    """gx (N*C, H*W): each output's gradient (g, idx flattened to (N*C, Ho*Wo)) added at its
    argmax, in output order; one plane per task, so no two tasks write the same element."""
    NC, P = g.shape
    for p in prange(NC):
        out, gp, ip = gx[p], g[p], idx[p]
        out[:] = 0
        for q in range(P):
            out[ip[q]] += gp[q]


def max_pool2d_forward_numba(x, kernel_size, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    N, C, H, W = x.shape
    out_shape = (N, C, output_size(H, kh, sh, ph), output_size(W, kw, sw, pw))
    y, idx = memory.empty(out_shape, x.dtype), memory.empty(out_shape, np.int32)
    planes = (N * C,) + out_shape[2:]
    _max_pool2d_forward_nb(np.ascontiguousarray(x).reshape(N * C, H, W), kh, kw, sh, sw, ph, pw,
                           y.reshape(planes), idx.reshape(planes))
    return y, idx


def max_pool2d_backward_numba(g, idx, input_hw, kernel_size, stride, padding):
    N, C = g.shape[:2]
    gx = memory.empty((N, C) + tuple(input_hw), g.dtype)
    _max_pool2d_backward_nb(np.ascontiguousarray(g).reshape(N * C, -1), np.ascontiguousarray(idx).reshape(N * C, -1),
                            gx.reshape(N * C, -1))
    return gx


# ----------------------------------------------------------------------------- xp
def _window_views(a, kernel_size, stride, out_hw):
    """For each window offset (r, s): the strided view a[:, :, r::sh, s::sw] cut to (Ho, Wo)."""
    (kh, kw), (sh, sw), (Ho, Wo) = kernel_size, stride, out_hw
    for r in range(kh):
        for s in range(kw):
            yield r, s, a[:, :, r:r + sh * (Ho - 1) + 1:sh, s:s + sw * (Wo - 1) + 1:sw]


def _pad(xp, x, padding, value):
    (ph, pw) = padding
    N, C, H, W = x.shape
    out = xp.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + H, pw:pw + W] = x
    return out


def max_pool2d_forward_xp(x, kernel_size, stride, padding):
    """Array-generic: kh*kw strided views of the padded input, a running max and its offset."""
    xp = backend.get_array_module(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xpad = _pad(xp, x, padding, -xp.inf)
    y = xp.full((N, C, Ho, Wo), -xp.inf, dtype=x.dtype)
    k = xp.full((N, C, Ho, Wo), -1, dtype=np.int32)        # window offset of the winner; -1: none yet
    rows_in = lambda r: (xp.arange(Ho) * sh - ph + r >= 0) & (xp.arange(Ho) * sh - ph + r < H)  # noqa: E731
    cols_in = lambda s: (xp.arange(Wo) * sw - pw + s >= 0) & (xp.arange(Wo) * sw - pw + s < W)  # noqa: E731
    for r, s, view in _window_views(xpad, kernel_size, stride, (Ho, Wo)):
        inside = rows_in(r)[:, None] & cols_in(s)[None, :]    # padding never wins, even over -inf
        # strict '>' so ties keep the first; the first in-bounds element always enters; NaN wins
        better = inside & ((view > y) | (k < 0) | (xp.isnan(view) & ~xp.isnan(y)))
        y = xp.where(better, view, y)
        k = xp.where(better, np.int32(r * kw + s), k)
    rows = xp.arange(Ho, dtype=np.int32)[:, None] * sh - ph + k // kw
    cols = xp.arange(Wo, dtype=np.int32)[None, :] * sw - pw + k % kw
    return y, (rows * W + cols).astype(np.int32)


def max_pool2d_backward_xp(g, idx, input_hw, kernel_size, stride, padding):
    """Array-generic: for each window offset (r, s), add the gradients whose winner sits there.

    Within one offset the strided view hits distinct input positions, so plain
    ``+=`` is race-free and deterministic (no atomics)."""
    xp = backend.get_array_module(g)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    H, W = input_hw
    N, C, Ho, Wo = g.shape
    rows = idx // W - (xp.arange(Ho, dtype=np.int32)[:, None] * sh - ph)   # offset of the winner in its window
    cols = idx % W - (xp.arange(Wo, dtype=np.int32)[None, :] * sw - pw)
    k = rows * kw + cols
    gpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=g.dtype)
    zero = g.dtype.type(0)
    for r, s, view in _window_views(gpad, kernel_size, stride, (Ho, Wo)):
        view += xp.where(k == r * kw + s, g, zero)
    return gpad[:, :, ph:ph + H, pw:pw + W].copy()


# ----------------------------------------------------------------------- dispatch
def max_pool2d_forward(x, kernel_size, stride, padding):
    """(y, idx): the max of each window and the int32 flat in-plane index of the (first) maximum."""
    return pick(max_pool2d_forward_reference, max_pool2d_forward_numba, max_pool2d_forward_xp, x)(
        x, kernel_size, stride, padding)


def max_pool2d_backward(g, idx, input_hw, kernel_size, stride, padding):
    """dL/dx: each g[n, c, i, j] added at x[n, c].flat[idx[n, c, i, j]]."""
    return pick(max_pool2d_backward_reference, max_pool2d_backward_numba, max_pool2d_backward_xp, g)(
        g, idx, input_hw, kernel_size, stride, padding)


# ===================================================================== avg_pool2d
# ---------------------------------------------------------------------- reference
def avg_pool2d_forward_reference(x, kernel_size, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            y[:, :, i, j] = xpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].sum(axis=(2, 3)) / (kh * kw)
    return y


def avg_pool2d_backward_reference(g, input_hw, kernel_size, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    H, W = input_hw
    N, C, Ho, Wo = g.shape
    gpad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=g.dtype)
    for i in range(Ho):
        for j in range(Wo):
            gpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += (g[:, :, i, j] / (kh * kw))[:, :, None, None]
    return gpad[:, :, ph:ph + H, pw:pw + W].copy()


# -------------------------------------------------------------------------- numba
# Average and adaptive pooling share one skeleton: along each axis, output index i reads the
# input range [start[i], end[i]) (already clipped to the plane) and divides by count[i] (the
# window's length with the padding counted, or the bin's length): y = window sum / (hn[i] * wn[j]).
def _avg_windows(size, kernel, stride, padding):
    """(start, end, count) along one axis of avg_pool2d: windows clipped to [0, size), count = kernel."""
    starts = np.arange(output_size(size, kernel, stride, padding), dtype=np.int64) * stride - padding
    return np.maximum(starts, 0), np.minimum(starts + kernel, size), np.full(starts.size, kernel, dtype=np.int64)


def _adaptive_windows(size, out):
    """(start, end, count) along one axis of adaptive_avg_pool2d: PyTorch's bins."""
    starts, ends = (np.asarray(b, dtype=np.int64) for b in adaptive_bins(size, out))
    return starts, ends, ends - starts


@njit(parallel=True, cache=True)
def _window_mean_nb(x, hs, he, hn, ws, we, wn):
    """y[n, c, i, j] = sum of x[n, c, hs[i]:he[i], ws[j]:we[j]] / (hn[i] * wn[j])."""
    N, C = x.shape[:2]
    y = np.empty((N, C, hs.size, ws.size), dtype=x.dtype)
    for p in prange(N * C):
        plane, yp = x[p // C, p % C], y[p // C, p % C]
        for i in range(hs.size):
            for j in range(ws.size):
                acc = x.dtype.type(0.0)
                for h in range(hs[i], he[i]):
                    for w in range(ws[j], we[j]):
                        acc += plane[h, w]
                yp[i, j] = acc / x.dtype.type(hn[i] * wn[j])
    return y


@njit(parallel=True, cache=True)
def _window_mean_backward_nb(g, H, W, hs, he, hn, ws, we, wn):
    """The adjoint of _window_mean_nb: each g[n, c, i, j] / (hn[i] * wn[j]) added over its window."""
    N, C = g.shape[:2]
    gx = np.empty((N, C, H, W), dtype=g.dtype)
    for p in prange(N * C):
        out, gp = gx[p // C, p % C], g[p // C, p % C]
        out[:, :] = 0
        for i in range(hs.size):
            for j in range(ws.size):
                v = gp[i, j] / g.dtype.type(hn[i] * wn[j])
                for h in range(hs[i], he[i]):
                    for w in range(ws[j], we[j]):
                        out[h, w] += v
    return gx


def avg_pool2d_forward_numba(x, kernel_size, stride, padding):
    H, W = x.shape[2:]
    return _window_mean_nb(np.ascontiguousarray(x), *_avg_windows(H, kernel_size[0], stride[0], padding[0]),
                           *_avg_windows(W, kernel_size[1], stride[1], padding[1]))


def avg_pool2d_backward_numba(g, input_hw, kernel_size, stride, padding):
    H, W = input_hw
    return _window_mean_backward_nb(np.ascontiguousarray(g), H, W,
                                    *_avg_windows(H, kernel_size[0], stride[0], padding[0]),
                                    *_avg_windows(W, kernel_size[1], stride[1], padding[1]))


# ----------------------------------------------------------------------------- xp
def avg_pool2d_forward_xp(x, kernel_size, stride, padding):
    """Array-generic: the sum of kh*kw strided views of the zero-padded input, / (kh*kw)."""
    xp = backend.get_array_module(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    H, W = x.shape[2:]
    Ho, Wo = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    y = xp.zeros(x.shape[:2] + (Ho, Wo), dtype=x.dtype)
    for _, _, view in _window_views(_pad(xp, x, padding, 0), kernel_size, stride, (Ho, Wo)):
        y += view
    return y / x.dtype.type(kh * kw)


def avg_pool2d_backward_xp(g, input_hw, kernel_size, stride, padding):
    """Array-generic: g / (kh*kw) added through each of the kh*kw strided views (race-free)."""
    xp = backend.get_array_module(g)
    (kh, kw), (ph, pw) = kernel_size, padding
    H, W = input_hw
    N, C, Ho, Wo = g.shape
    share = g / g.dtype.type(kh * kw)
    gpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=g.dtype)
    for _, _, view in _window_views(gpad, kernel_size, stride, (Ho, Wo)):
        view += share
    return gpad[:, :, ph:ph + H, pw:pw + W].copy()


# ----------------------------------------------------------------------- dispatch
def avg_pool2d_forward(x, kernel_size, stride, padding):
    """y: the mean of each window, padding counted as zeros in the divisor kh*kw."""
    return pick(avg_pool2d_forward_reference, avg_pool2d_forward_numba, avg_pool2d_forward_xp, x)(
        x, kernel_size, stride, padding)


def avg_pool2d_backward(g, input_hw, kernel_size, stride, padding):
    """dL/dx: each g spread as g / (kh*kw) over its window."""
    return pick(avg_pool2d_backward_reference, avg_pool2d_backward_numba, avg_pool2d_backward_xp, g)(
        g, input_hw, kernel_size, stride, padding)


# ============================================================ adaptive_avg_pool2d
# ---------------------------------------------------------------------- reference
def adaptive_avg_pool2d_forward_reference(x, output_hw):
    Ho, Wo = output_hw
    H, W = x.shape[2:]
    (hs, he), (ws, we) = adaptive_bins(H, Ho), adaptive_bins(W, Wo)
    y = np.empty(x.shape[:2] + (Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            y[:, :, i, j] = x[:, :, hs[i]:he[i], ws[j]:we[j]].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward_reference(g, input_hw):
    H, W = input_hw
    Ho, Wo = g.shape[2:]
    (hs, he), (ws, we) = adaptive_bins(H, Ho), adaptive_bins(W, Wo)
    gx = np.zeros(g.shape[:2] + (H, W), dtype=g.dtype)
    for i in range(Ho):
        for j in range(Wo):
            count = (he[i] - hs[i]) * (we[j] - ws[j])
            gx[:, :, hs[i]:he[i], ws[j]:we[j]] += (g[:, :, i, j] / count)[:, :, None, None]
    return gx


# -------------------------------------------------------------------------- numba
def adaptive_avg_pool2d_forward_numba(x, output_hw):
    H, W = x.shape[2:]
    return _window_mean_nb(np.ascontiguousarray(x), *_adaptive_windows(H, output_hw[0]),
                           *_adaptive_windows(W, output_hw[1]))


def adaptive_avg_pool2d_backward_numba(g, input_hw):
    H, W = input_hw
    return _window_mean_backward_nb(np.ascontiguousarray(g), H, W, *_adaptive_windows(H, g.shape[2]),
                                    *_adaptive_windows(W, g.shape[3]))


# ----------------------------------------------------------------------------- xp
def _bin_matrix(xp, size, out, dtype):
    """A (out, size): A[i, h] = 1/len(bin i) for h in bin i, else 0."""
    starts, ends = adaptive_bins(size, out)
    a = np.zeros((out, size), dtype=dtype)
    for i, (s, e) in enumerate(zip(starts, ends)):
        a[i, s:e] = 1.0 / (e - s)
    return xp.asarray(a)


def adaptive_avg_pool2d_forward_xp(x, output_hw):
    """Array-generic and separable: y = A_h x A_w^T, two batched matrix products."""
    xp = backend.get_array_module(x)
    H, W = x.shape[2:]
    ah, aw = _bin_matrix(xp, H, output_hw[0], x.dtype), _bin_matrix(xp, W, output_hw[1], x.dtype)
    return xp.ascontiguousarray(ah @ x @ aw.T)


def adaptive_avg_pool2d_backward_xp(g, input_hw):
    """The transpose: dL/dx = A_h^T g A_w."""
    xp = backend.get_array_module(g)
    ah = _bin_matrix(xp, input_hw[0], g.shape[2], g.dtype)
    aw = _bin_matrix(xp, input_hw[1], g.shape[3], g.dtype)
    return xp.ascontiguousarray(ah.T @ g @ aw)


# ----------------------------------------------------------------------- dispatch
def adaptive_avg_pool2d_forward(x, output_hw):
    """y (N, C, Ho, Wo): the mean of each of PyTorch's adaptive bins."""
    return pick(adaptive_avg_pool2d_forward_reference, adaptive_avg_pool2d_forward_numba,
                adaptive_avg_pool2d_forward_xp, x)(x, output_hw)


def adaptive_avg_pool2d_backward(g, input_hw):
    """dL/dx: each g spread evenly over its bin."""
    return pick(adaptive_avg_pool2d_backward_reference, adaptive_avg_pool2d_backward_numba,
                adaptive_avg_pool2d_backward_xp, g)(g, input_hw)


