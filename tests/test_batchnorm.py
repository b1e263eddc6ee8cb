"""Batch norm: kernels against the reference, gradcheck, PyTorch parity of F.batch_norm and the layers."""
import numpy as np
import pytest
import torch
from parity import check, gradcheck_random

import minidl as md
import minidl.functional as F
from minidl import nn
from minidl.kernels import batchnorm as K

SHAPES = [(1, 3, 5, 5), (4, 2, 3, 7), (5, 6), (2, 4, 9), (7, 1, 1, 1)]
TOL = {np.float32: dict(rtol=1e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    return x, rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype), \
        rng.standard_normal(shape).astype(dtype), rng.uniform(-1, 1, c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_stats", [True, False])
def test_versions_match_reference(shape, dtype, batch_stats):
    x, w, b, g, rm, rv = _data(shape, dtype)
    stats = {} if batch_stats else dict(mean=rm, var=rv)
    ref = K.batch_norm_forward_reference(x, w, b, 1e-5, **stats)
    ref_back = K.batch_norm_backward_reference(g, x, ref[1], ref[3], w, batch_stats)
    for fwd, bwd in ((K.batch_norm_forward_numba, K.batch_norm_backward_numba),
                     (K.batch_norm_forward_xp, K.batch_norm_backward_xp)):
        out = fwd(x, w, b, 1e-5, **stats)
        for ours, theirs in zip(out, ref):
            assert ours.dtype == dtype and ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, **TOL[dtype])
        back = bwd(g, x, ref[1], ref[3], w, batch_stats)
        for ours, theirs in zip(back, ref_back):
            assert ours.dtype == dtype and ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, **TOL[dtype])


@pytest.mark.parametrize("shape", [(3, 2, 2, 3), (4, 3)])
def test_gradcheck_training(shape):
    c = shape[1]
    fn = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    assert gradcheck_random(fn, [shape, (c,), (c,)])


def test_gradcheck_eval():
    rm, rv = np.array([0.1, -0.3]), np.array([0.5, 2.0])
    fn = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False)  # noqa: E731
    assert gradcheck_random(fn, [(3, 2, 2, 2), (2,), (2,)])


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 5), (1, 2, 3, 3), (3, 2, 7)])
@pytest.mark.parametrize("training", [True, False])
def test_torch_parity_functional(shape, training):
    c = shape[1]
    stats = {}
    for lib in ("md", "torch"):
        rng = np.random.default_rng(1)
        stats[lib] = (rng.uniform(-1, 1, c), rng.uniform(0.5, 2, c))

    def ours(x, w, b):
        rm, rv = (s.astype(x.dtype) for s in stats["md"])
        y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-3)
        stats["md_after"] = rm, rv
        return y

    def theirs(x, w, b):
        rm, rv = (torch.tensor(s, dtype=x.dtype) for s in stats["torch"])
        y = torch.nn.functional.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-3)
        stats["torch_after"] = rm, rv
        return y

    check(ours, theirs, [shape, (c,), (c,)])
    for a, t in zip(stats["md_after"], stats["torch_after"]):  # running stats updated as PyTorch does
        np.testing.assert_allclose(a, t.numpy(), rtol=1e-6, atol=1e-7)


def test_torch_parity_without_affine():
    check(lambda x: F.batch_norm(x, None, None, training=True),
          lambda x: torch.nn.functional.batch_norm(x, None, None, training=True), [(3, 4, 2, 2)])


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("layer,shape", [("BatchNorm2d", (4, 3, 5, 5)), ("BatchNorm1d", (8, 3)), ("BatchNorm1d", (4, 3, 6))])
def test_layer_matches_torch(layer, shape, momentum):
    ours, theirs = getattr(nn, layer)(3, momentum=momentum), getattr(torch.nn, layer)(3, momentum=momentum)
    rng = np.random.default_rng(0)
    ours.weight.data[...] = rng.standard_normal(3)
    ours.bias.data[...] = rng.standard_normal(3)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    for step in range(3):
        x = (rng.standard_normal(shape) * 3 + step).astype(np.float32)
        xm, xt = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ym, yt = ours(xm), theirs(xt)
        np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
        (ym * md.tensor(x)).sum().backward()  # a non-uniform upstream gradient
        (yt * torch.tensor(x)).sum().backward()
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(md.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_layer_registration_and_options():
    bn = nn.BatchNorm2d(4)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == list(torch.nn.BatchNorm2d(4).state_dict())
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(4))
    np.testing.assert_array_equal(bn.bias.numpy(), np.zeros(4))
    assert int(bn.num_batches_tracked) == 0
    bn(md.randn(2, 4, 3, 3))
    assert int(bn.num_batches_tracked) == 1
    plain = nn.BatchNorm2d(4, affine=False, track_running_stats=False).eval()
    assert list(plain.parameters()) == [] and list(plain.state_dict()) == []
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    expected = torch.nn.BatchNorm2d(4, affine=False, track_running_stats=False).eval()(torch.tensor(x))
    np.testing.assert_allclose(plain(md.tensor(x)).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_bad_input():
    x = md.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean has shape \(4,\) but the input of shape \(2, 3, 4, 4\)"):
        F.batch_norm(x, np.zeros(4, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"batch_norm: weight has shape \(2,\)"):
        F.batch_norm(x, None, None, md.ones(2), training=True)
    with pytest.raises(ValueError, match="needed when training=False"):
        F.batch_norm(x, None, None)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(md.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match=r"input must be \(N, C\)"):
        F.batch_norm(md.randn(3), None, None, training=True)
    with pytest.raises(TypeError, match="batch_norm: input must be a floating-point tensor"):
        F.batch_norm(md.tensor(np.ones((2, 3), np.int32)), None, None, training=True)
    with pytest.raises(TypeError, match="running_var must be floating-point"):
        F.batch_norm(x, np.zeros(3, np.float32), np.ones(3, np.int64))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4\): input of shape \(2, 3, 4, 4\) has 3 channels"):
        nn.BatchNorm2d(4)(x)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4-D"):
        nn.BatchNorm2d(3)(md.randn(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2-D"):
        nn.BatchNorm1d(3)(x)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)


@pytest.mark.gpu
def test_gpu_matches_cpu():
    layer = nn.BatchNorm2d(3)
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    cpu = layer(md.tensor(x)).numpy()
    layer.reset_running_stats()
    layer.to("gpu")
    gpu = layer(md.tensor(x, device="gpu")).numpy()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-5)
