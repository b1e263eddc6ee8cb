"""2-D convolution by im2col + GEMM, and col2im (the adjoint of im2col) for the input gradient.

Layouts
-------
x    (N, C, H, W)            input, NCHW
w    (O, C/groups, kh, kw)   weight, OIHW
b    (O,)                    optional bias
y    (N, O, OH, OW)          output, OH = (H + 2 ph - kh) // sh + 1, OW likewise

The column matrix of a chunk of B images is 2-D, (K, B * P) with K = C * kh * kw and
P = OH * OW, C-contiguous::

    col[(c * kh + i) * kw + j,  n * P + oh * OW + ow] = xpad[n, c, oh * sh + i, ow * sw + j]

where xpad is x with ph zero rows above and below and pw zero columns left and right
(the padding is never materialised: out-of-range taps are written as 0).  This is the
layout one GEMM wants: the rows of group g are the contiguous block [g*Kg, (g+1)*Kg)
with Kg = K / groups, and for each group

    y_g (Og, B*P) = w_g (Og, Kg) @ col_g (Kg, B*P)          (forward)
    dw_g^T (Kg, Og) += col_g (Kg, B*P) @ dy_g^T (B*P, Og)    (weight gradient, summed over chunks)
    dcol_g (Kg, B*P) = w_g^T (Kg, Og) @ dy_g (Og, B*P)      (column gradient)
    dx = col2im(dcol)                                       (input gradient)

with dy_g the rows [g*Og, (g+1)*Og) of dy rearranged to (O, B*P) ("packed").  Each line is one
batched GEMM over the groups (xp.matmul on (G, Og, Kg) @ (G, Kg, B*P) views, out=), not a loop.
col2im sums every column entry back onto the input pixel it was copied from, so it is
the adjoint (transpose) of im2col: <im2col(x), c> = <x, col2im(c)>.  See docs/kernels/conv.md.

Versions
--------
``im2col_reference`` / ``col2im_reference``: plain NumPy (sliding windows; a loop over output
positions), short and obviously right; the ground truth of the tests.
``im2col_numba`` / ``col2im_numba``: parallel Numba loops (the CPU default), with kernels of their
own for stride 1 with "same" width (OW = W) and for "same" height and width (channel-major runs).
``im2col_xp`` / ``col2im_xp``: array-generic code (a loop over the kh*kw kernel taps, each
one strided slice copy) that runs with CuPy on the GPU and with NumPy in the tests.
``im2col`` / ``col2im``: dispatchers.  The packing helpers (``pack_grad``, ``unpack_output``)
have the same three versions; ``conv2d_forward`` / ``conv2d_backward`` drive them and the GEMMs
(array-generic: the array module's matmul).

Workspace
---------
``conv2d_forward`` / ``conv2d_backward`` process the batch in chunks of images so that the
scratch buffers of one chunk (the column matrix, K*B*P elements, plus the packed output /
output gradient, O*B*P elements) stay under a cap: 256 MiB by default, set with
``set_workspace_limit(bytes)`` or the environment variable MINIDL_CONV_WORKSPACE_MB.
A single image is never split, so one image whose buffers exceed the cap is processed alone.
On the CPU the scratch buffer is kept between calls and reused (first touches of fresh
memory are slow); ``clear_workspace()`` frees it.  These functions are not thread-safe.
A forward that will be differentiated can keep its column matrix for the weight gradient
(``keep_col``), in its own buffer, only when the whole batch is one chunk: the extra memory held
until backward is then at most the cap, and backward needs no column buffer from the scratch.
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from .. import backend
from . import memory, pick


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def output_size(h, w, kernel_size, stride, padding):
    """(OH, OW) of a convolution (floor mode, as PyTorch)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


