"""Convolution: im2col/col2im versions against the reference, the adjoint identity, conv2d and
Conv2d against PyTorch (forward and backward), a float64 gradcheck, chunking, bad input."""
import numpy as np
import pytest
import torch

import minidl as md
import minidl.functional as F
from minidl import nn
from minidl.kernels import conv as K
from parity import assert_close, check, gradcheck_random
import importlib

# (x shape, kernel, stride, padding): odd sizes, batch 1, padding > 0, non-square, stride > kernel
GEOMETRIES = [
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 2)),
    ((1, 4, 5, 5), (5, 5), 1, 2),
    ((3, 2, 11, 8), (4, 3), 3, 0),
    ((2, 2, 13, 13), (3, 3), 4, 1),
    ((1, 1, 6, 7), (1, 1), 2, 0),
    # stride 1, OW == W: the Numba "same width" kernels (rows wholly in the padding, a kernel larger
    # than the plane, 1x1, non-square kernels with ph != pw)
    ((2, 3, 6, 7), (3, 5), 1, (0, 2)),
    ((2, 2, 4, 9), (5, 3), 1, (3, 1)),
    ((1, 2, 3, 3), (5, 5), 1, 2),
    ((2, 3, 4, 5), (1, 1), 1, 0),
    # stride 1, same padding in both directions (OH = H, OW = W): the channel-major kernels (a run
    # crossing images, non-square, kernels as large as or larger than the plane, 1x1 above)
    ((3, 5, 6, 6), (3, 3), 1, 1),
    ((2, 3, 5, 7), (3, 5), 1, (1, 2)),
    ((4, 2, 2, 3), (3, 3), 1, 1),
    ((2, 3, 4, 4), (7, 7), 1, 3),
    ((2, 2, 3, 3), (9, 9), 1, 4),
    # strided with the column matrix at least 4x the input: the phase-split kernel (AlexNet's conv1
    # in small, padded; non-square stride and padding)
    ((2, 3, 23, 23), (11, 11), 4, 2),
    ((1, 2, 15, 17), (7, 5), (2, 3), (1, 2)),
]
DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,ks,stride,pad", GEOMETRIES)
def test_im2col_versions_match_reference(shape, ks, stride, pad, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    expected = K.im2col_reference(x, ks, stride, pad)
    kh, kw = K._pair(ks)
    oh, ow = K.output_size(shape[2], shape[3], ks, stride, pad)
    assert expected.shape == (shape[1] * kh * kw, shape[0] * oh * ow)
    for version in (K.im2col_numba, K.im2col_xp, K.im2col):
        got = version(x, ks, stride, pad)
        assert got.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected, err_msg=version.__name__)  # pure copies: exact


