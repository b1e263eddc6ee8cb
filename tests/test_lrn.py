"""LRN: Numba and array-generic (GPU logic, run with NumPy) kernels against the NumPy reference,
float64 gradient checks, PyTorch parity (odd and even sizes, C smaller than the window), the
paper's convention, and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minidl as md
import minidl.functional as F
from minidl import nn
from minidl.kernels import lrn
from parity import check, gradcheck_random

DTYPES = (np.float32, np.float64)
# (shape, size): odd and even windows, C smaller than the window, batch 1, 3-D input, size 1,
# M = H*W larger than the Numba block (several blocks per image)
CASES = [
    ((2, 7, 5, 3), 5),
    ((1, 3, 4, 4), 5),
    ((2, 6, 3, 3), 4),
    ((1, 1, 2, 2), 2),
    ((2, 5, 3, 2), 1),
    ((2, 4, 6), 9),
    ((1, 4, 29, 31), 3),
]
SETTINGS = dict(alpha=0.5, beta=0.75, k=1.5)   # alpha large enough that the cross-channel term matters


@pytest.mark.parametrize("beta", [0.75, 0.6])   # 0.75 takes the Numba kernel's square-root path
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size", CASES)
def test_kernels_match_reference(shape, size, dtype, beta):
    rng = np.random.default_rng(0)
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    a, b, k = SETTINGS["alpha"], beta, SETTINGS["k"]
    ref = lrn.lrn_forward_reference(x, size, a, b, k)
    gx_ref = lrn.lrn_backward_reference(x, g, size, a, b, k)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    for name in ("numba", "xp"):
        out = getattr(lrn, f"lrn_forward_{name}")(x, size, a, b, k)
        assert out.dtype == dtype and out.shape == shape, name
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol, err_msg=f"{name} output")
        gx = getattr(lrn, f"lrn_backward_{name}")(x, g, size, a, b, k)
        assert gx.dtype == dtype, name
        np.testing.assert_allclose(gx, gx_ref, rtol=tol, atol=tol, err_msg=f"{name} grad")


@pytest.mark.parametrize("shape,size", [((1, 4, 2, 3), 3), ((2, 5, 2, 2), 4), ((1, 2, 3, 2), 5)])
def test_gradcheck(shape, size):
    gradcheck_random(lambda x: F.local_response_norm(x, size, **SETTINGS), [shape])


@pytest.mark.parametrize("shape,size", CASES)
def test_matches_torch(shape, size):
    check(lambda x: F.local_response_norm(x, size, **SETTINGS), lambda x: TF.local_response_norm(x, size, **SETTINGS),
          [shape])
    other = dict(alpha=0.2, beta=0.6, k=2.0)
    check(lambda x: F.local_response_norm(x, size, **other), lambda x: TF.local_response_norm(x, size, **other),
          [shape])


def test_defaults_and_layer_match_torch():
    check(lambda x: F.local_response_norm(x, 5), lambda x: TF.local_response_norm(x, 5), [(2, 8, 5, 5)],
          low=-20, high=20)
    check(nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),
          torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0), [(2, 9, 6, 5)], low=-20, high=20)
    check(nn.LocalResponseNorm(4, alpha=0.3), torch.nn.LocalResponseNorm(4, alpha=0.3), [(1, 3, 4, 4)])


def test_paper_convention():
    """The paper's b = a / (k + alpha * sum over n=5 channels a^2)^beta (alpha NOT divided by n),
    k=2, alpha=1e-4, beta=0.75, written out here from the paper, equals alpha=5e-4 in PyTorch's form."""
    rng = np.random.default_rng(0)
    x = (10 * rng.standard_normal((2, 8, 3, 3))).astype(np.float64)
    C = x.shape[1]
    paper = np.empty_like(x)
    for i in range(C):
        window = x[:, max(0, i - 2):min(C - 1, i + 2) + 1]
        paper[:, i] = x[:, i] / (2.0 + 1e-4 * (window ** 2).sum(axis=1)) ** 0.75
    ours = F.local_response_norm(md.tensor(x), 5, alpha=5e-4, beta=0.75, k=2.0).numpy()
    np.testing.assert_allclose(ours, paper, rtol=1e-12)


def test_bad_input():
    x = md.tensor(np.zeros((1, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"local_response_norm: size must be a positive int \(>= 1\), got 0"):
        F.local_response_norm(x, 0)
    with pytest.raises(TypeError, match=r"local_response_norm: size must be a positive int, got 2.5"):
        F.local_response_norm(x, 2.5)
    with pytest.raises(ValueError, match=r"local_response_norm: expected an input of 3 or more dims.*\(4, 9\)"):
        F.local_response_norm(md.tensor(np.zeros((4, 9), np.float32)), 3)
    with pytest.raises(TypeError, match=r"local_response_norm: input has dtype int32 \(shape \(1, 4, 3, 3\)\)"):
        F.local_response_norm(md.tensor(np.zeros((1, 4, 3, 3), np.int32)), 3)
    with pytest.raises(TypeError, match=r"local_response_norm: alpha must be a number"):
        F.local_response_norm(x, 3, alpha="big")
    with pytest.raises(ValueError, match=r"LocalResponseNorm: size must be a positive int \(>= 1\), got -1"):
        nn.LocalResponseNorm(-1)
    with pytest.raises(TypeError, match=r"LocalResponseNorm: size must be a positive int"):
        nn.LocalResponseNorm(None)


def test_layer_repr():
    assert repr(nn.LocalResponseNorm(5, alpha=5e-4, k=2.0)) == "LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2.0)"


@pytest.mark.gpu
def test_gpu_matches_cpu():
    x = np.random.default_rng(0).standard_normal((2, 7, 5, 5)).astype(np.float32)
    cpu, gpu = md.tensor(x, requires_grad=True), md.tensor(x, requires_grad=True, device="gpu")
    F.local_response_norm(cpu, 5, **SETTINGS).sum().backward()
    out = F.local_response_norm(gpu, 5, **SETTINGS)
    out.sum().backward()
    np.testing.assert_allclose(out.numpy(), F.local_response_norm(md.tensor(x), 5, **SETTINGS).numpy(), rtol=1e-5)
    np.testing.assert_allclose(gpu.grad.numpy(), cpu.grad.numpy(), rtol=1e-5, atol=1e-6)
