"""Winograd along the rows, F(1 x m, kh x kw) (minidl/kernels/winograd_rows.py): the tile-by-tile
reference against im2col, the Numba and array-generic versions against the reference in float64
(square and non-square kernels, paddings 0..3 and negative ones, "same" and other output heights,
groups, tiles overhanging the edge, batch chunking), float32 within a stated tolerance, the kept
transformed input, and the errors for inapplicable layers and wrong arguments."""
import numpy as np
import pytest
import torch

import minidl as md
import minidl.functional as F
from minidl.backends import conv as settings
from minidl.kernels import conv as K
from minidl.kernels import winograd_rows as R
from parity import check

VERSIONS = {"reference": (R.conv2d_forward_reference, R.conv2d_weight_grad_reference, R.conv2d_input_grad_reference),
            "numba": (R.conv2d_forward_numba, R.conv2d_weight_grad_numba, R.conv2d_input_grad_numba),
            "xp": (R.conv2d_forward_xp, R.conv2d_weight_grad_xp, R.conv2d_input_grad_xp)}
# (x shape, w shape, padding, groups): "same" rows (OH == H, the one-copy path of the row
# transform) and other heights (the per-column path), kernels wider than tall and the reverse,
# padding larger than the kernel's reach, widths the tile does not divide
GEOMETRIES = [
    ((2, 4, 9, 11), (6, 2, 5, 5), (2, 2), 2),
    ((1, 3, 8, 8), (4, 3, 3, 3), (0, 0), 1),
    ((2, 4, 6, 5), (4, 4, 3, 3), (3, 2), 1),
    ((2, 3, 6, 7), (4, 3, 2, 5), (1, 2), 1),
    ((2, 2, 7, 6), (2, 2, 5, 3), (2, 1), 1),
    ((3, 4, 5, 13), (4, 2, 5, 5), (0, 4), 2),
]


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _case(xs, ws, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("xs,ws,pad,groups", GEOMETRIES)
@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_every_version_matches_im2col_float64(version, xs, ws, pad, groups, m):
    x, w, b = _case(xs, ws)
    y0 = K.conv2d_forward(x, w, b, 1, pad, groups)
    dy = np.random.default_rng(1).standard_normal(y0.shape)
    dx0, dw0, _ = K.conv2d_backward(x, w, dy, 1, pad, groups)
    forward, weight_grad, input_grad = VERSIONS[version]
    y = forward(x, w, b, pad, groups, m)
    assert y.shape == y0.shape and y.dtype == np.float64 and _rel(y, y0) < 1e-12
    assert _rel(weight_grad(x, dy, w.shape, pad, groups, m), dw0) < 1e-12
    dx = input_grad(dy, w, x.shape, pad, groups, m)
    assert dx.shape == x.shape and _rel(dx, dx0) < 1e-12


@pytest.mark.parametrize("pad", [(-1, 0), (0, -1), (-2, -1), (4, 0)])
def test_negative_padding_crops(pad):
    """The input gradient's forward pads by k - 1 - p, negative when p > k - 1."""
    x, w, b = _case((1, 3, 11, 10), (2, 3, 3, 5))
    crop_h, crop_w = max(0, -pad[0]), max(0, -pad[1])     # a negative pad crops that many rows/columns
    y0 = K.conv2d_forward(x[:, :, crop_h:x.shape[2] - crop_h, crop_w:x.shape[3] - crop_w], w, b, 1,
                          (max(0, pad[0]), max(0, pad[1])), 1)
    dy = np.random.default_rng(5).standard_normal(y0.shape)
    dx0 = R.conv2d_input_grad_reference(dy, w, x.shape, pad, 1, 4)
    for version in ("reference", "numba", "xp"):
        forward, _, input_grad = VERSIONS[version]
        assert _rel(forward(x, w, b, pad, 1, 4), y0) < 1e-12, (version, pad)
        # the adjoint: x's rows and columns a negative pad cuts off get a zero gradient
        assert _rel(input_grad(dy, w, x.shape, pad, 1, 4), dx0) < 1e-12, (version, pad)


def test_backward_through_the_dispatcher_and_chunks():
    x, w, b = _case((5, 4, 7, 9), (6, 2, 5, 5))
    y0 = K.conv2d_forward(x, w, b, 1, 2, 2)
    dy = np.random.default_rng(2).standard_normal(y0.shape)
    dx0, dw0, db0 = K.conv2d_backward(x, w, dy, 1, 2, 2)
    whole = R.conv2d_backward(x, w, dy, (2, 2), 2, 4)
    try:
        K.set_workspace_limit(1)   # one image per chunk
        chunked = R.conv2d_forward(x, w, b, (2, 2), 2, 4), R.conv2d_backward(x, w, dy, (2, 2), 2, 4)
    finally:
        K.set_workspace_limit(None)
    assert _rel(whole[0], dx0) < 1e-12 and _rel(whole[1], dw0) < 1e-12 and _rel(whole[2], db0) < 1e-12
    np.testing.assert_allclose(chunked[0], R.conv2d_forward(x, w, b, (2, 2), 2, 4), rtol=1e-13, atol=1e-13)
    for part, full in zip(chunked[1], whole):
        np.testing.assert_allclose(part, full, rtol=1e-13, atol=1e-13)


def test_even_chunks():
    assert [R._even_chunks(32, most) for most in (32, 29, 16, 15, 1)] == [32, 16, 16, 11, 1]


@pytest.mark.parametrize("version", ["numba", "xp"])
def test_kept_transformed_input_gives_the_same_weight_gradient(version):
    """keep_v: the forward's V is the weight gradient's B'^T d (F(m, r) and F(r, m) share B^T)."""
    x, w, b = _case((2, 6, 9, 10), (4, 3, 5, 5))
    x, w, b = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    forward, weight_grad, _ = VERSIONS[version]
    y, v = forward(x, w, b, (2, 2), 2, 4, keep_v=True)
    np.testing.assert_array_equal(y, forward(x, w, b, (2, 2), 2, 4))
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(weight_grad(x, dy, w.shape, (2, 2), 2, 4, v=v),
                                  weight_grad(x, dy, w.shape, (2, 2), 2, 4))
    with pytest.raises(ValueError, match=r"v must be the forward's transformed input of shape \(8, 30, 54\), got \(8, 29, 54\)"):
        weight_grad(x, dy, w.shape, (2, 2), 2, 4, v=v[:, :-1])
    with pytest.raises(ValueError, match=r"dy has shape \(2, 4, 9, 9\), expected \(2, 4, 9, 10\)"):
        weight_grad(x, dy[..., :-1], w.shape, (2, 2), 2, 4)


def test_float32_within_tolerance():
    """float32 against the float64 reference, relative to the largest value: 1e-5 (measured 1-2e-6;
    one interpolated axis, so the error is the 1-D F(4, 5)'s, not the 2-D tile's)."""
    x, w, b = _case((2, 16, 13, 13), (8, 8, 5, 5))
    y0 = R.conv2d_forward_reference(x, w, b, (2, 2), 2, 4)
    dy = np.random.default_rng(4).standard_normal(y0.shape)
    dw0 = R.conv2d_weight_grad_reference(x, dy, w.shape, (2, 2), 2, 4)
    f32 = [a.astype(np.float32) for a in (x, w, b, dy)]
    y = R.conv2d_forward_numba(f32[0], f32[1], f32[2], (2, 2), 2, 4)
    dw = R.conv2d_weight_grad_numba(f32[0], f32[3], w.shape, (2, 2), 2, 4)
    assert y.dtype == np.float32 and dw.dtype == np.float32
    assert _rel(y, y0) < 1e-5 and _rel(dw, dw0) < 1e-5


def test_parity_with_torch_through_the_helper():
    """conv2d with the algorithm forced, forward and both gradients against PyTorch (the helper's
    float32 and float64 tolerances), a 5x5 grouped layer and a non-square one."""
    settings.reset()
    with settings.flags(algorithm="winograd-1x4"):
        check(lambda x, w, b: F.conv2d(x, w, b, padding=2, groups=2),
              lambda x, w, b: torch.nn.functional.conv2d(x, w, b, padding=2, groups=2),
              [(2, 4, 9, 11), (6, 2, 5, 5), (6,)])
        check(lambda x, w: F.conv2d(x, w, padding=(1, 2)),
              lambda x, w: torch.nn.functional.conv2d(x, w, padding=(1, 2)), [(2, 3, 6, 7), (4, 3, 3, 5)])
        assert set(settings.chosen().values()) == {"winograd-1x4"}


def test_applies_and_errors():
    assert R.applies((4, 3, 5, 5), (1, 1), 4) is None
    assert R.applies((4, 3, 1, 3), (1, 1), 4) is None          # one kernel row: no rows to sum
    assert "stride 1 (got stride (2, 2))" in R.applies((4, 3, 3, 3), (2, 2), 4)
    assert "at least 2 wide (got 3x1)" in R.applies((4, 3, 3, 1), (1, 1), 4)
    assert "at most 7 wide for tile 1x4 (got 8x8)" in R.applies((4, 3, 8, 8), (1, 1), 4)
    x = md.tensor(np.zeros((1, 3, 9, 9), np.float32))
    with settings.flags(algorithm="winograd-1x4"):
        with pytest.raises(ValueError, match=r"'winograd-1x4' does not apply to the layer with input \(1, 3, 9, 9\), "
                                             r"weight \(2, 3, 8, 8\).*needs a kernel at most 7 wide"):
            F.conv2d(x, md.tensor(np.zeros((2, 3, 8, 8), np.float32)))