def test_im2col_reference_entry_by_definition():
    """One entry of the reference checked against the layout formula in the module docstring."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 7))
    (kh, kw), (sh, sw), (ph, pw) = (3, 2), (2, 1), (1, 2)
    col = K.im2col_reference(x, (kh, kw), (sh, sw), (ph, pw))
    oh_n, ow_n = K.output_size(6, 7, (kh, kw), (sh, sw), (ph, pw))
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    for n, c, i, j, oh, ow in [(1, 2, 2, 1, 2, 9), (0, 0, 0, 0, 0, 0), (1, 1, 1, 0, 2, 4)]:
        assert col[(c * kh + i) * kw + j, n * oh_n * ow_n + oh * ow_n + ow] == xpad[n, c, oh * sh + i, ow * sw + j]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,ks,stride,pad", GEOMETRIES)
def test_col2im_versions_match_reference_and_are_the_adjoint(shape, ks, stride, pad, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    col = rng.standard_normal(K.im2col_reference(x, ks, stride, pad).shape).astype(dtype)
    expected = K.col2im_reference(col, shape, ks, stride, pad)
    for version in (K.col2im_numba, K.col2im_xp, K.col2im):
        got = version(col, shape, ks, stride, pad)
        assert got.dtype == dtype and got.shape == shape
        np.testing.assert_allclose(got, expected, **_tol(dtype), err_msg=version.__name__)
    # <im2col(x), c> == <x, col2im(c)>, in float64 whatever the dtype
    lhs = np.vdot(K.im2col_reference(x, ks, stride, pad).astype(np.float64), col.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), expected.astype(np.float64))
    assert lhs == pytest.approx(rhs, rel=1e-5 if dtype == np.float32 else 1e-12)


def test_out_buffers_are_written_not_accumulated():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    col = np.full((3 * 9, 2 * 64), 7.0, np.float32)
    K.im2col_numba(x, 3, 1, 1, out=col)
    np.testing.assert_array_equal(col, K.im2col_reference(x, 3, 1, 1))
    dx = np.full(x.shape, 5.0, np.float32)
    K.col2im_numba(col, x.shape, 3, 1, 1, out=dx)
    np.testing.assert_allclose(dx, K.col2im_reference(col, x.shape, 3, 1, 1), rtol=1e-5, atol=1e-5)


def test_numba_versions_reject_buffers_of_the_wrong_shape():
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"im2col_numba: out must be .* float32 array of shape \(27, 128\)"):
        K.im2col_numba(x, 3, 1, 1, out=np.zeros((27, 100), np.float32))
    with pytest.raises(ValueError, match=r"col2im_numba: col must be .* of shape \(27, 128\), got float32 \(27, 64\)"):
        K.col2im_numba(np.zeros((27, 64), np.float32), x.shape, 3, 1, 1)
    with pytest.raises(TypeError, match=r"im2col_numba: dtype must be float32 or float64, got int32"):
        K.im2col_numba(x.astype(np.int32), 3)


# ----------------------------------------------------------------- conv2d against PyTorch
CONV_CASES = [  # x shape, weight shape, stride, padding, groups
    ((2, 3, 9, 8), (4, 3, 3, 2), 1, 0, 1),
    ((2, 4, 9, 8), (6, 2, 3, 3), 1, 1, 2),          # groups 2
    ((1, 3, 23, 19), (4, 3, 5, 5), 4, 0, 1),        # stride 4, batch 1 (conv1-like)
    ((2, 4, 7, 7), (4, 2, 5, 5), 1, 2, 2),          # padding 2, groups 2 (conv2-like)
    ((3, 2, 6, 11), (3, 2, 2, 4), (2, 3), (1, 2), 1),  # non-square everything
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,stride,pad,groups", CONV_CASES)
def test_conv2d_parity_with_torch(xs, ws, stride, pad, groups, bias):
    shapes = [xs, ws] + ([(ws[0],)] if bias else [])
    check(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, stride, pad, groups),
          lambda x, w, *b: torch.nn.functional.conv2d(x, w, b[0] if b else None, stride, pad, 1, groups),
          shapes)


def test_conv2d_gradcheck_float64():
    gradcheck_random(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2),
                     [(1, 4, 4, 3), (4, 2, 3, 2), (4,)])


def test_gpu_code_path_run_with_numpy(monkeypatch):
    """conv2d_forward/backward with every dispatcher forced to its array-generic (GPU) version,
    run on NumPy arrays, against PyTorch."""
    monkeypatch.setattr(K, "im2col", K.im2col_xp)
    monkeypatch.setattr(K, "col2im", K.col2im_xp)
    monkeypatch.setattr(K, "unpack_output", K.unpack_output_xp)
    monkeypatch.setattr(K, "pack_grad", K.pack_grad_xp)
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, (2, 1), (1, 2), 1, 2)
    dy = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(dy))
    try:
        K.set_workspace_limit(1)  # chunks of one image
        y = K.conv2d_forward(x, w, b, (2, 1), (1, 2), 2)
        grads = K.conv2d_backward(x, w, dy, (2, 1), (1, 2), 2)
    finally:
        K.set_workspace_limit(None)
    assert_close(y, ty, np.float64, "forward")
    for ours, theirs in zip(grads, (tx.grad, tw.grad, tb.grad)):
        assert_close(ours, theirs, np.float64, "gradient")


def test_conv2d_only_weight_needs_grad():
    rng = np.random.default_rng(5)
    x = md.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    w = md.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    tw = torch.tensor(w.numpy(), requires_grad=True)
    torch.nn.functional.conv2d(torch.tensor(x.numpy()), tw, padding=1).sum().backward()
    assert x.grad is None
    assert_close(w.grad, tw.grad, np.float32, "dw")


@pytest.mark.parametrize("images_per_chunk", [0, 2])
def test_tiny_workspace_gives_the_same_result(images_per_chunk):
    """A cap below one image (1 byte) and one of two images, against no practical cap."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    dy = rng.standard_normal((5, 6, 4, 4))
    args = ((2, 1), (1, 0), 2)
    per_image = (4 * 3 * 3 + 6) * (4 * 4) * 8  # (K + O) * P float64s: column buffer + packed output
    try:
        K.set_workspace_limit(2 ** 40)
        y_big, grads_big = K.conv2d_forward(x, w, b, *args), K.conv2d_backward(x, w, dy, *args)
        assert K._chunk_size(5, per_image) == 5
        K.set_workspace_limit(max(1, images_per_chunk * per_image))
        assert K._chunk_size(5, per_image) == max(1, images_per_chunk)
        y_small, grads_small = K.conv2d_forward(x, w, b, *args), K.conv2d_backward(x, w, dy, *args)
    finally:
        K.set_workspace_limit(None)
    np.testing.assert_allclose(y_small, y_big, rtol=1e-12, atol=1e-12)
    for small, big in zip(grads_small, grads_big):
        np.testing.assert_allclose(small, big, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kept_column_matrix_gives_the_same_gradients(dtype):
    """keep_col returns im2col of the whole batch; backward with it (dw from it, then dx's column
    gradient written over it) equals backward without it; a batch over the cap keeps nothing."""
    rng = np.random.default_rng(9)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((3, 4, 9, 8), (6, 2, 3, 3), (6,)))
    dy = rng.standard_normal((3, 6, 5, 6)).astype(dtype)
    args = ((2, 1), (1, 0), 2)
    y, col = K.conv2d_forward(x, w, b, *args, keep_col=True)
    np.testing.assert_array_equal(col, K.im2col_reference(x, (3, 3), (2, 1), (1, 0)))
    np.testing.assert_array_equal(y, K.conv2d_forward(x, w, b, *args))
    expected = K.conv2d_backward(x, w, dy, *args)
    for got, want in zip(K.conv2d_backward(x, w, dy, *args, col=col), expected):
        np.testing.assert_allclose(got, want, **_tol(dtype))
    with pytest.raises(ValueError, match=r"conv2d_backward: col must be .* of shape \(36, 90\)"):
        K.conv2d_backward(x, w, dy, *args, col=col[:, :60])
    try:
        K.set_workspace_limit(1)  # one image per chunk: nothing kept
        assert K.conv2d_forward(x, w, b, *args, keep_col=True)[1] is None
    finally:
        K.set_workspace_limit(None)


