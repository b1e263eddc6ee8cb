"""2-D convolution by Winograd's minimal filtering F(m x m, r x r) (Lavin & Gray 2015), stride 1.

Layouts are those of kernels/conv.py: x (N, C, H, W), w (O, C/groups, r, r), y (N, O, OH, OW),
OH = H + 2 ph - r + 1.  The output is cut into m x m tiles; tile t = (n, ty, tx) reads the
alpha x alpha input patch (alpha = m + r - 1) starting at row ty*m - ph, column tx*m - pw
(zeros outside x), and

    Y_t = A^T [ sum_c (G w[o, c] G^T) (.) (B^T d_t[c] B) ] A         ((.) elementwise)

For a fixed transformed position (a, b) the channel sum is a matrix product, so the whole layer
is alpha^2 GEMMs over a stacked array (groups are one more batch dimension):

    U (alpha^2, G, Og, Cg)  = G w G^T         filter transform
    V (alpha^2, G, Cg, T)   = B^T d B         input transform, T = tiles of a chunk of images
    M (alpha^2, G, Og, T)   = U @ V           np.matmul: one BLAS GEMM per (a, b, group)
    y                       = A^T M A         output transform (cropped to OH x OW)

Multiplies in the GEMMs per output: alpha^2 / m^2 instead of r^2 (F(4x4,3x3): 36/16 = 2.25 vs 9).

Backward.  The input gradient is a full correlation of dy with the filter flipped in both
spatial axes and transposed in its channel axes (per group), padding r - 1 - p:

    dx = conv(dy, w'), w'[g*Cg + c, o', i, j] = w[g*Og + o', c, r-1-i, r-1-j]

so it is this same forward (a negative padding, p > r - 1, crops instead of padding).  The
weight gradient dw[o, c, i, j] = sum_{n, oh, ow} dy[n, o, oh, ow] xpad[n, c, oh + i, ow + j] is a
correlation of xpad with dy: cut dy into m x m tiles, each tile is the "filter" of an F(r x r, m x m)
problem on the same input patches, and the sum over tiles is a GEMM in the transformed domain:

    Vw (alpha^2, G, Cg, T) = B'^T d B'        (d_t the same patches as the forward's)
    Dw (alpha^2, G, Og, T) = G' dy_t G'^T     (dy_t the m x m tile of dy, zero past OH, OW)
    Mw (alpha^2, G, Cg, Og) = Vw @ Dw^T       sum over tiles and images
    dw[o, c] = A'^T Mw A'                     (r x r)

with (A', G', B') the matrices of F(r, m), alpha = m + r - 1 as before (same interpolation points).
Derivations, the matrices and error: docs/kernels/winograd.md.

Versions
--------
``conv2d_forward_reference`` / ``conv2d_weight_grad_reference``: plain NumPy, one tile at a time,
written with the matrices as in the paper; the ground truth of the tests.
``conv2d_forward_numba`` / ``conv2d_weight_grad_numba``: the CPU default.  The input transforms
(B^T d B, and the weight gradient's G' dy_t G'^T) are fused with the gather: a Numba kernel, one
task per (image, channel), reads each patch straight from x (zeros outside it) and writes V in the
GEMMs' layout, using only the nonzero entries of the matrix; F(2x2, 3x3)'s are written out as adds.
The output transform is ONE BLAS GEMM with kron(A^T, A^T) (vec(L D L^T) = (L (x) L) vec(D)) and a
Numba scatter (cropped, bias added).
``conv2d_forward_xp`` / ``conv2d_weight_grad_xp``: every transform a gather (strided slices) and a
GEMM with the Kronecker product, for NumPy or CuPy arrays.
``conv2d_forward`` / ``conv2d_backward``: dispatchers (by device; the reference when forced).

Workspace: the batch is processed in chunks whose buffers (V, alpha^2 C T; M, alpha^2 O T; output
tiles, m^2 O T; xp also the gathered patches) stay under kernels/conv.py's cap
(``set_workspace_limit``), in its reused scratch buffer.
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from numba import njit, prange

from .. import backend
from . import conv as _conv
from . import memory, pick

# Interpolation points in the order they are taken (the point at infinity is always added last).
# Small integers first: the matrices' entries grow with the points, and so does float error.
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2), 3, -3)


# ======================================================================= the matrices (Cook-Toom)
@lru_cache(maxsize=None)
def matrices_exact(m, r):
    """(AT, G, BT) of F(m, r) as nested tuples of Fractions: y = AT [(G g) * (BT d)].

    From Toom-Cook for the linear convolution of u (length m) and g (length r), evaluated at the
    n - 1 = m + r - 2 finite points of POINTS and at infinity (a polynomial's value at infinity is
    its leading coefficient): conv(u, g) = V^-1 [(A u) * (Gv g)] with A, Gv, V the Vandermonde
    matrices (n x m, n x r, n x n).  The correlation y of d with g is the transpose of that map
    in u, so y = A^T [(Gv g) * (V^-T d)]: AT = A^T, BT = V^-T, and each row j may be scaled by
    f_j in BT and 1/f_j in G; f_j = prod_{l != j} (p_j - p_l) makes BT's rows integers (Lavin's choice).
    """
    n = m + r - 1
    if not (1 <= m and 1 <= r and n - 1 <= len(POINTS)):
        raise ValueError(f"winograd.matrices: F({m}, {r}) needs {n - 1} interpolation points, have {len(POINTS)}")
    pts = [Fraction(p) for p in POINTS[:n - 1]]

    def vander(k):  # rows: (p^0 .. p^(k-1)) per finite point, then e_(k-1) for infinity
        return [[p ** i for i in range(k)] for p in pts] + [[Fraction(0)] * (k - 1) + [Fraction(1)]]
    a, gv, v = vander(m), vander(r), vander(n)
    vinv = _inverse(v)
    bt = [[vinv[i][j] for i in range(n)] for j in range(n)]   # V^-T
    for j, p in enumerate(pts):
        f = Fraction(1)
        for q in pts:
            if q != p:
                f *= p - q
        bt[j] = [e * f for e in bt[j]]
        gv[j] = [e / f for e in gv[j]]
    at = [[a[j][i] for j in range(n)] for i in range(m)]
    return tuple(map(tuple, at)), tuple(map(tuple, gv)), tuple(map(tuple, bt))


def _inverse(mat):
    """Exact inverse of a square matrix of Fractions (Gauss-Jordan)."""
    n = len(mat)
    aug = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(mat)]
    for col in range(n):
        piv = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[piv] = aug[piv], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [e * inv for e in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                factor = aug[r][col]
                aug[r] = [e - factor * pe for e, pe in zip(aug[r], aug[col])]
    return [row[n:] for row in aug]


def matrices(m, r, dtype=np.float64):
    """(AT (m, alpha), G (alpha, r), BT (alpha, alpha)) of F(m, r) as arrays of ``dtype``."""
    return tuple(np.array([[float(e) for e in row] for row in mat], dtype=dtype) for mat in matrices_exact(m, r))


def _geometry(x_shape, w_shape, padding, m):
    n, c, h, w = x_shape
    o, cg, r, r2 = w_shape
    if r != r2:
        raise ValueError(f"winograd: the kernel must be square, got {r}x{r2} (weight {tuple(w_shape)})")
    ph, pw = padding
    oh, ow = h + 2 * ph - r + 1, w + 2 * pw - r + 1
    return n, c, o, r, oh, ow, -(-oh // m), -(-ow // m)


def flipped_weight(w, groups):
    """w' of the input gradient: per group, channels in<->out swapped and both spatial axes flipped."""
    o, cg, kh, kw = w.shape
    og = o // groups
    wf = w.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
    return wf.reshape(groups * cg, og, kh, kw).copy()