# ======================================================================= im2col / col2im
# ---------------------------------------------------------------------- reference
def im2col_reference(x, kernel_size, stride=1, padding=0, out=None):
    """x (B, C, H, W) -> col (C*kh*kw, B*OH*OW), layout in the module docstring (into ``out`` if given)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # windows[n, c, oh, ow, i, j] = xpad[n, c, oh*sh + i, ow*sw + j]
    windows = np.lib.stride_tricks.sliding_window_view(xpad, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    b, c, oh, ow = windows.shape[:4]
    col = windows.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, b * oh * ow)
    return _into(out, col)


def _into(out, result):
    """result copied into out when out is given (the fast versions' ``out=`` contract), else a copy."""
    if out is None:
        return result.copy()
    out[...] = result
    return out


def col2im_reference(col, x_shape, kernel_size, stride=1, padding=0, out=None):
    """The adjoint of im2col: col (C*kh*kw, B*OH*OW) -> (B, C, H, W), overlapping taps summed."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    b, c, h, w = x_shape
    oh_n, ow_n = output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    col6 = col.reshape(c, kh, kw, b, oh_n, ow_n)
    xpad = np.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for oh in range(oh_n):
        for ow in range(ow_n):  # the window of output (oh, ow) receives its column
            xpad[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw] += col6[:, :, :, :, oh, ow].transpose(3, 0, 1, 2)
    return _into(out, xpad[:, :, ph:ph + h, pw:pw + w])


# -------------------------------------------------------------------------- numba
@njit(cache=True, inline="always")
def _valid_range(j, sw, pw, w, ow_n):
    """The ow in [lo, hi) for which the input column ow*sw + j - pw lies inside [0, w)."""
    lo = 0
    if pw - j > 0:
        lo = (pw - j + sw - 1) // sw
    hi = 0
    if w - 1 + pw - j >= 0:
        hi = (w - 1 + pw - j) // sw + 1
    if hi > ow_n:
        hi = ow_n
    if lo > hi:
        lo = hi
    return lo, hi


@njit(parallel=True, cache=True)
def _im2col_nb(x, kh, kw, sh, sw, ph, pw, oh_n, ow_n, col):
    b_n, c_n, h, w = x.shape
    p = oh_n * ow_n
    for r in prange(c_n * kh * kw):  # one row of col per task: contiguous writes of B*P
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        lo, hi = _valid_range(j, sw, pw, w, ow_n)
        off = j - pw
        for n in range(b_n):
            for oh in range(oh_n):
                dst = col[r, n * p + oh * ow_n:n * p + (oh + 1) * ow_n]   # one output row's taps
                hh = oh * sh + i - ph
                if hh < 0 or hh >= h:
                    dst[:] = 0.0
                    continue
                dst[:lo] = 0.0
                if sw == 1:                          # a contiguous run: a vectorised copy
                    dst[lo:hi] = x[n, c, hh, lo + off:hi + off]
                else:
                    src = x[n, c, hh]
                    for ow in range(lo, hi):
                        dst[ow] = src[ow * sw + off]
                dst[hi:] = 0.0


@njit(parallel=True, cache=True)
def _col2im_nb(col, kh, kw, sh, sw, ph, pw, oh_n, ow_n, dx):
    b_n, c_n, h, w = dx.shape
    p = oh_n * ow_n
    for t in prange(b_n * c_n):  # one (image, channel) plane per task: no two tasks write the same pixel
        n = t // c_n
        c = t % c_n
        plane = dx[n, c]
        plane[:, :] = 0
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                lo, hi = _valid_range(j, sw, pw, w, ow_n)
                off = j - pw
                for oh in range(oh_n):
                    hh = oh * sh + i - ph
                    if hh < 0 or hh >= h:
                        continue
                    base = n * p + oh * ow_n
                    dst = plane[hh]
                    for ow in range(lo, hi):
                        dst[ow * sw + off] += col[r, base + ow]


# Stride 1 with OW == W ("same" width: 2 pw = kw - 1, e.g. 5x5 pad 2, 3x3 pad 1) has a faster
# layout trick: in x's flattened plane, tap (i, j)'s inputs for all valid output rows are ONE run,
# x_flat[k + (i - ph) * W + j - pw] for k = oh * W + ow, except the |j - pw| edge columns of each
# row, whose inputs lie in the padding (the run would wrap into the neighbouring row there).
# Every inner loop below runs over a 1-D view from index 0, which LLVM vectorises; per-row slice
# copies with offsets (the general kernels above) spend most of their time on loop overhead.
@njit(parallel=True, cache=True)
def _im2col_same_width_nb(x, kh, kw, ph, pw, oh_n, col):
    b_n, c_n, h, w = x.shape
    p = oh_n * w
    zero = col.dtype.type(0)
    xf = x.reshape(b_n, c_n, h * w)
    for r in prange(c_n * kh * kw):   # one row of col per task, as _im2col_nb
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        off = j - pw
        lo, hi = max(0, -off), min(w, w - off)              # columns whose input is inside the plane
        oh_lo, oh_hi = max(0, ph - i), max(0, min(oh_n, h + ph - i))   # rows whose input row is inside
        shift = (i - ph) * w + off
        for n in range(b_n):
            dst = col[r, n * p:(n + 1) * p]
            src = xf[n, c]
            _fill(dst[:oh_lo * w], zero)
            _fill(dst[oh_hi * w:], zero)
            if oh_hi > oh_lo:
                k0, k1 = max(oh_lo * w, -shift), min(oh_hi * w, h * w - shift)
                _copy(dst[k0:k1], src[k0 + shift:k1 + shift])
                for oh in range(oh_lo, oh_hi):               # the edge columns: inputs in the padding
                    row = dst[oh * w:(oh + 1) * w]
                    _fill(row[:lo], zero)
                    _fill(row[hi:], zero)


@njit(parallel=True, cache=True)
def _col2im_same_width_nb(col, kh, kw, ph, pw, oh_n, dx):
    b_n, c_n, h, w = dx.shape
    p = oh_n * w
    wp = w + 2 * pw
    for t in prange(b_n * c_n):       # one (image, channel) plane per task, as _col2im_nb
        n = t // c_n
        c = t % c_n
        zp = np.zeros((h + 2 * ph) * wp, dx.dtype)        # the padded plane: edge taps land in its margin
        for i in range(kh):
            for j in range(kw):
                col_r = col[(c * kh + i) * kw + j, n * p:(n + 1) * p]
                for oh in range(oh_n):
                    _add(zp[(oh + i) * wp + j:(oh + i) * wp + j + w], col_r[oh * w:(oh + 1) * w])
        plane = dx[n, c]
        for hh in range(h):
            _copy(plane[hh], zp[(hh + ph) * wp + pw:(hh + ph) * wp + pw + w])


# Stride 1 and "same" padding in both directions (2 ph = kh - 1, 2 pw = kw - 1: OH = H, OW = W)
# goes further with x in channel-major order, xt (C, N*H*W): column row r = (c, i, j) is then the
# channel's whole block shifted by s = di W + dj (di = i - ph, dj = j - pw), ONE run of N*H*W,
#     col[r, k] = xt[c, k + s],   k = n P + oh W + ow,
# wrong only where the tap's input lies in the padding, where the run has wrapped into the
# neighbouring row or image: the "edge" rows oh with oh + di outside [0, H) and the edge columns
# ow with ow + dj outside [0, W) of every image, which are zeroed after the copy.  col2im adds
# each tap's row as one run the other way, dxt[c, k + s] += col[r, k]; the wrapped entries land
# exactly on the positions that no valid entry of that tap reaches (for di > 0 the first di rows
# of each image, for di < 0 the last -di; columns likewise with dj), so those are saved before the
# add and restored after it: each pixel sums the same terms in the same tap order as
# _col2im_same_width_nb.
# On mini's 6x6 maps this turns runs of 36 values into runs of N*36.
@njit(cache=True, inline="always")
def _edge(d, size):
    """The range [lo, hi) of an axis of ``size`` whose index + d falls outside [0, size)."""
    if d > 0:
        return max(0, size - d), size
    return 0, min(size, -d)


@njit(cache=True, inline="always")
def _edges(a, buf, b_n, h, w, di, dj, mode):
    """Visit the edge positions of a (N*H*W, image-major) for the shift (di, dj): the edge rows of
    each image as one run, then each edge column as one stride-W sweep over all N*H rows (corners
    twice, harmlessly).  mode 0 zeroes them, 1 copies them into buf, 2 copies them back from buf."""
    r0, r1 = _edge(di, h)
    c0, c1 = _edge(dj, w)
    m = (r1 - r0) * w
    q = 0
    for n in range(b_n):
        run = a[n * h * w + r0 * w:n * h * w + r1 * w]
        if mode == 0:
            _fill(run, a.dtype.type(0))
        elif mode == 1:
            _copy(buf[q:q + m], run)
        else:
            _copy(run, buf[q:q + m])
        q += m
    for col in range(c0, c1):
        if mode == 0:
            for k in range(col, b_n * h * w, w):
                a[k] = 0
        elif mode == 1:
            for k in range(col, b_n * h * w, w):
                buf[q] = a[k]
                q += 1
        else:
            for k in range(col, b_n * h * w, w):
                a[k] = buf[q]
                q += 1


@njit(parallel=True, cache=True)
def _im2col_same_nb(xt, b_n, h, w, kh, kw, ph, pw, col):
    """xt (C, N*H*W) channel-major -> col (C*kh*kw, N*H*W); stride 1, same padding."""
    c_n, total = xt.shape
    for r in prange(c_n * kh * kw):
        c = r // (kh * kw)
        di, dj = (r // kw) % kh - ph, r % kw - pw
        s = di * w + dj
        k0, k1 = max(0, -s), min(total, total - s)
        dst = col[r]
        _fill(dst[:k0], col.dtype.type(0))
        _fill(dst[k1:], col.dtype.type(0))
        _copy(dst[k0:k1], xt[c, k0 + s:k1 + s])
        _edges(dst, dst[:0], b_n, h, w, di, dj, 0)


@njit(parallel=True, cache=True)
def _col2im_same_nb(col, b_n, h, w, kh, kw, ph, pw, dxt):
    """col (C*kh*kw, N*H*W) -> dxt (C, N*H*W) channel-major, written; one channel per task."""
    c_n, total = dxt.shape
    for c in prange(c_n):
        acc = dxt[c]
        _fill(acc, dxt.dtype.type(0))
        kept = np.empty(b_n * (min(h, ph) * w + h * min(w, pw)), dxt.dtype)   # the largest edge
        for t in range(kh * kw):
            di, dj = t // kw - ph, t % kw - pw
            s = di * w + dj
            k0, k1 = max(0, -s), min(total, total - s)
            _edges(acc, kept, b_n, h, w, -di, -dj, 1)
            _add(acc[k0 + s:k1 + s], col[c * kh * kw + t, k0:k1])
            _edges(acc, kept, b_n, h, w, -di, -dj, 2)


# Stride > 1 (AlexNet's conv1: 11x11, stride 4): an output row's taps are every sw-th input, a
# strided gather that stays scalar.  Split the zero-padded input into its sh*sw "phases",
#     phase[a, b, n, c, u, v] = xpad[n, c, u*sh + a, v*sw + b],
# and tap (i, j) of output (oh, ow) is phase[i % sh, j % sw, n, c, oh + i // sh, ow + j // sw]: the
# taps of one output row are OW consecutive entries of one phase row, a contiguous copy again.
# The split reads x once; the column matrix it feeds is kh*kw/(sh*sw) times larger, so it is used
# where that ratio is at least 4 (below it, e.g. 3x3 stride 2, the split cost more than it saved).
@njit(parallel=True, cache=True)
def _phases_nb(x, sh, sw, ph, pw, out):
    """x (N, C, H, W) -> out (sh, sw, N, C, Hq, Wq), zero where xpad has no element (written whole)."""
    b_n, c_n, h, w = x.shape
    hq, wq = out.shape[4], out.shape[5]
    for t in prange(b_n * c_n):
        n, c = t // c_n, t % c_n
        for a in range(sh):
            for b in range(sw):
                _fill(out[a, b, n, c].reshape(hq * wq), out.dtype.type(0))
        for hh in range(h):
            a, u = (hh + ph) % sh, (hh + ph) // sh
            src = x[n, c, hh]
            for ww in range(w):
                out[a, (ww + pw) % sw, n, c, u, (ww + pw) // sw] = src[ww]


@njit(parallel=True, cache=True)
def _im2col_phases_nb(phases, kh, kw, oh_n, ow_n, col):
    """phases (sh, sw, N, C, Hq, Wq) -> col (C*kh*kw, N*OH*OW): one row of col per task."""
    sh, sw, b_n, c_n = phases.shape[:4]
    p = oh_n * ow_n
    for r in prange(c_n * kh * kw):
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        for n in range(b_n):
            plane = phases[i % sh, j % sw, n, c]
            for oh in range(oh_n):
                _copy(col[r, n * p + oh * ow_n:n * p + (oh + 1) * ow_n], plane[oh + i // sh, j // sw:j // sw + ow_n])


@njit(cache=True, inline="always")
def _fill(dst, value):
    for k in range(dst.shape[0]):
        dst[k] = value


@njit(cache=True, inline="always")
def _copy(dst, src):
    for k in range(dst.shape[0]):
        dst[k] = src[k]


@njit(cache=True, inline="always")
def _add(dst, src):
    for k in range(dst.shape[0]):
        dst[k] += src[k]


def _same_width(kw, sh, sw, pw):
    return sh == 1 and sw == 1 and 2 * pw == kw - 1


def _same(kh, kw, sh, sw, ph, pw):
    return _same_width(kw, sh, sw, pw) and 2 * ph == kh - 1


def _check_numba_dtype(a, name):
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: dtype must be float32 or float64, got {a.dtype}")


def _check_array(name, what, a, shape, dtype):
    """The Numba loops index without bounds checks: refuse arrays of the wrong shape up front."""
    if tuple(a.shape) != tuple(shape) or a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"{name}: {what} must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}, "
                         f"got {a.dtype} {tuple(a.shape)}{'' if a.flags.c_contiguous else ' (not contiguous)'}")


def im2col_numba(x, kernel_size, stride=1, padding=0, out=None):
    """As im2col_reference; writes into ``out`` ((K, B*P), C-contiguous, x's dtype) when given."""
    _check_numba_dtype(x, "im2col_numba")
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    b, c, h, w = x.shape
    oh_n, ow_n = output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    if out is None:
        out = np.empty((c * kh * kw, b * oh_n * ow_n), dtype=x.dtype)
    _check_array("im2col_numba", "out", out, (c * kh * kw, b * oh_n * ow_n), x.dtype)
    if _same(kh, kw, sh, sw, ph, pw):
        xt = memory.empty((c, b * h * w), x.dtype)          # channel-major: the packing of dy, for x
        _pack_nb(np.ascontiguousarray(x).reshape(b, c, h * w), xt)
        _im2col_same_nb(xt, b, h, w, kh, kw, ph, pw, out)
    elif _same_width(kw, sh, sw, pw):
        _im2col_same_width_nb(np.ascontiguousarray(x), kh, kw, ph, pw, oh_n, out)
    else:
        if kh * kw >= 4 * sh * sw > 4:   # strided, and col at least 4x x: the split pays (conv1)
            phases = memory.empty((sh, sw, b, c, -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)), x.dtype)
            _phases_nb(np.ascontiguousarray(x), sh, sw, ph, pw, phases)
            _im2col_phases_nb(phases, kh, kw, oh_n, ow_n, out)
        else:
            _im2col_nb(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, oh_n, ow_n, out)
    return out


def col2im_numba(col, x_shape, kernel_size, stride=1, padding=0, out=None):
    """As col2im_reference; writes (not adds) into ``out`` (x_shape, C-contiguous) when given."""
    _check_numba_dtype(col, "col2im_numba")
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    b, c, h, w = x_shape
    oh_n, ow_n = output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    _check_array("col2im_numba", "col", col, (c * kh * kw, b * oh_n * ow_n), col.dtype)
    if out is None:
        out = np.empty(tuple(x_shape), dtype=col.dtype)
    _check_array("col2im_numba", "out", out, tuple(x_shape), col.dtype)
    if _same(kh, kw, sh, sw, ph, pw) and c > 1:   # one task per channel: a single channel runs on one core
        dxt = memory.empty((c, b * h * w), col.dtype)
        _col2im_same_nb(col, b, h, w, kh, kw, ph, pw, dxt)
        unpack_output_numba(dxt, None, out)                 # back to (N, C, H, W), as a GEMM's output
    elif _same_width(kw, sh, sw, pw):
        _col2im_same_width_nb(col, kh, kw, ph, pw, oh_n, out)
    else:
        _col2im_nb(col, kh, kw, sh, sw, ph, pw, oh_n, ow_n, out)
    return out


# ----------------------------------------------------------------------------- xp
def im2col_xp(x, kernel_size, stride=1, padding=0, out=None):
    """As im2col_reference, for NumPy or CuPy arrays: one strided slice copy per kernel tap (i, j)."""
    xp = backend.get_array_module(x)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    b, c, h, w = x.shape
    oh_n, ow_n = output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    if out is None:
        out = xp.empty((c * kh * kw, b * oh_n * ow_n), dtype=x.dtype)
    col6 = out.reshape(c, kh, kw, b, oh_n, ow_n)
    for i in range(kh):
        for j in range(kw):  # col6[c, i, j, n, oh, ow] = xpad[n, c, oh*sh + i, ow*sw + j]
            col6[:, i, j] = xpad[:, :, i:i + sh * (oh_n - 1) + 1:sh, j:j + sw * (ow_n - 1) + 1:sw].transpose(1, 0, 2, 3)
    return out


def col2im_xp(col, x_shape, kernel_size, stride=1, padding=0, out=None):
    """As col2im_reference, for NumPy or CuPy arrays: one strided slice add per kernel tap (i, j)."""
    xp = backend.get_array_module(col)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    b, c, h, w = x_shape
    oh_n, ow_n = output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    col6 = col.reshape(c, kh, kw, b, oh_n, ow_n)
    xpad = xp.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):  # taps of different (i, j) never alias within one slice, so += is safe
            xpad[:, :, i:i + sh * (oh_n - 1) + 1:sh, j:j + sw * (ow_n - 1) + 1:sw] += col6[:, i, j].transpose(1, 0, 2, 3)
    result = xpad[:, :, ph:ph + h, pw:pw + w]
    if out is None:
        return xp.ascontiguousarray(result)
    out[...] = result
    return out