def test_conv2d_function_keeps_the_column_matrix_only_for_a_weight_gradient():
    rng = np.random.default_rng(10)
    xa, wa = rng.standard_normal((2, 4, 7, 7)), rng.standard_normal((4, 2, 5, 5))
    with md.backends.conv.flags(algorithm="im2col"):
        x, w = md.tensor(xa, requires_grad=True), md.tensor(wa, requires_grad=True)
        y = F.conv2d(x, w, padding=2, groups=2)
        assert y.grad_fn.kept is not None
        with md.no_grad():
            assert F.conv2d(x, w, padding=2, groups=2).grad_fn is None
        frozen = md.tensor(wa)  # no weight gradient: nothing to keep
        assert F.conv2d(x, frozen, padding=2, groups=2).grad_fn.kept is None
        dy = rng.standard_normal(y.shape)
        y.backward(md.tensor(dy), retain_graph=True)   # consumes the kept matrix ...
        assert y.grad_fn.kept is None
        y.backward(md.tensor(dy))                      # ... so the second backward runs im2col again
    tx, tw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, padding=2, groups=2)
    ty.backward(torch.tensor(dy), retain_graph=True)
    ty.backward(torch.tensor(dy))
    assert_close(x.grad, tx.grad, np.float64, "dx")
    assert_close(w.grad, tw.grad, np.float64, "dw")