# ======================================================================= reference (NumPy, one tile at a time)
def conv2d_forward_reference(x, w, b=None, padding=(0, 0), groups=1, m=2):
    """y = conv(x, w) + b, stride 1, tile by tile: Y = AT [ sum_c (G g G^T) * (BT d BT^T) ] AT^T."""
    n, c, o, r, oh, ow, th, tw = _geometry(x.shape, w.shape, padding, m)
    at, g, bt = (mat.astype(x.dtype) for mat in matrices(m, r))
    alpha, (ph, pw), cg, og = m + r - 1, padding, c // groups, o // groups
    xpad = _pad_to(x, ph, pw, (th - 1) * m + alpha, (tw - 1) * m + alpha)
    u = g @ w @ g.T                                                  # G g G^T per (o, c)
    y = np.zeros((n, o, th * m, tw * m), x.dtype)
    for ni in range(n):
        for gi in range(groups):
            for ty in range(th):
                for tx in range(tw):
                    d = xpad[ni, gi * cg:(gi + 1) * cg, ty * m:ty * m + alpha, tx * m:tx * m + alpha]
                    v = bt @ d @ bt.T                                        # (Cg, alpha, alpha)
                    mm = np.einsum("ocab,cab->oab", u[gi * og:(gi + 1) * og], v)  # the channel sum
                    y[ni, gi * og:(gi + 1) * og, ty * m:(ty + 1) * m, tx * m:(tx + 1) * m] = at @ mm @ at.T
    y = y[:, :, :oh, :ow]
    return y + b.reshape(1, o, 1, 1) if b is not None else y.copy()