# ----------------------------------------------------------------------- dispatch
def im2col(x, kernel_size, stride=1, padding=0, out=None):
    """x (B, C, H, W) -> col (C*kh*kw, B*OH*OW)."""
    return pick(im2col_reference, im2col_numba, im2col_xp, x)(x, kernel_size, stride, padding, out)


def col2im(col, x_shape, kernel_size, stride=1, padding=0, out=None):
    """col (C*kh*kw, B*OH*OW) -> (B, C, H, W), the adjoint of im2col."""
    return pick(col2im_reference, col2im_numba, col2im_xp, col)(col, x_shape, kernel_size, stride, padding, out)


# ======================================================================= packing (NCHW <-> (O, B*P))
# ---------------------------------------------------------------------- reference
def unpack_output_reference(ybuf, bias, y):
    """y[n, o] = ybuf[o, n*P:(n+1)*P] (+ bias[o]), one image at a time; y (B, O, OH, OW) in place."""
    b_n, o_n = y.shape[:2]
    p = ybuf.shape[1] // b_n
    for n in range(b_n):
        y[n] = ybuf[:, n * p:(n + 1) * p].reshape(y.shape[1:])
        if bias is not None:
            y[n] += bias.reshape(o_n, 1, 1)
    return y


def pack_grad_reference(dy, out):
    """out[o, n*P:(n+1)*P] = dy[n, o], one image at a time; dy (B, O, OH, OW), out (O, B*P)."""
    b_n, o_n = dy.shape[:2]
    p = out.shape[1] // b_n
    for n in range(b_n):
        out[:, n * p:(n + 1) * p] = dy[n].reshape(o_n, p)
    return out