def test_backward_rejects_a_gradient_of_the_wrong_shape():
    x, w = np.zeros((2, 3, 8, 8)), np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_backward: dy has shape \(2, 4, 6, 5\), expected \(2, 4, 6, 6\)"):
        K.conv2d_backward(x, w, np.zeros((2, 4, 6, 5)))


def test_workspace_limit_from_environment(monkeypatch):
    monkeypatch.setenv("MINIDL_CONV_WORKSPACE_MB", "3")
    fresh = importlib.reload(K)
    try:
        assert fresh.get_workspace_limit() == 3 * 2 ** 20
    finally:
        monkeypatch.delenv("MINIDL_CONV_WORKSPACE_MB")
        importlib.reload(K)
    assert K.get_workspace_limit() == 256 * 2 ** 20
    with pytest.raises(ValueError, match="set_workspace_limit"):
        K.set_workspace_limit(0)


# ----------------------------------------------------------------- nn.Conv2d
def test_conv2d_layer_parity_and_init():
    layer = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight.shape == (6, 2, 3, 2) and layer.bias.shape == (6,)
    bound = 1 / np.sqrt(2 * 3 * 2)  # PyTorch's default: both bounds are 1/sqrt(fan_in) for a=sqrt(5)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > bound / 2
    twin = torch.nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    with torch.no_grad():
        twin.weight.copy_(torch.tensor(layer.weight.numpy()))
        twin.bias.copy_(torch.tensor(layer.bias.numpy()))
    check(lambda x: layer(x), lambda x: twin(x), [(2, 4, 7, 6)], dtypes=(np.float32,))
    assert_close(layer.weight.grad, twin.weight.grad, np.float32, "layer weight grad")
    assert_close(layer.bias.grad, twin.bias.grad, np.float32, "layer bias grad")


def test_conv2d_layer_repr_and_no_bias():
    assert repr(nn.Conv2d(96, 256, 5, padding=2, groups=2)) == \
        "Conv2d(96, 256, kernel_size=(5, 5), padding=(2, 2), groups=2)"
    assert repr(nn.Conv2d(3, 96, 11, stride=4)) == "Conv2d(3, 96, kernel_size=(11, 11), stride=(4, 4))"
    layer = nn.Conv2d(2, 3, 3, bias=False)
    assert layer.bias is None and repr(layer).endswith("bias=False)")
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert layer(md.tensor(np.ones((1, 2, 4, 4), np.float32))).shape == (1, 3, 2, 2)