def conv2d_weight_grad_reference(x, dy, w_shape, padding=(0, 0), groups=1, m=2):
    """dw = sum over m x m tiles t of dy of the F(r, m) correlation of the patch d_t with dy_t."""
    n, c, o, r, oh, ow, th, tw = _geometry(x.shape, w_shape, padding, m)
    at, g, bt = (mat.astype(x.dtype) for mat in matrices(r, m))     # F(r, m): output r, "filter" m
    alpha, (ph, pw), cg, og = m + r - 1, padding, c // groups, o // groups
    xpad = _pad_to(x, ph, pw, (th - 1) * m + alpha, (tw - 1) * m + alpha)
    dyp = np.zeros((n, o, th * m, tw * m), dy.dtype)
    dyp[:, :, :oh, :ow] = dy
    mw = np.zeros((o, cg, alpha, alpha), x.dtype)
    for ni in range(n):
        for gi in range(groups):
            for ty in range(th):
                for tx in range(tw):
                    d = xpad[ni, gi * cg:(gi + 1) * cg, ty * m:ty * m + alpha, tx * m:tx * m + alpha]
                    gt = dyp[ni, gi * og:(gi + 1) * og, ty * m:(ty + 1) * m, tx * m:(tx + 1) * m]
                    v, dt = bt @ d @ bt.T, g @ gt @ g.T                      # (Cg, a, a), (Og, a, a)
                    mw[gi * og:(gi + 1) * og] += dt[:, None] * v[None]
    return at @ mw @ at.T


def _pad_to(x, ph, pw, hh, ww):
    """x placed at (ph, pw) in zeros of (N, C, hh, ww); parts outside the frame (negative pad) dropped.
    NumPy or CuPy, as x."""
    out = backend.get_array_module(x).zeros(x.shape[:2] + (hh, ww), x.dtype)
    h0, w0 = max(0, -ph), max(0, -pw)                          # rows/cols of x cut off by a negative pad
    h1, w1 = min(x.shape[2], hh - ph), min(x.shape[3], ww - pw)
    if h1 > h0 and w1 > w0:
        out[:, :, h0 + ph:h1 + ph, w0 + pw:w1 + pw] = x[:, :, h0:h1, w0:w1]
    return out


# ======================================================================= fused input transforms: Numba (CPU)
# The input transforms L D L^T (B^T d B of x's patches, G' dy_t G'^T of dy's tiles) read the
# patches straight from the NCHW array and write V in the GEMMs' layout: one pass over memory, no
# gathered-patch buffer, and only the nonzero entries of L are used (B^T of F(2, 3) is 0 and +-1:
# 32 adds per patch, where the dense kron(B^T, B^T) GEMM does 256 multiply-adds).  A task builds
# its part of V in a local buffer and writes it as alpha^2 contiguous runs: the alpha^2 rows of V
# lie C*T elements apart, often a multiple of 4 KiB, and storing to all of them tile by tile
# thrashed the cache.  The generic kernel's task is one (image, channel); F(2x2, 3x3)'s written-out
# kernels take one channel over every image, so each run is a whole row of V (8-25% faster).
@njit(cache=True, inline="always")
def _fill_plane(x, n, c, oh0, ow0, z):
    """z[i, j] = x[n, c, i - oh0, j - ow0] where that lies inside x; z's other cells are left as they are."""
    h, w = x.shape[2], x.shape[3]
    hp, wp = z.shape
    i0, i1, j0, j1 = max(0, oh0), min(hp, h + oh0), max(0, ow0), min(wp, w + ow0)
    for i in range(i0, i1):
        src, dst = x[n, c, i - oh0], z[i]
        for j in range(j0, j1):
            dst[j] = src[j - ow0]


@njit(cache=True)
def _padded_plane(x, n, c, oh0, ow0, hp, wp):
    """z (hp, wp): z[i, j] = x[n, c, i - oh0, j - ow0], zero outside x."""
    z = np.zeros((hp, wp), x.dtype)
    _fill_plane(x, n, c, oh0, ow0, z)
    return z


