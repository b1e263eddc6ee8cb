"""2-D convolution by Winograd along the rows only: F(1 x m, kh x kw), stride 1.

Layouts are those of kernels/conv.py: x (N, C, H, W), w (O, C/groups, kh, kw), y (N, O, OH, OW).
Each output row is cut into 1 x m tiles; tile t = (n, oh, tx) reads, in each of the kh input rows
oh + i - ph (i < kh), the alpha = m + kw - 1 columns starting at tx*m - pw (zeros outside x).  Along
a row this is the 1-D F(m, kw) of winograd.py; across the kh rows it is the direct sum, which joins
the channel sum in the GEMM (im2col over the kernel rows only):

    Y_t = A^T [ sum_(c, i) (G w[o, c, i]) (.) (B^T d_t[c, i]) ]          ((.) elementwise, length alpha)

    U (alpha, G, Og, Cg*kh) = G w[o, c, i]     filter transform, per kernel row
    V (alpha, G, Cg*kh, T)  = B^T d            input transform, T = N * OH * ceil(OW / m) tiles
                                               (an image's in column-major order: tile column, row)
    M (alpha, G, Og, T)     = U @ V            np.matmul: one BLAS GEMM per (b, group), K = Cg*kh
    y                       = A^T M            output transform (cropped to OW)

Multiplies in the GEMMs per output: kh * alpha / m instead of kh * kw (F(1x4, 5x5): 10 vs 25), and
the GEMMs keep im2col's long summed dimension (Cg*kh, where 2-D Winograd has Cg), so BLAS runs
them near its peak; V holds kh * alpha / m values per output pixel and input channel (F(1x4, 5x5):
10, im2col's columns 25).  Only one axis is interpolated, so the float error is that of the 1-D
F(m, kw) (docs/kernels/winograd.md, section 10).

Backward.  The weight gradient dw[o, c, i, j] = sum dy[n, o, oh, ow] xpad[n, c, oh + i, ow + j]
is, along the row, the 1-D F(kw, m) correlation of each input patch with the m-wide tile of dy
(the same patches, and F(m, kw) and F(kw, m) share B^T):

    V  (alpha, G, Cg*kh, T) = B'^T d           (the forward's V)
    Dw (alpha, G, Og, T)    = G' dy_t          (dy_t: the 1 x m tile of dy, zero past OW)
    Mw (alpha, G, Cg*kh, Og) = V @ Dw^T         sum over tiles
    dw[o, c, i] = A'^T Mw                       (kw values)

The input gradient is the adjoint of the forward, each linear step transposed:

    Ady (alpha, G, Og, T)   = A dy_t           (the adjoint of y = A^T M)
    dV  (alpha, G, Cg*kh, T) = U^T @ Ady        K = Og
    dx  = the adjoint of V = B^T d              every tile's B dV added back into the columns it read

One pass over dy computes both of its transforms (G' and A stacked).  The references compute dx as
this forward on winograd.flipped_weight with padding (kh - 1 - ph, kw - 1 - pw) instead.

Versions: ``conv2d_{forward,weight_grad,input_grad}_reference`` (plain NumPy, one tile at a time
with the matrices, the tests' ground truth); ``*_numba`` (the CPU: a Numba kernel transforms every
row of a plane at once and writes V's runs, its adjoint adds them back, BLAS does the GEMMs);
``*_xp`` (gathers, GEMMs and slice additions only, NumPy or CuPy).  Workspace: chunks of the batch under kernels/conv.py's cap.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from . import conv as _conv
from . import memory, pick
from .winograd import POINTS, _pad_to, _split, dispatch_forward, flipped_weight, matrices


def _geometry(x_shape, w_shape, padding, m):
    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    ph, pw = padding
    oh, ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    return n, c, o, kh, kw, oh, ow, -(-ow // m)


def applies(w_shape, stride, m):
    """None when F(1 x m, kh x kw) computes this convolution, else what it needs (a sentence)."""
    kw = w_shape[3]
    if tuple(stride) != (1, 1):
        return f"stride 1 (got stride {tuple(stride)})"
    if kw < 2:
        return f"a kernel at least 2 wide (got {w_shape[2]}x{kw})"
    if m + kw - 2 > len(POINTS):
        return f"a kernel at most {len(POINTS) + 2 - m} wide for tile 1x{m} (got {w_shape[2]}x{kw})"
    return None


# ======================================================================= reference (NumPy, one tile at a time)
def conv2d_forward_reference(x, w, b=None, padding=(0, 0), groups=1, m=4):
    """y = conv(x, w) + b, stride 1, tile by tile: y_t = A^T [ sum_(c,i) (G w[o,c,i]) * (B^T d_t[c,i]) ]."""
    n, c, o, kh, kw, oh, ow, tw = _geometry(x.shape, w.shape, padding, m)
    at, g, bt = (mat.astype(x.dtype) for mat in matrices(m, kw))
    alpha, (ph, pw), cg, og = m + kw - 1, padding, c // groups, o // groups
    xpad = _pad_to(x, ph, pw, oh + kh - 1, (tw - 1) * m + alpha)
    u = w @ g.T                                                      # (O, Cg, kh, alpha): G w per kernel row
    y = np.zeros((n, o, oh, tw * m), x.dtype)
    for ni in range(n):
        for gi in range(groups):
            for r in range(oh):
                for tx in range(tw):
                    d = xpad[ni, gi * cg:(gi + 1) * cg, r:r + kh, tx * m:tx * m + alpha]    # (Cg, kh, alpha)
                    v = d @ bt.T                                                          # B^T d per row
                    mm = np.einsum("ocib,cib->ob", u[gi * og:(gi + 1) * og], v)          # sum over (c, i)
                    y[ni, gi * og:(gi + 1) * og, r, tx * m:(tx + 1) * m] = mm @ at.T
    y = y[:, :, :, :ow]
    return y + b.reshape(1, o, 1, 1) if b is not None else y.copy()


def conv2d_weight_grad_reference(x, dy, w_shape, padding=(0, 0), groups=1, m=4):
    """dw = sum over the 1 x m tiles t of dy of the F(kw, m) correlation of each row of patch d_t with dy_t."""
    n, c, o, kh, kw, oh, ow, tw = _geometry(x.shape, w_shape, padding, m)
    at, g, bt = (mat.astype(x.dtype) for mat in matrices(kw, m))    # F(kw, m): output kw, "filter" m
    alpha, (ph, pw), cg, og = m + kw - 1, padding, c // groups, o // groups
    xpad = _pad_to(x, ph, pw, oh + kh - 1, (tw - 1) * m + alpha)
    dyp = np.zeros((n, o, oh, tw * m), dy.dtype)
    dyp[..., :ow] = dy
    mw = np.zeros((o, cg, kh, alpha), x.dtype)
    for ni in range(n):
        for gi in range(groups):
            for r in range(oh):
                for tx in range(tw):
                    d = xpad[ni, gi * cg:(gi + 1) * cg, r:r + kh, tx * m:tx * m + alpha]    # (Cg, kh, alpha)
                    dt = dyp[ni, gi * og:(gi + 1) * og, r, tx * m:(tx + 1) * m] @ g.T       # (Og, alpha)
                    mw[gi * og:(gi + 1) * og] += dt[:, None, None, :] * (d @ bt.T)[None]
    return mw @ at.T


# ======================================================================= the row transform: Numba (CPU)
@njit(parallel=True, cache=True)
def _rows_nb(x, lt, step, oh0, ow0, out_rows, tw, kh, out):
    """out[b, c*kh + i, n*tpi + t*out_rows + r] = sum_j lt[b, j] xz[n, c, r + i - oh0, t*step + j - ow0]

    x (N, C, H, W); xz is x with zeros outside it; lt (alpha, q) the transform (B^T, or G' for the
    weight gradient's dy tiles, then kh = 1); out (alpha, C*kh, N*tpi), tpi = out_rows*tw, the
    GEMMs' layout, an image's tiles in column-major order (tile column t, then output row r).

    One task per channel, over every image.  A plane is first split into its ``step`` column
    phases, stored column-major (phases[p, k*H + hr] = xz[hr, k*step + p]): tap j of every tile of
    the plane is then one contiguous run, so each transformed value b is a few long vector loops
    over the whole plane, already in the tiles' column-major order.  Each row i of the kernel reads
    it shifted by i - oh0 rows, one long copy per image when out_rows == H (zeroing the few cells
    whose input row is padding), a copy per tile column otherwise."""
    n_n, c_n, h, w = x.shape
    alpha, q = lt.shape
    lead = (q - 1) // step                        # phase columns past a row's last tile
    kq = tw + lead
    tpi = out_rows * tw
    plane_tiles = tw * h
    for c in prange(c_n):
        phases = np.zeros((step, kq * h), out.dtype)
        full = np.empty((alpha, n_n * plane_tiles), out.dtype)   # full[b, n*tw*H + t*H + hr]
        for n in range(n_n):
            plane = x[n, c]
            for p in range(step):
                for k in range(kq):
                    j = k * step + p - ow0
                    if 0 <= j < w:
                        for hr in range(h):
                            phases[p, k * h + hr] = plane[hr, j]
            for b in range(alpha):
                acc = full[b, n * plane_tiles:(n + 1) * plane_tiles]
                acc[:] = 0.0
                for j in range(q):
                    f = lt[b, j]
                    if f != 0.0:
                        off = (j // step) * h
                        tap = phases[j % step, off:off + plane_tiles]
                        for s in range(plane_tiles):
                            acc[s] += f * tap[s]
        for b in range(alpha):
            for i in range(kh):
                row = out[b, c * kh + i]
                d = i - oh0                                   # output row r reads input row r + d
                lo, hi = max(0, -d), max(0, min(out_rows, h - d))   # rows r whose input row is in x
                for n in range(n_n):
                    src = full[b, n * plane_tiles:(n + 1) * plane_tiles]
                    dst = row[n * tpi:(n + 1) * tpi]
                    if out_rows == h:      # every tile column shifted alike: one copy, then the edges
                        e0, e1 = max(0, -d), min(tpi, tpi - d)
                        dst[e0:e1] = src[e0 + d:e1 + d]
                        dst[:e0] = 0.0
                        dst[e1:] = 0.0
                        for t in range(tw):
                            for r in range(lo):
                                dst[t * out_rows + r] = 0.0
                            for r in range(hi, out_rows):
                                dst[t * out_rows + r] = 0.0
                    else:
                        for t in range(tw):
                            for r in range(out_rows):
                                dst[t * out_rows + r] = src[t * h + r + d] if lo <= r < hi else 0.0


@njit(parallel=True, cache=True)
def _scatter_rows_nb(yt, m, out_rows, tw, bias, y):
    """y[n, o, r, t*m + k] = yt[k, o, n*tpi + t*out_rows + r] + bias[o], cropped to OW.  yt (m, O, N*tpi)."""
    n_n, o_n, _, ow = y.shape
    tpi = out_rows * tw
    for task in prange(n_n * o_n):
        n = task // o_n
        o = task % o_n
        bo = bias[o]
        out = y[n, o]
        for k in range(m):
            src = yt[k, o, n * tpi:(n + 1) * tpi]
            for t in range(tw):
                col = t * m + k
                if col < ow:
                    for r in range(out_rows):
                        out[r, col] = src[t * out_rows + r] + bo


@njit(parallel=True, cache=True)
def _rows_adjoint_nb(dv, lt, step, oh0, ow0, out_rows, tw, kh, dx):
    """dx[n, c, hr, col] = sum over b, i, j, t, r with hr = r + i - oh0, col = t*step + j - ow0 of
    lt[b, j] dv[b, c*kh + i, n*tpi + t*out_rows + r]: the adjoint (transpose) of _rows_nb, dx (N, C, H, W).

    Mirrors _rows_nb: per channel and image, the kh rows of dv are added into one plane of tiles
    (each a long run shifted by i - oh0 rows; the cells whose input row is padding, which would
    wrap into the neighbouring tile column, are zeroed in dv first), then each tap j of lt^T is a
    long vector loop into the column phases, which are finally interleaved back into dx's rows."""
    n_n, c_n, h, w = dx.shape
    alpha, q = lt.shape
    lead = (q - 1) // step
    kq = tw + lead
    tpi = out_rows * tw
    plane_tiles = tw * h
    for c in prange(c_n):
        phases = np.empty((step, kq * h), dx.dtype)
        acc = np.empty((alpha, plane_tiles), dx.dtype)
        tmp = np.empty(plane_tiles, dx.dtype)
        for n in range(n_n):
            for b in range(alpha):
                a = acc[b]
                a[:] = 0.0
                for i in range(kh):
                    d = i - oh0
                    lo, hi = max(0, -d), max(0, min(out_rows, h - d))
                    src = dv[b, c * kh + i, n * tpi:(n + 1) * tpi]
                    if out_rows == h:
                        for t in range(tw):          # cells whose input row is padding: not part of dx
                            for r in range(lo):
                                src[t * out_rows + r] = 0.0
                            for r in range(hi, out_rows):
                                src[t * out_rows + r] = 0.0
                        e0, e1 = max(0, d), min(plane_tiles, plane_tiles + d)
                        seg = src[e0 - d:e1 - d]
                        dst = a[e0:e1]
                        for s in range(e1 - e0):
                            dst[s] += seg[s]
                    else:
                        for t in range(tw):
                            for r in range(lo, hi):
                                a[t * h + r + d] += src[t * out_rows + r]
            phases[:] = 0.0
            for j in range(q):
                tmp[:] = 0.0
                for b in range(alpha):
                    f = lt[b, j]
                    if f != 0.0:
                        ab = acc[b]
                        for s in range(plane_tiles):
                            tmp[s] += f * ab[s]
                off = (j // step) * h
                ph = phases[j % step, off:off + plane_tiles]
                for s in range(plane_tiles):
                    ph[s] += tmp[s]
            plane = dx[n, c]
            for col in range(w):      # columns no phase reaches (a negative padding crops them)
                if col + ow0 < 0 or col + ow0 >= kq * step:
                    plane[:, col] = 0.0
            for p in range(step):
                for k in range(kq):
                    col = k * step + p - ow0
                    if 0 <= col < w:
                        for hr in range(h):
                            plane[hr, col] = phases[p, k * h + hr]


def _rows_numba(x, lt, step, off, out_rows, tw, kh, out, work=None):
    _rows_nb(x, lt.astype(x.dtype), step, off[0], off[1], out_rows, tw, kh, out)


def _adjoint_numba(dv, lt, step, off, out_rows, tw, kh, dx, work=None):
    _rows_adjoint_nb(dv, lt.astype(dx.dtype), step, off[0], off[1], out_rows, tw, kh, dx)


def _scatter_numba(yt, m, out_rows, tw, bias, y):
    bias = np.zeros(y.shape[1], y.dtype) if bias is None else np.ascontiguousarray(bias, y.dtype)
    _scatter_rows_nb(yt, m, out_rows, tw, bias, y)


# ======================================================================= gather + GEMM: array-generic (NumPy / CuPy)
def _rows_xp(x, lt, step, off, out_rows, tw, kh, out, work):
    """As _rows_nb: gather the patches' rows into ``work`` (q * C*kh * T elements), then one GEMM with lt."""
    xp = backend.get_array_module(x)
    n_n, c_n = x.shape[:2]
    q = lt.shape[1]
    xz = _pad_to(x, off[0], off[1], out_rows + kh - 1, (tw - 1) * step + q)
    d = work[:q * c_n * kh * n_n * out_rows * tw].reshape(q, c_n, kh, n_n, tw, out_rows)
    for i in range(kh):
        for j in range(q):   # d[j, c, i, n, t, r] = xz[n, c, r + i, t*step + j]
            d[j, :, i] = xz[:, :, i:i + out_rows, j:j + step * (tw - 1) + 1:step].transpose(1, 0, 3, 2)
    xp.matmul(xp.asarray(lt, dtype=x.dtype), d.reshape(q, -1), out=out.reshape(lt.shape[0], -1))


def _adjoint_xp(dv, lt, step, off, out_rows, tw, kh, dx, work):
    """As _rows_adjoint_nb: one GEMM with lt^T into ``work``, then each patch row added back (col2im's way)."""
    xp = backend.get_array_module(dv)
    n_n, c_n, h, w = dx.shape
    q = lt.shape[1]
    d = work[:q * c_n * kh * n_n * out_rows * tw].reshape(q, c_n, kh, n_n, tw, out_rows)
    xp.matmul(xp.asarray(lt.T, dtype=dx.dtype), dv.reshape(lt.shape[0], -1), out=d.reshape(q, -1))
    hh, ww = out_rows + kh - 1, (tw - 1) * step + q
    dxz = xp.zeros((n_n, c_n, hh, ww), dx.dtype)                      # the gradient of xz (x in its frame)
    for i in range(kh):
        for j in range(q):
            dxz[:, :, i:i + out_rows, j:j + step * (tw - 1) + 1:step] += d[j, :, i].transpose(1, 0, 3, 2)
    oh0, ow0 = off
    dx[...] = 0
    h0, w0 = max(0, -oh0), max(0, -ow0)                 # rows/columns of x cut off by a negative pad get 0
    h1, w1 = min(h, hh - oh0), min(w, ww - ow0)
    if h1 > h0 and w1 > w0:
        dx[:, :, h0:h1, w0:w1] = dxz[:, :, h0 + oh0:h1 + oh0, w0 + ow0:w1 + ow0]


def _scatter_xp(yt, m, out_rows, tw, bias, y):
    n_n, o_n, oh, ow = y.shape
    full = yt.reshape(m, o_n, n_n, tw, out_rows).transpose(2, 1, 4, 3, 0).reshape(n_n, o_n, out_rows, tw * m)
    y[...] = full[..., :ow]
    if bias is not None:
        y += bias.reshape(1, o_n, 1, 1)
    return y


# version -> (row transform, output scatter, the transform's adjoint, whether they need scratch to gather into)
_STAGES = {"numba": (_rows_numba, _scatter_numba, _adjoint_numba, False),
           "xp": (_rows_xp, _scatter_xp, _adjoint_xp, True)}


# ======================================================================= the drivers (shared by numba and xp)
def _forward(x, w, b, padding, groups, m, version, keep_v=False):
    """y, or (y, V) with keep_v: V (alpha, C*kh, N*OH*tw) of the whole batch in memory of its own, for
    the weight gradient (None unless the batch is one chunk under the workspace cap)."""
    xp = backend.get_array_module(x)
    transform, scatter, _, gathers = _STAGES[version]
    n, c, o, kh, kw, oh, ow, tw = _geometry(x.shape, w.shape, padding, m)
    at, g, bt = matrices(m, kw)
    alpha, cg, og, tpi = m + kw - 1, c // groups, o // groups, oh * tw
    u = _filter_transform(w, groups, g)
    y = memory.empty_on(xp, (n, o, oh, ow), x.dtype)
    work = max(alpha * c * kh, m * o) if gathers else m * o          # gathered rows / output tiles
    per_image = (alpha * c * kh + alpha * o + work) * tpi               # V, M, work
    nb = _even_chunks(n, _conv._chunk_size(n, per_image * x.itemsize))
    kept = memory.empty_on(xp, (alpha, c * kh, n * tpi), x.dtype) if keep_v and nb >= n else None
    if kept is not None:
        per_image -= alpha * c * kh * tpi
    scratch = _conv._scratch(xp, x.dtype, per_image * nb)
    at_x = xp.asarray(at, dtype=x.dtype)
    for n0 in range(0, n, nb):
        bsz = min(nb, n - n0)
        t = bsz * tpi
        if kept is None:
            v, mbuf, wk = _split(scratch, ((alpha, c * kh, t), (alpha, groups, og, t), (work * bsz * tpi,)))
        else:
            v = kept
            mbuf, wk = _split(scratch, ((alpha, groups, og, t), (work * bsz * tpi,)))
        transform(x[n0:n0 + bsz], bt, m, padding, oh, tw, kh, v, wk)              # V = B^T d, every row patch
        xp.matmul(u, v.reshape(alpha, groups, cg * kh, t), out=mbuf)              # the alpha * G GEMMs
        yt = wk[:m * o * t].reshape(m, o * t)
        xp.matmul(at_x, mbuf.reshape(alpha, o * t), out=yt)                       # A^T M
        scatter(yt.reshape(m, o, t), m, oh, tw, b, y[n0:n0 + bsz])
    return (y, kept) if keep_v else y


def _even_chunks(n, most):
    """Images per chunk: at most ``most``, as even as possible (32 in chunks of 29 -> 16 + 16)."""
    chunks = -(-n // most)
    return -(-n // chunks)


def _filter_transform(w, groups, g):
    """U (alpha, G, Og, Cg*kh): U[b, g, o', (c', i)] = sum_j G[b, j] w[g*Og + o', c', i, j]."""
    xp = backend.get_array_module(w)
    o, cg, kh, kw = w.shape
    u = (w.reshape(o * cg * kh, kw) @ xp.asarray(g.T, dtype=w.dtype)).T
    return xp.ascontiguousarray(u.reshape(g.shape[0], groups, o // groups, cg * kh))


def _backward(x, w, dy, w_shape, padding, groups, m, version, need_dx=True, need_dw=True, v=None):
    """(dx, dw), None for those not needed; w (for dx) may be None when only dw is needed.

    One pass over dy computes both of its transforms (their matrices stacked): G' dy_t for the
    weight gradient's F(kw, m) and A dy_t, the adjoint of the forward's output transform y = A^T M.
    dw: Mw = V @ (G' dy)^T per position, V the forward's (v, when kept) or B^T d again.
    dx: the adjoint of the forward, dV = U^T @ (A dy) per position (a GEMM summing over Og), then
    the adjoint of the row transform adds every tile's B dV back into dx's rows."""
    xp = backend.get_array_module(x)
    transform, _, adjoint, gathers = _STAGES[version]
    n, c, o, kh, kw, oh, ow, tw = _geometry(x.shape, w_shape, padding, m)
    if tuple(dy.shape) != (n, o, oh, ow):
        raise ValueError(f"winograd rows backward: dy has shape {tuple(dy.shape)}, expected {(n, o, oh, ow)}")
    at, g, bt = matrices(m, kw)                                   # the forward's F(m, kw)
    at_w, g_w, _ = matrices(kw, m)                                # the weight gradient's F(kw, m); same B^T
    alpha, cg, og, tpi = m + kw - 1, c // groups, o // groups, oh * tw
    lt = np.vstack(([g_w] if need_dw else []) + ([at.T] if need_dx else []))
    if v is not None and tuple(v.shape) != (alpha, c * kh, n * tpi):
        raise ValueError(f"winograd rows weight gradient: v must be the forward's transformed input of shape "
                         f"{(alpha, c * kh, n * tpi)}, got {tuple(v.shape)}")
    need_v = need_dw and v is None
    work = max(alpha * c * kh, m * o) if gathers else 0                  # gathered rows / patch rows
    per_image = (lt.shape[0] * o + alpha * c * kh * (need_v + need_dx) + work) * tpi
    nb = _even_chunks(n, _conv._chunk_size(n, per_image * x.itemsize))
    scratch = _conv._scratch(xp, x.dtype, per_image * nb)
    mw = xp.zeros((alpha, groups, cg * kh, og), x.dtype) if need_dw else None
    ut = xp.ascontiguousarray(_filter_transform(w, groups, g).transpose(0, 1, 3, 2)) if need_dx else None
    dx = memory.empty_on(xp, x.shape, x.dtype) if need_dx else None
    for n0 in range(0, n, nb):
        bsz = min(nb, n - n0)
        t = bsz * tpi
        f, vbuf, dvbuf, wk = _split(scratch, ((lt.shape[0], o, t), (alpha * c * kh * need_v * t,),
                                              (alpha * c * kh * need_dx * t,), (work * bsz * tpi,)))
        transform(dy[n0:n0 + bsz], lt, m, (0, 0), oh, tw, 1, f, wk)             # G' dy_t and A dy_t
        if need_dw:
            if v is None:
                vv = vbuf.reshape(alpha, c * kh, t)
                transform(x[n0:n0 + bsz], bt, m, padding, oh, tw, kh, vv, wk)     # B'^T d
            else:
                vv = v[:, :, n0 * tpi:n0 * tpi + t]
            # (Cg*kh, T) @ (T, Og): the long summed dimension T last in both operands' memory
            mw += xp.matmul(vv.reshape(alpha, groups, cg * kh, t),
                            f[:alpha].reshape(alpha, groups, og, t).transpose(0, 1, 3, 2))
        if need_dx:
            dv = dvbuf.reshape(alpha, groups, cg * kh, t)
            xp.matmul(ut, f[lt.shape[0] - alpha:].reshape(alpha, groups, og, t), out=dv)     # dV = U^T (A dy)
            adjoint(dv.reshape(alpha, c * kh, t), bt, m, padding, oh, tw, kh, dx[n0:n0 + bsz], wk)
    dw = None
    if need_dw:   # dw[o, c', i, j] = sum_b A'^T[j, b] Mw[b, g, (c', i), o']
        dw = xp.asarray(at_w, dtype=x.dtype) @ mw.transpose(0, 1, 3, 2).reshape(alpha, o * cg * kh)
        dw = xp.ascontiguousarray(dw.T).reshape(o, cg, kh, kw)
    return dx, dw


def conv2d_forward_numba(x, w, b=None, padding=(0, 0), groups=1, m=4, keep_v=False):
    """As conv2d_forward_reference: a Numba row transform around BLAS GEMMs (keep_v: see _forward)."""
    return _forward(x, w, b, padding, groups, m, "numba", keep_v)


def conv2d_forward_xp(x, w, b=None, padding=(0, 0), groups=1, m=4, keep_v=False):
    """As conv2d_forward_reference, for NumPy or CuPy arrays (keep_v: see _forward)."""
    return _forward(x, w, b, padding, groups, m, "xp", keep_v)


def conv2d_weight_grad_numba(x, dy, w_shape, padding=(0, 0), groups=1, m=4, v=None):
    """As conv2d_weight_grad_reference: Numba row transforms around BLAS GEMMs."""
    return _backward(x, None, dy, w_shape, padding, groups, m, "numba", need_dx=False, v=v)[1]


def conv2d_weight_grad_xp(x, dy, w_shape, padding=(0, 0), groups=1, m=4, v=None):
    """As conv2d_weight_grad_reference, for NumPy or CuPy arrays."""
    return _backward(x, None, dy, w_shape, padding, groups, m, "xp", need_dx=False, v=v)[1]


def conv2d_input_grad_reference(dy, w, x_shape, padding=(0, 0), groups=1, m=4):
    """dx = conv(dy, w') by conv2d_forward_reference, w' the flipped filter, padding k - 1 - p."""
    kh, kw = w.shape[2:]
    return conv2d_forward_reference(dy, flipped_weight(w, groups), None, (kh - 1 - padding[0], kw - 1 - padding[1]),
                                    groups, m)


def conv2d_input_grad_numba(dy, w, x_shape, padding=(0, 0), groups=1, m=4):
    """As conv2d_input_grad_reference, by the adjoint of the forward (see _backward)."""
    return _backward(np.empty(x_shape, dy.dtype), w, dy, w.shape, padding, groups, m, "numba", need_dw=False)[0]


def conv2d_input_grad_xp(dy, w, x_shape, padding=(0, 0), groups=1, m=4):
    """As conv2d_input_grad_reference, for NumPy or CuPy arrays, by the adjoint of the forward."""
    xp = backend.get_array_module(dy)
    return _backward(xp.empty(x_shape, dy.dtype), w, dy, w.shape, padding, groups, m, "xp", need_dw=False)[0]


# ======================================================================= dispatchers
def conv2d_forward(x, w, b=None, padding=(0, 0), groups=1, m=4, keep_v=False):
    """y = conv(x, w) + b with stride 1 by F(1 x m, kh x kw); numba on CPU, xp on GPU.
    keep_v=True returns (y, v) as winograd.conv2d_forward does."""
    return dispatch_forward((conv2d_forward_reference, conv2d_forward_numba, conv2d_forward_xp),
                            x, w, b, padding, groups, m, keep_v)


def conv2d_backward(x, w, dy, padding=(0, 0), groups=1, m=4, need_dx=True, need_dw=True, need_db=True,
                    weight_grad="winograd", v=None):
    """(dx, dw, db) of conv2d_forward; None for those not needed.  dx by the adjoint of the forward, dw
    by F(kw, m) along the rows (or im2col's GEMM when ``weight_grad="im2col"``), both from one pass
    over dy; the reference computes dx as the forward on the flipped filter.
    v: conv2d_forward's kept transformed input (keep_v), used for dw instead of transforming x again."""
    x, w, dy = _contig(x), _contig(w), _contig(dy)
    db = _conv.bias_grad(dy) if need_db else None
    dw = None
    if need_dw and weight_grad == "im2col":
        dw, need_dw = _conv.weight_grad(x, w, dy, 1, padding, groups), False
    if not (need_dx or need_dw):
        return None, dw, db
    version = pick("reference", "numba", "xp", x)
    if version == "reference":
        dx, dw_own = conv2d_backward_reference(x, w, dy, padding, groups, m, need_dx, need_dw)
    else:
        dx, dw_own = _backward(x, w, dy, w.shape, padding, groups, m, version, need_dx, need_dw, v)
    return dx, dw if dw is not None else dw_own, db


def conv2d_backward_reference(x, w, dy, padding=(0, 0), groups=1, m=4, need_dx=True, need_dw=True):
    """(dx, dw) by the tile-by-tile references."""
    dx = conv2d_input_grad_reference(dy, w, x.shape, padding, groups, m) if need_dx else None
    dw = conv2d_weight_grad_reference(x, dy, w.shape, padding, groups, m) if need_dw else None
    return dx, dw


def _contig(a):
    return backend.get_array_module(a).ascontiguousarray(a)