# ----------------------------------------------------------------- bad input
def _t(shape, dtype=np.float32):
    return md.tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("x,w,b,kwargs,error,pattern", [
    ((2, 3, 8), (4, 3, 3, 3), None, {}, ValueError, r"conv2d: input must be 4-D .* \(2, 3, 8\)"),
    ((2, 3, 8, 8), (4, 3, 3), None, {}, ValueError, r"conv2d: weight must be 4-D .* \(4, 3, 3\)"),
    ((2, 3, 8, 8), (4, 4, 3, 3), None, {}, ValueError,
     r"conv2d: input has 3 channels .* but weight expects 4 .*\(4, 4, 3, 3\), groups=1"),
    ((2, 4, 8, 8), (8, 1, 3, 3), None, {"groups": 2}, ValueError,
     r"conv2d: input has 4 channels .* but weight expects 2 .*\(8, 1, 3, 3\), groups=2"),
    ((2, 3, 8, 8), (4, 1, 3, 3), None, {"groups": 3}, ValueError, r"conv2d: groups=3 must divide .*\(4, 1, 3, 3\)"),
    ((2, 4, 8, 8), (6, 1, 3, 3), None, {"groups": 4}, ValueError, r"conv2d: groups=4 must divide .*output channels"),
    ((2, 3, 4, 4), (4, 3, 7, 3), None, {"padding": 1}, ValueError,
     r"conv2d: kernel size \(7, 3\) is larger than the padded input \(6, 6\)"),
    ((2, 3, 8, 8), (4, 3, 3, 3), (5,), {}, ValueError, r"conv2d: bias has shape \(5,\), expected \(4,\)"),
    ((2, 3, 8, 8), (4, 3, 3, 3), None, {"stride": 0}, ValueError, r"conv2d: stride must be >= 1"),
    ((2, 3, 8, 8), (4, 3, 3, 3), None, {"padding": -1}, ValueError, r"conv2d: padding must be >= 0"),
    ((2, 3, 8, 8), (4, 3, 3, 3), None, {"groups": 0}, ValueError, r"conv2d: groups must be a positive int"),
])
def test_conv2d_bad_input(x, w, b, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        F.conv2d(_t(x), _t(w), None if b is None else _t(b), **kwargs)


def test_conv2d_bad_dtypes():
    with pytest.raises(TypeError, match=r"conv2d: input dtype float32 and weight dtype float64 differ"):
        F.conv2d(_t((1, 1, 3, 3)), _t((1, 1, 2, 2), np.float64))
    with pytest.raises(TypeError, match=r"conv2d: input and weight must be float32 or float64, got int64"):
        F.conv2d(md.tensor(np.zeros((1, 1, 3, 3), np.int64)), _t((1, 1, 2, 2)))
    with pytest.raises(TypeError, match=r"conv2d: input and weight must be Tensors"):
        F.conv2d(np.zeros((1, 1, 3, 3), np.float32), _t((1, 1, 2, 2)))


def test_conv2d_layer_bad_input():
    name = r"Conv2d\(96, 256, kernel_size=\(5, 5\), padding=\(2, 2\), groups=2\)"
    layer = nn.Conv2d(96, 256, 5, padding=2, groups=2)
    with pytest.raises(ValueError, match=name + r": input has 3 channels \(shape \(1, 3, 9, 9\)\)"):
        layer(_t((1, 3, 9, 9)))
    with pytest.raises(ValueError, match=name + r": input must be 4-D"):
        layer(_t((96, 9, 9)))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, kernel_size=\(7, 7\)\): kernel size \(7, 7\) is larger than the padded input "
                                         r"\(2, 2\) \(input shape \(1, 3, 2, 2\)"):
        nn.Conv2d(3, 4, 7)(_t((1, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, kernel_size=\(3, 3\), groups=2\): groups=2 must divide"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, kernel_size=\(0, 0\)\): kernel_size must be"):
        nn.Conv2d(3, 4, 0)


@pytest.mark.gpu
def test_conv2d_gpu_matches_cpu():
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)
    cpu = [md.tensor(a, requires_grad=True) for a in (x, w, b)]
    gpu = [md.tensor(a, requires_grad=True, device="gpu") for a in (x, w, b)]
    for ts in (cpu, gpu):
        (F.conv2d(*ts, stride=2, padding=1, groups=2) ** 2).sum().backward()
    for c, g in zip(cpu, gpu):
        np.testing.assert_allclose(g.grad.numpy(), c.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_function_keeps_winograds_transformed_input_only_for_its_weight_gradient():
    """A Winograd forward that will need dw keeps V (the weight gradient then skips one transform);
    with weight_grad="im2col", without a weight gradient, or under no_grad, nothing is kept; the
    gradients match PyTorch's either way."""
    rng = np.random.default_rng(11)
    xa, wa = rng.standard_normal((2, 32, 10, 10)), rng.standard_normal((32, 16, 3, 3))
    dy = rng.standard_normal((2, 32, 10, 10))
    tx, tw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)
    torch.nn.functional.conv2d(tx, tw, padding=1, groups=2).backward(torch.tensor(dy))
    for weight_grad, keeps in (("same", True), ("im2col", False)):
        with md.backends.conv.flags(algorithm="winograd-2x2", weight_grad=weight_grad):
            x, w = md.tensor(xa, requires_grad=True), md.tensor(wa, requires_grad=True)
            y = F.conv2d(x, w, padding=1, groups=2)
            assert (y.grad_fn.kept is not None) == keeps
            assert F.conv2d(x, md.tensor(wa), padding=1, groups=2).grad_fn.kept is None
            y.backward(md.tensor(dy), retain_graph=True)
            assert y.grad_fn.kept is None          # used once and dropped
        assert_close(x.grad, tx.grad, np.float64, "dx")
        assert_close(w.grad, tw.grad, np.float64, "dw")