@njit(cache=True, inline="always")
def _store_task(v, c, n, tpi, out):
    """out[ab, c, n*tpi:(n+1)*tpi] = v[ab]: a task's part of V, written as alpha^2 contiguous runs."""
    for ab in range(v.shape[0]):
        out[ab, c, n * tpi:(n + 1) * tpi] = v[ab]


@njit(parallel=True, cache=True)
def _transform_in_nb(x, lt, step, oh0, ow0, th, tw, out):
    """out[a*alpha + b, c, (n*th + ty)*tw + tx] = sum_ij lt[a, i] lt[b, j] xz[n, c, ty*step + i - oh0, tx*step + j - ow0]

    x (N, C, H, W); xz is x with zeros outside it (padding, tiles past the edge); lt (alpha, q), the
    transform's left factor (B^T, or G' for the weight gradient's dy tiles); out (alpha^2, C, N*th*tw),
    the layout of the channel GEMMs.  One task per (image, channel); every inner loop runs over
    that task's tiles (contiguous, so it vectorises), the loops over lt's entries outside it."""
    n_n, c_n = x.shape[0], x.shape[1]
    alpha, q = lt.shape
    tpi = th * tw
    for task in prange(n_n * c_n):
        n = task // c_n
        c = task % c_n
        z = _padded_plane(x, n, c, oh0, ow0, (th - 1) * step + q, (tw - 1) * step + q)
        d = np.empty((q * q, tpi), out.dtype)                   # d[i*q + j, t]: the patches
        for i in range(q):
            for j in range(q):
                for ty in range(th):
                    for tx in range(tw):
                        d[i * q + j, ty * tw + tx] = z[ty * step + i, tx * step + j]
        e = np.zeros((alpha * q, tpi), out.dtype)              # e[a*q + j] = sum_i lt[a, i] d[i*q + j]
        for a in range(alpha):
            for i in range(q):
                f = lt[a, i]
                if f != 0.0:
                    for j in range(q):
                        for t in range(tpi):
                            e[a * q + j, t] += f * d[i * q + j, t]
        v = np.zeros((alpha * alpha, tpi), out.dtype)          # v[a*alpha + b] = sum_j lt[b, j] e[a*q + j]
        for a in range(alpha):
            for b in range(alpha):
                for j in range(q):
                    f = lt[b, j]
                    if f != 0.0:
                        for t in range(tpi):
                            v[a * alpha + b, t] += f * e[a * q + j, t]
        _store_task(v, c, n, tpi, out)


# F(2x2, 3x3) written out: its B^T, A^T (and the G' of the weight gradient's F(3x3, 2x2)) are
# 0, +-1 and +-1/2, so each tile is a handful of adds on scalars held in registers; the generic
# loops above spend most of their time on loop overhead for so little work per tile.
# _F23 holds the matrices these kernels hard-code; the dispatch compares, so they cannot drift.
_F23 = {"bt": matrices(2, 3)[2], "at": matrices(2, 3)[0], "g_dw": matrices(3, 2)[1]}


@njit(cache=True, inline="always")
def _bt23(d0, d1, d2, d3):
    """B^T d of F(2, 3) for one column (or row) d: B^T = [[-1, 0, 1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]]."""
    return d2 - d0, d1 + d2, d2 - d1, d3 - d1


@njit(cache=True, inline="always")
def _g32(a0, a1, half):
    """G' a of the weight gradient's F(3, 2): G' = [[-1, 0], [1/2, 1/2], [1/2, -1/2], [0, 1]] (half = 1/2 in a's dtype)."""
    return -a0, half * (a0 + a1), half * (a0 - a1), a1


@njit(cache=True, inline="always")
def _put_row4(v16, a, col, v):
    """v16[4a + b, col] = v[b], b < 4: row a of one tile's 4x4 transform."""
    v16[4 * a, col] = v[0]
    v16[4 * a + 1, col] = v[1]
    v16[4 * a + 2, col] = v[2]
    v16[4 * a + 3, col] = v[3]


