"""The Numba Winograd path (fused input transforms, F(2x2,3x3) written out) held to the
tile-by-tile reference: F(2x2,3x3), F(4x4,3x3), F(2x2,5x5), paddings 0-2 (and a negative one, as
the input gradient uses), groups, odd sizes whose tiles overhang the edge, bias or none, batch
chunking; float64 to 1e-10 relative, float32 to a stated tolerance."""
import numpy as np
import pytest

from minidl.kernels import conv as K
from minidl.kernels import winograd as W

TILES = [(2, 3), (4, 3), (2, 5)]   # (m, r)
# float32 against the float64 reference, relative to the largest output: the transforms'
# entries grow with the tile (docs/kernels/winograd.md, section 7); about 10x the errors measured
# here (1.7e-7, 2.6e-6, 2.8e-6).
FLOAT32_TOL = {(2, 3): 2e-6, (4, 3): 3e-5, (2, 5): 3e-5}


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _case(n, c, o, h, w, r, groups, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c // groups, r, r)),
            rng.standard_normal(o))


def _references(x, w, b, padding, groups, m):
    """(y, dy, dw) by the tile-by-tile reference, dy a fixed random output gradient."""
    y = W.conv2d_forward_reference(x, w, b, padding, groups, m)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    return y, dy, W.conv2d_weight_grad_reference(x, dy, w.shape, padding, groups, m)


@pytest.mark.parametrize("m,r", TILES)
@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("groups,bias", [(1, True), (2, False)])
def test_numba_matches_reference_float64(m, r, pad, groups, bias):
    x, w, b = _case(2, 4, 6, 7 + r, 9, r, groups)          # odd sizes: the last tiles overhang
    b = b if bias else None
    y0, dy, dw0 = _references(x, w, b, (pad, pad), groups, m)
    y = W.conv2d_forward_numba(x, w, b, (pad, pad), groups, m)
    assert y.shape == y0.shape and y.dtype == np.float64 and _rel(y, y0) < 1e-10
    assert _rel(W.conv2d_weight_grad_numba(x, dy, w.shape, (pad, pad), groups, m), dw0) < 1e-10


@pytest.mark.parametrize("m,r", TILES)
def test_negative_and_uneven_padding(m, r):
    """The input gradient's forward pads by r - 1 - p, negative when p > r - 1: patches start inside."""
    x, w, b = _case(1, 3, 2, 11, 10, r, 1)
    for pad in [(-1, 0), (0, -1), (r, 1)]:
        y0 = W.conv2d_forward_reference(x, w, b, pad, 1, m)
        assert _rel(W.conv2d_forward_numba(x, w, b, pad, 1, m), y0) < 1e-10, pad


@pytest.mark.parametrize("m,r", TILES)
def test_numba_float32_within_tolerance(m, r):
    x, w, b = _case(2, 16, 8, 13, 13, r, 2)
    y0, dy, dw0 = _references(x, w, b, (1, 1), 2, m)
    f32 = [a.astype(np.float32) for a in (x, w, b, dy)]
    y = W.conv2d_forward_numba(f32[0], f32[1], f32[2], (1, 1), 2, m)
    dw = W.conv2d_weight_grad_numba(f32[0], f32[3], w.shape, (1, 1), 2, m)
    assert y.dtype == np.float32 and dw.dtype == np.float32
    assert _rel(y, y0) < FLOAT32_TOL[m, r] and _rel(dw, dw0) < FLOAT32_TOL[m, r]


@pytest.mark.parametrize("m,r", TILES)
def test_chunks_of_one_image_give_the_same_result(m, r):
    x, w, b = _case(3, 4, 4, 9, 7, r, 2)
    y0, dy, dw0 = _references(x, w, b, (1, 1), 2, m)
    try:
        K.set_workspace_limit(1)   # one image per chunk
        y = W.conv2d_forward_numba(x, w, b, (1, 1), 2, m)
        dw = W.conv2d_weight_grad_numba(x, dy, w.shape, (1, 1), 2, m)
    finally:
        K.set_workspace_limit(None)
    assert _rel(y, y0) < 1e-10 and _rel(dw, dw0) < 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("which", ["bt", "g_dw"])
def test_written_out_f23_kernels_equal_the_generic_one(which, dtype):
    """The F(2x2,3x3) kernels hard-code B^T (and F(3,2)'s G'): same result as the generic kernel
    and as the gather + Kronecker GEMM of the xp version, given the matrix they hard-code."""
    lt = W._F23[which]
    step, q = 2, lt.shape[1]
    off = (1, 1) if which == "bt" else (0, 0)
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(dtype)
    th, tw = 4, 3   # 2x2 tiles of a 7x6 output: dy's own, or those of a 3x3 pad-1 conv of x
    outs = [np.full((16, 3, 2 * th * tw), np.nan, dtype) for _ in range(3)]
    W._transform_in_numba(x, lt, step, off, th, tw, outs[0])
    W._transform_in_nb(x, lt.astype(dtype), step, off[0], off[1], th, tw, outs[1])
    W._transform_in_xp(x, lt, step, off, th, tw, outs[2], np.empty(q * q * 3 * 2 * th * tw, dtype))
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert not np.isnan(outs[0]).any()
    np.testing.assert_allclose(outs[0], outs[2], rtol=tol, atol=tol)
    np.testing.assert_allclose(outs[1], outs[2], rtol=tol, atol=tol)


def test_f23_matrices_are_the_written_out_ones():
    """The written-out kernels' docstrings spell these matrices; the dispatch compares against _F23."""
    np.testing.assert_array_equal(W._F23["bt"], [[-1, 0, 1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]])
    np.testing.assert_array_equal(W._F23["g_dw"], [[-1, 0], [.5, .5], [.5, -.5], [0, 1]])


@pytest.mark.parametrize("m,r", TILES + [(4, 5)])
def test_forward_and_weight_gradient_share_the_input_transform(m, r):
    """F(m, r) and the weight gradient's F(r, m) use the same B^T, which is what lets the forward's
    transformed input stand in for the weight gradient's."""
    np.testing.assert_array_equal(W.matrices(m, r)[2], W.matrices(r, m)[2])


@pytest.mark.parametrize("version", ["numba", "xp"])
@pytest.mark.parametrize("m,r", TILES)
def test_kept_transformed_input_gives_the_same_weight_gradient(m, r, version):
    """keep_v returns V of the whole batch; the weight gradient from it equals the one that transforms
    x itself, to the bit; a batch over the workspace cap keeps nothing; a wrong V is refused."""
    forward = {"numba": W.conv2d_forward_numba, "xp": W.conv2d_forward_xp}[version]
    weight_grad = {"numba": W.conv2d_weight_grad_numba, "xp": W.conv2d_weight_grad_xp}[version]
    x, w, b = (a.astype(np.float32) for a in _case(3, 4, 6, 9, 7, r, 2))
    y, v = forward(x, w, b, (1, 1), 2, m, keep_v=True)
    np.testing.assert_array_equal(y, forward(x, w, b, (1, 1), 2, m))
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(weight_grad(x, dy, w.shape, (1, 1), 2, m, v=v),
                                  weight_grad(x, dy, w.shape, (1, 1), 2, m))
    with pytest.raises(ValueError, match=r"v must be the forward's transformed input of shape"):
        weight_grad(x, dy, w.shape, (1, 1), 2, m, v=v[:, :2])
    try:
        K.set_workspace_limit(1)   # one image per chunk: nothing kept
        assert forward(x, w, b, (1, 1), 2, m, keep_v=True)[1] is None
    finally:
        K.set_workspace_limit(None)