# -------------------------------------------------------------------------- numba
@njit(parallel=True, cache=True)
def _unpack_nb(ybuf, bias, has_bias, y):
    """y[n, o, p] = ybuf[o, n*P + p] (+ bias[o]); y is (B, O, P)."""
    b_n, o_n, p = y.shape
    for t in prange(b_n * o_n):
        n = t // o_n
        o = t % o_n
        src = ybuf[o, n * p:(n + 1) * p]
        dst = y[n, o]
        if has_bias:
            bo = bias[o]
            for k in range(p):
                dst[k] = src[k] + bo
        else:
            for k in range(p):
                dst[k] = src[k]


@njit(parallel=True, cache=True)
def _pack_nb(dy, out):
    """out[o, n*P + p] = dy[n, o, p]; dy is (B, O, P)."""
    b_n, o_n, p = dy.shape
    for t in prange(b_n * o_n):
        n = t // o_n
        o = t % o_n
        out[o, n * p:(n + 1) * p] = dy[n, o]


def unpack_output_numba(ybuf, bias, y):
    b_n, o_n = y.shape[:2]
    has_bias = bias is not None
    bias = bias if has_bias else np.zeros(o_n, dtype=ybuf.dtype)  # same array type: one compilation
    _unpack_nb(ybuf, np.ascontiguousarray(bias, dtype=ybuf.dtype), has_bias, y.reshape(b_n, o_n, -1))
    return y