@njit(parallel=True, cache=True)
def _transform_in_f23_nb(x, oh0, ow0, th, tw, out):
    """As _transform_in_nb with lt = B^T of F(2, 3) (step 2): out[a*4 + b, c, t] = (B^T d_t B)[a, b].

    One task per channel, over every image: its 16 rows of V are built in a local buffer and
    written as 16 long runs (one per row of V, all images at once)."""
    n_n, c_n = x.shape[0], x.shape[1]
    tpi = th * tw
    for c in prange(c_n):
        z = np.zeros((2 * th + 2, 2 * tw + 2), out.dtype)   # the padded plane; its border stays zero
        v16 = np.empty((16, n_n * tpi), out.dtype)
        for n in range(n_n):
            _fill_plane(x, n, c, oh0, ow0, z)
            for ty in range(th):
                base = n * tpi + ty * tw
                r = 2 * ty
                for tx in range(tw):
                    s = 2 * tx   # the columns of B^T d, then its rows times B
                    e0 = _bt23(z[r, s], z[r + 1, s], z[r + 2, s], z[r + 3, s])
                    e1 = _bt23(z[r, s + 1], z[r + 1, s + 1], z[r + 2, s + 1], z[r + 3, s + 1])
                    e2 = _bt23(z[r, s + 2], z[r + 1, s + 2], z[r + 2, s + 2], z[r + 3, s + 2])
                    e3 = _bt23(z[r, s + 3], z[r + 1, s + 3], z[r + 2, s + 3], z[r + 3, s + 3])
                    for a in range(4):
                        _put_row4(v16, a, base + tx, _bt23(e0[a], e1[a], e2[a], e3[a]))
        for ab in range(16):
            out[ab, c, :] = v16[ab]


@njit(parallel=True, cache=True)
def _transform_dy_f32_nb(dy, th, tw, halves, out):
    """As _transform_in_nb with lt = G' of F(3, 2) (2x2 tiles of dy, step 2): out[a*4 + b, o, t] = (G' dy_t G'^T)[a, b].

    One task per channel, over every image, as _transform_in_f23_nb."""
    n_n, o_n = dy.shape[0], dy.shape[1]
    half = halves[0]
    tpi = th * tw
    for o in prange(o_n):
        z = np.zeros((2 * th, 2 * tw), out.dtype)     # the plane, zero past OH, OW (the same cells each time)
        v16 = np.empty((16, n_n * tpi), out.dtype)
        for n in range(n_n):
            _fill_plane(dy, n, o, 0, 0, z)
            for ty in range(th):
                base = n * tpi + ty * tw
                z0, z1 = z[2 * ty], z[2 * ty + 1]
                for tx in range(tw):
                    s = 2 * tx
                    e0 = _g32(z0[s], z1[s], half)
                    e1 = _g32(z0[s + 1], z1[s + 1], half)
                    for a in range(4):
                        _put_row4(v16, a, base + tx, _g32(e0[a], e1[a], half))
        for ab in range(16):
            out[ab, o, :] = v16[ab]