def pack_grad_numba(dy, out):
    b_n, o_n = dy.shape[:2]
    _pack_nb(dy.reshape(b_n, o_n, -1), out)
    return out


# ----------------------------------------------------------------------------- xp
def unpack_output_xp(ybuf, bias, y):
    """(O, B*P) -> y (B, O, OH, OW) in place, adding bias (O,) or None; NumPy or CuPy arrays."""
    b_n, o_n = y.shape[:2]
    y[...] = ybuf.reshape(o_n, b_n, *y.shape[2:]).transpose(1, 0, 2, 3)
    if bias is not None:
        y += bias.reshape(1, o_n, 1, 1)
    return y


def pack_grad_xp(dy, out):
    """dy (B, O, OH, OW) -> out (O, B*P); NumPy or CuPy arrays."""
    b_n, o_n = dy.shape[:2]
    out.reshape(o_n, b_n, *dy.shape[2:])[...] = dy.transpose(1, 0, 2, 3)
    return out


# ----------------------------------------------------------------------- dispatch
def unpack_output(ybuf, bias, y):
    """(O, B*P) -> y (B, O, OH, OW) in place, adding bias (O,) or None."""
    return pick(unpack_output_reference, unpack_output_numba, unpack_output_xp, ybuf)(ybuf, bias, y)


def pack_grad(dy, out):
    """dy (B, O, OH, OW) -> out (O, B*P)."""
    return pick(pack_grad_reference, pack_grad_numba, pack_grad_xp, dy)(dy, out)


# ======================================================================= workspace
_DEFAULT_LIMIT = 256 * 2 ** 20
try:
    _workspace_limit = int(float(os.environ.get("MINIDL_CONV_WORKSPACE_MB", "")) * 2 ** 20)
except ValueError:
    _workspace_limit = _DEFAULT_LIMIT
_workspace = {}  # dtype -> flat host array reused between calls


def set_workspace_limit(nbytes):
    """Cap the scratch memory of one convolution call (bytes); None restores the default (256 MiB)."""
    global _workspace_limit
    if nbytes is None:
        nbytes = _DEFAULT_LIMIT
    nbytes = int(nbytes)
    if nbytes < 1:
        raise ValueError(f"set_workspace_limit: the limit must be a positive number of bytes, got {nbytes}")
    _workspace_limit = nbytes
    clear_workspace()


def get_workspace_limit():
    return _workspace_limit


def clear_workspace():
    """Free the cached CPU scratch buffer."""
    _workspace.clear()


def _chunk_size(n, per_image_bytes):
    """Images per chunk: as many as fit under the cap, at least one."""
    return max(1, min(n, _workspace_limit // max(per_image_bytes, 1)))


def _scratch(xp, dtype, size):
    """A flat scratch array of ``size`` elements: the reused host buffer on CPU, fresh (pooled) on GPU."""
    if xp is not np:
        return xp.empty(size, dtype=dtype)
    dtype = np.dtype(dtype)
    buf = _workspace.get(dtype)
    if buf is None or buf.size < size:
        buf = _workspace[dtype] = np.empty(size, dtype=dtype)
    return buf[:size]


# ======================================================================= convolution
def _geometry(x_shape, w_shape, stride, padding, groups):
    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    oh_n, ow_n = output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    return dict(n=n, c=c, o=o, kh=kh, kw=kw, s=(sh, sw), pad=(ph, pw), oh=oh_n, ow=ow_n,
                k=c * kh * kw, kg=cg * kh * kw, og=o // groups, p=oh_n * ow_n)


def conv2d_forward(x, w, b=None, stride=1, padding=0, groups=1, keep_col=False):
    """y (N, O, OH, OW) = conv(x, w) + b, by im2col and one batched GEMM (over groups) per chunk of images.

    keep_col=True returns (y, col) instead: col is the column matrix (K, N*P) of the whole batch, in
    memory of its own (the shared scratch is overwritten by the next layer), for conv2d_backward's
    weight gradient; it is None unless the batch fits in one chunk under the workspace cap, so
    keeping it never costs more than the cap.
    """
    xp = backend.get_array_module(x)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    g = _geometry(x.shape, w.shape, stride, padding, groups)
    n, o, k, kg, og, p = g["n"], g["o"], g["k"], g["kg"], g["og"], g["p"]
    ks = (g["kh"], g["kw"])
    y = memory.empty_on(xp, (n, o, g["oh"], g["ow"]), x.dtype)
    wg = w.reshape(groups, og, kg)
    nb = _chunk_size(n, (k + o) * p * x.itemsize)
    kept = memory.empty_on(xp, (k, n * p), x.dtype) if keep_col and nb >= n else None
    col_size = 0 if kept is not None else k * p * nb   # the scratch holds the column matrix unless kept
    scratch = _scratch(xp, x.dtype, col_size + o * p * nb)
    for n0 in range(0, n, nb):
        bsz = min(nb, n - n0)
        colbuf = kept if kept is not None else scratch[:k * bsz * p].reshape(k, bsz * p)
        col = im2col(x[n0:n0 + bsz], ks, g["s"], g["pad"], out=colbuf)
        ybuf = scratch[col_size:col_size + o * bsz * p].reshape(o, bsz * p)
        xp.matmul(wg, col.reshape(groups, kg, bsz * p), out=ybuf.reshape(groups, og, bsz * p))
        unpack_output(ybuf, b, y[n0:n0 + bsz])
    return (y, kept) if keep_col else y


def bias_grad(dy):
    """db = dy summed over batch and positions, as contiguous reductions (3x faster than axis=(0, 2, 3))."""
    return dy.reshape(dy.shape[0], dy.shape[1], -1).sum(axis=2).sum(axis=0)


def weight_grad(x, w, dy, stride=1, padding=0, groups=1):
    """dw alone, by im2col's GEMM (what the other algorithms fall back to with weight_grad="im2col")."""
    return conv2d_backward(x, w, dy, stride, padding, groups, need_dx=False, need_db=False)[1]


def conv2d_backward(x, w, dy, stride=1, padding=0, groups=1, need_dx=True, need_dw=True, need_db=True, col=None):
    """(dx, dw, db) of y = conv2d_forward(x, w, b, ...) given dy = dL/dy; None for those not needed.

    col: the forward's column matrix of the whole batch (conv2d_forward's keep_col), used for dw
    instead of a second im2col; it is consumed: overwritten by the column gradient of dx.
    """
    xp = backend.get_array_module(x)
    x, w, dy = xp.ascontiguousarray(x), xp.ascontiguousarray(w), xp.ascontiguousarray(dy)
    g = _geometry(x.shape, w.shape, stride, padding, groups)
    n, o, k, kg, og, p = g["n"], g["o"], g["k"], g["kg"], g["og"], g["p"]
    ks = (g["kh"], g["kw"])
    if dy.shape != (n, o, g["oh"], g["ow"]):  # the kernels below index by these sizes without checks
        raise ValueError(f"conv2d_backward: dy has shape {tuple(dy.shape)}, expected {(n, o, g['oh'], g['ow'])} "
                         f"for input {tuple(x.shape)} and weight {tuple(w.shape)}")
    if col is not None and (tuple(col.shape) != (k, n * p) or col.dtype != x.dtype or not col.flags.c_contiguous):
        raise ValueError(f"conv2d_backward: col must be the forward's C-contiguous {x.dtype} column matrix of "
                         f"shape {(k, n * p)}, got {col.dtype} {tuple(col.shape)}")
    db = bias_grad(dy) if need_db else None
    if not (need_dx or need_dw):
        return None, None, db
    dx = memory.empty_on(xp, x.shape, x.dtype) if need_dx else None
    dwt = xp.empty((groups, kg, og), dtype=w.dtype) if need_dw else None  # dw transposed, per group
    wgt = w.reshape(groups, og, kg).transpose(0, 2, 1)                    # (G, Kg, Og) views of w_g^T
    nb = n if col is not None else _chunk_size(n, (k + o) * p * x.itemsize)
    col_size = 0 if col is not None else k * p * nb
    scratch = _scratch(xp, x.dtype, col_size + o * p * nb)
    for n0 in range(0, n, nb):
        bsz = min(nb, n - n0)
        dyp = pack_grad(dy[n0:n0 + bsz], scratch[col_size:col_size + o * bsz * p].reshape(o, bsz * p))
        dyg = dyp.reshape(groups, og, bsz * p)
        colbuf = col if col is not None else scratch[:k * bsz * p].reshape(k, bsz * p)
        if need_dw:  # dw_g^T += col_g @ dy_g^T: (Kg, B*P) @ (B*P, Og); OpenBLAS is several times
            # slower on the equivalent dy_g @ col_g^T when B*P (the summed dim) is long and Og, Kg short
            if col is None:
                im2col(x[n0:n0 + bsz], ks, g["s"], g["pad"], out=colbuf)
            rows, cols = colbuf.reshape(groups, kg, bsz * p), dyg.transpose(0, 2, 1)
            if n0 == 0:
                xp.matmul(rows, cols, out=dwt)
            else:
                dwt += xp.matmul(rows, cols)
        if need_dx:  # dcol_g = w_g^T @ dy_g (reusing the column buffer), then dx = col2im(dcol)
            xp.matmul(wgt, dyg, out=colbuf.reshape(groups, kg, bsz * p))
            col2im(colbuf, (bsz,) + x.shape[1:], ks, g["s"], g["pad"], out=dx[n0:n0 + bsz])
    dw = xp.ascontiguousarray(dwt.transpose(0, 2, 1)).reshape(w.shape) if need_dw else None
    return dx, dw, db