@njit(parallel=True, cache=True)
def _scatter_nb(yt, m, th, tw, bias, y):
    """y[n, o, ty*m + i, tx*m + j] = yt[i*m + j, o, (n*th + ty)*tw + tx] + bias[o], cropped to y.

    yt (m*m, O, N*th*tw); y (N, O, OH, OW); bias (O,).  Through 1-D row views: a run of yt's tiles
    for one (i, j) goes to every m-th element of one row of y."""
    n_n, o_n, oh, ow = y.shape
    for task in prange(n_n * o_n):
        n = task // o_n
        o = task % o_n
        b = bias[o]
        for hh in range(oh):
            ty, i = hh // m, hh % m
            y_row = y[n, o, hh]
            base = (n * th + ty) * tw
            for j in range(m):
                tiles = yt[i * m + j, o, base:base + tw]
                for tx in range(min(tw, (ow - j + m - 1) // m)):   # the columns tx*m + j inside y
                    y_row[tx * m + j] = tiles[tx] + b


def _transform_in_numba(x, lt, step, off, th, tw, out, work=None):
    """out (alpha^2, C, T) = lt d lt^T of every patch; F(2, 3)'s B^T and F(3, 2)'s G' by the written-out kernels."""
    if lt.shape == (4, 4) and step == 2 and np.array_equal(lt, _F23["bt"]):
        _transform_in_f23_nb(x, off[0], off[1], th, tw, out)
    elif lt.shape == (4, 2) and step == 2 and tuple(off) == (0, 0) and np.array_equal(lt, _F23["g_dw"]):
        _transform_dy_f32_nb(x, th, tw, np.full(1, 0.5, x.dtype), out)
    else:
        _transform_in_nb(x, lt.astype(x.dtype), step, off[0], off[1], th, tw, out)


def _scatter_numba(yt, m, th, tw, bias, y):
    """As _scatter_nb, bias None for none."""
    o_n = y.shape[1]
    bias = np.zeros(o_n, y.dtype) if bias is None else np.ascontiguousarray(bias, y.dtype)
    _scatter_nb(yt, m, th, tw, bias, y)


# ======================================================================= gather + Kronecker GEMM: array-generic (NumPy / CuPy)
# vec(L D L^T) = (L (x) L) vec(D): a gather lays the patches out as a (q*q, C, T) matrix, and ONE
# GEMM with the small matrix kron(L, L) transforms them all; a scatter puts output tiles back.
# Memory-heavier than the fused Numba kernels, but only whole-array operations (for CuPy).
def _gather_xp(x, q, step, off, th, tw, out):
    """out[i*q + j, c, (n*th + ty)*tw + tx] = xz[n, c, ty*step + i - off[0], tx*step + j - off[1]]
    (xz: x with zeros outside it), one strided slice copy per patch offset (i, j)."""
    n_n, c_n = x.shape[:2]
    xz = _pad_to(x, off[0], off[1], (th - 1) * step + q, (tw - 1) * step + q)
    d = out.reshape(q, q, c_n, n_n, th, tw)
    for i in range(q):
        for j in range(q):  # d[i, j, c, n, ty, tx] = xz[n, c, ty*step + i, tx*step + j]
            d[i, j] = xz[:, :, i:i + step * (th - 1) + 1:step, j:j + step * (tw - 1) + 1:step].transpose(1, 0, 2, 3)
    return out


def _scatter_xp(yt, m, th, tw, bias, y):
    """y[n, o, ty*m + i, tx*m + j] = yt[i*m + j, o, (n*th + ty)*tw + tx] (+ bias[o]), cropped to y."""
    n_n, o_n, oh, ow = y.shape
    full = yt.reshape(m, m, o_n, n_n, th, tw).transpose(3, 2, 4, 0, 5, 1).reshape(n_n, o_n, th * m, tw * m)
    y[...] = full[:, :, :oh, :ow]
    if bias is not None:
        y += bias.reshape(1, o_n, 1, 1)
    return y


def _transform_in_xp(x, lt, step, off, th, tw, out, work):
    """As _transform_in_nb: gather into ``work`` (q^2 C T elements), then one GEMM with kron(lt, lt)."""
    xp = backend.get_array_module(x)
    q, c_n, t = lt.shape[1], out.shape[1], out.shape[2]
    d = _gather_xp(x, q, step, off, th, tw, work[:q * q * c_n * t].reshape(q * q, c_n, t))
    xp.matmul(_kron(xp, lt, x.dtype), d.reshape(q * q, c_n * t), out=out.reshape(-1, c_n * t))


# ======================================================================= the drivers (shared by numba and xp)
def _transform_out(mt, at, th, tw, bias, y, work, scatter):
    """y = A^T M A per tile (+ bias): one GEMM with kron(A^T, A^T) into ``work`` (m^2 O T elements),
    then ``scatter``.  (Fused per-tile Numba kernels, tried, were slower: the GEMM reads M's
    alpha^2 rows at BLAS speed, and the scatter's output is alpha^2/m^2 times smaller than M.)"""
    xp = backend.get_array_module(mt)
    m, (alpha2, o_n, t) = at.shape[0], mt.shape
    yt = work[:m * m * o_n * t].reshape(m * m, o_n * t)
    xp.matmul(_kron(xp, at, mt.dtype), mt.reshape(alpha2, o_n * t), out=yt)
    scatter(yt.reshape(m * m, o_n, t), m, th, tw, bias, y)


# version -> (input transform, output scatter, whether the input transform needs scratch to gather into)
_STAGES = {"numba": (_transform_in_numba, _scatter_numba, False),
           "xp": (_transform_in_xp, _scatter_xp, True)}


def _kron(xp, mat, dtype):
    return xp.asarray(np.kron(mat, mat), dtype=dtype)


def _forward(x, w, b, padding, groups, m, version, keep_v=False):
    """y, or (y, V) with keep_v: V (alpha^2, C, N*tiles) the transformed input of the whole batch in
    memory of its own, for the weight gradient (None unless the batch is one chunk under the cap)."""
    xp = backend.get_array_module(x)
    transform_in, scatter, gathers = _STAGES[version]
    n, c, o, r, oh, ow, th, tw = _geometry(x.shape, w.shape, padding, m)
    at, g, bt = matrices(m, r)                              # float64 NumPy; each stage casts
    alpha2, cg, og, tpi = (m + r - 1) ** 2, c // groups, o // groups, th * tw
    # filter transform (once per call, not per tile), U[ab, o, c'] = (kron(G, G) vec(w[o, c']))[ab]
    u = (_kron(xp, g, x.dtype) @ w.reshape(o * cg, r * r).T).reshape(alpha2, groups, og, cg)
    y = memory.empty_on(xp, (n, o, oh, ow), x.dtype)
    work = max(alpha2 * c, m * m * o) if gathers else m * m * o          # gathered patches / output tiles
    per_image = (alpha2 * c + alpha2 * o + work) * tpi                   # V, M, work
    nb = _conv._chunk_size(n, per_image * x.itemsize)
    kept = memory.empty_on(xp, (alpha2, c, n * tpi), x.dtype) if keep_v and nb >= n else None
    if kept is not None:                                                 # the scratch holds V unless kept
        per_image -= alpha2 * c * tpi
    scratch = _conv._scratch(xp, x.dtype, per_image * nb)
    for n0 in range(0, n, nb):
        bsz = min(nb, n - n0)
        t = bsz * tpi
        if kept is None:
            v, mbuf, wk = _split(scratch, ((alpha2, c, t), (alpha2, groups, og, t), (work * bsz * tpi,)))
        else:
            v = kept
            mbuf, wk = _split(scratch, ((alpha2, groups, og, t), (work * bsz * tpi,)))
        transform_in(x[n0:n0 + bsz], bt, m, padding, th, tw, v, wk)           # V = B^T d B, every patch
        xp.matmul(u, v.reshape(alpha2, groups, cg, t), out=mbuf)              # the alpha^2 * G GEMMs
        _transform_out(mbuf.reshape(alpha2, o, t), at, th, tw, b, y[n0:n0 + bsz], wk, scatter)  # y = A^T M A
    return (y, kept) if keep_v else y


def _weight_grad(x, dy, w_shape, padding, groups, m, version, v=None):
    """dw by F(r x r, m x m); v: the forward's V of the whole batch (_forward's keep_v), which is this
    transform of x too (F(m, r) and F(r, m) share B^T), used instead of computing it again."""
    xp = backend.get_array_module(x)
    transform_in, _, gathers = _STAGES[version]
    n, c, o, r, oh, ow, th, tw = _geometry(x.shape, w_shape, padding, m)
    if tuple(dy.shape) != (n, o, oh, ow):
        raise ValueError(f"winograd weight gradient: dy has shape {tuple(dy.shape)}, expected {(n, o, oh, ow)}")
    at, g, bt = matrices(r, m)                                                 # F(r, m)
    alpha, cg, og, tpi = m + r - 1, c // groups, o // groups, th * tw
    alpha2 = alpha * alpha
    mw = xp.zeros((alpha2, groups, cg, og), x.dtype)
    work = max(alpha2 * c, m * m * o) if gathers else 0                  # gathered patches / dy tiles
    per_image = (alpha2 * c + alpha2 * o + work) * tpi                   # V, dy tiles' transform, work
    if v is not None:
        if tuple(v.shape) != (alpha2, c, n * tpi):
            raise ValueError(f"winograd weight gradient: v must be the forward's transformed input of shape "
                             f"{(alpha2, c, n * tpi)}, got {tuple(v.shape)}")
        per_image -= alpha2 * c * tpi
        nb = n                                      # the forward kept V only when the batch was one chunk
    else:
        nb = _conv._chunk_size(n, per_image * x.itemsize)
    scratch = _conv._scratch(xp, x.dtype, per_image * nb)
    kept = v
    for n0 in range(0, n, nb):
        bsz = min(nb, n - n0)
        t = bsz * tpi
        if kept is None:
            v, f, wk = _split(scratch, ((alpha2, c, t), (alpha2, o, t), (work * bsz * tpi,)))
            transform_in(x[n0:n0 + bsz], bt, m, padding, th, tw, v, wk)       # B'^T d B'
        else:
            f, wk = _split(scratch, ((alpha2, o, t), (work * bsz * tpi,)))
        transform_in(dy[n0:n0 + bsz], g, m, (0, 0), th, tw, f, wk)            # G' dy_t G'^T
        # (Cg, T) @ (T, Og): the long summed dimension T last in both operands' memory, as im2col's dw
        mw += xp.matmul(v.reshape(alpha2, groups, cg, t), f.reshape(alpha2, groups, og, t).transpose(0, 1, 3, 2))
    # dw[o, c'] = A'^T Mw A' for every (o, c') (once per call): kron(A', A') (r^2 x alpha^2) @ Mw
    dw = _kron(xp, at, x.dtype) @ mw.transpose(0, 1, 3, 2).reshape(alpha2, o * cg)
    return xp.ascontiguousarray(dw.T).reshape(o, cg, r, r)


def _split(flat, shapes):
    """Consecutive views of a flat scratch array with the given shapes."""
    views, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return views


def conv2d_forward_numba(x, w, b=None, padding=(0, 0), groups=1, m=2, keep_v=False):
    """As conv2d_forward_reference: fused Numba transforms around BLAS GEMMs (keep_v: see _forward)."""
    return _forward(x, w, b, padding, groups, m, "numba", keep_v)


def conv2d_forward_xp(x, w, b=None, padding=(0, 0), groups=1, m=2, keep_v=False):
    """As conv2d_forward_reference, for NumPy or CuPy arrays (keep_v: see _forward)."""
    return _forward(x, w, b, padding, groups, m, "xp", keep_v)


def conv2d_weight_grad_numba(x, dy, w_shape, padding=(0, 0), groups=1, m=2, v=None):
    """As conv2d_weight_grad_reference: fused Numba transforms around BLAS GEMMs (v: see _weight_grad)."""
    return _weight_grad(x, dy, w_shape, padding, groups, m, "numba", v)


def conv2d_weight_grad_xp(x, dy, w_shape, padding=(0, 0), groups=1, m=2, v=None):
    """As conv2d_weight_grad_reference, for NumPy or CuPy arrays (v: see _weight_grad)."""
    return _weight_grad(x, dy, w_shape, padding, groups, m, "xp", v)


# ======================================================================= dispatchers
def applies(w_shape, stride, m):
    """None when F(m x m, r x r) computes this convolution, else what it needs (a sentence)."""
    kh, kw = w_shape[2:]
    if tuple(stride) != (1, 1) or kh != kw:
        return f"a square kernel and stride 1 (got kernel {kh}x{kw}, stride {tuple(stride)})"
    if m + kh - 2 > len(POINTS):
        return f"a kernel of at most {len(POINTS) + 2 - m} for tile {m}x{m} (got {kh}x{kw})"
    return None


def conv2d_forward(x, w, b=None, padding=(0, 0), groups=1, m=2, keep_v=False):
    """y = conv(x, w) + b with stride 1 by Winograd F(m x m, r x r); numba on CPU, xp on GPU.

    keep_v=True returns (y, v): v is the transformed input of the whole batch, for conv2d_backward's
    weight gradient, or None (the batch takes more than one chunk under the workspace cap, or the
    reference version runs), so keeping it never holds more than the cap; as im2col's keep_col."""
    return dispatch_forward((conv2d_forward_reference, conv2d_forward_numba, conv2d_forward_xp),
                            x, w, b, padding, groups, m, keep_v)


def dispatch_forward(versions, x, w, b, padding, groups, m, keep_v):
    """Run the (reference, numba, xp) forward that ``pick`` chooses for x; with keep_v, (y, v),
    v None from the reference (it keeps nothing)."""
    x, w = _contig(x), _contig(w)
    version = pick(*versions, x)
    if not keep_v:
        return version(x, w, b, padding, groups, m)
    if version is versions[0]:
        return version(x, w, b, padding, groups, m), None
    return version(x, w, b, padding, groups, m, keep_v=True)


def conv2d_backward(x, w, dy, padding=(0, 0), groups=1, m=2, need_dx=True, need_dw=True, need_db=True,
                    weight_grad="winograd", v=None):
    """(dx, dw, db) of conv2d_forward; dx by the same Winograd forward on the flipped filter, dw by
    F(r x r, m x m) (or im2col's GEMM when ``weight_grad="im2col"``); None for those not needed.
    v: conv2d_forward's kept transformed input (keep_v), used for dw instead of transforming x again."""
    x, w, dy = _contig(x), _contig(w), _contig(dy)
    r = w.shape[2]
    db = _conv.bias_grad(dy) if need_db else None
    dx = dw = None
    if need_dw:
        if weight_grad == "im2col":
            dw = _conv.weight_grad(x, w, dy, 1, padding, groups)
        else:
            version = pick(conv2d_weight_grad_reference, conv2d_weight_grad_numba, conv2d_weight_grad_xp, x)
            extra = {} if v is None or version is conv2d_weight_grad_reference else {"v": v}
            dw = version(x, dy, w.shape, padding, groups, m, **extra)
    if need_dx:
        dx = conv2d_forward(dy, flipped_weight(w, groups), None, (r - 1 - padding[0], r - 1 - padding[1]), groups, m)
    return dx, dw, db


def _contig(a):
    return backend.get_array_module(a).ascontiguousarray(a)
