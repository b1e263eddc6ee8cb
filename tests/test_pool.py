"""Pooling: Numba and array-generic (GPU logic, run with NumPy) kernels against the NumPy reference,
float64 gradient checks, PyTorch parity of F.* and the layers (ties included), and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minidl as md
import minidl.functional as F
from minidl import nn
from minidl.kernels import pool
from parity import check, gradcheck_random

DTYPES = (np.float32, np.float64)
# (input shape, kernel, stride, padding): overlapping 3/2, non-overlapping 2/2, padding, odd sizes,
# batch 1, rectangular windows
CASES = [
    ((2, 3, 9, 9), (3, 3), (2, 2), (0, 0)),
    ((1, 2, 8, 6), (2, 2), (2, 2), (0, 0)),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1)),
    ((1, 4, 5, 8), (3, 2), (1, 2), (1, 0)),
    ((3, 1, 11, 7), (5, 3), (3, 1), (2, 1)),
]


def _inputs(shape, dtype, kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "ties":        # small integers: many tied maxima in each window
        return rng.integers(-2, 3, shape).astype(dtype)
    return np.full(shape, 0.5, dtype=dtype)   # all equal


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["random", "ties", "equal"])
def test_max_pool_kernels_match_reference(case, dtype, kind):
    shape, k, s, p = case
    x = _inputs(shape, dtype, kind)
    y_ref, idx_ref = pool.max_pool2d_forward_reference(x, k, s, p)
    g = np.random.default_rng(1).standard_normal(y_ref.shape).astype(dtype)
    gx_ref = pool.max_pool2d_backward_reference(g, idx_ref, shape[2:], k, s, p)
    for name in ("numba", "xp"):
        y, idx = getattr(pool, f"max_pool2d_forward_{name}")(x, k, s, p)
        assert y.dtype == dtype and idx.dtype == np.int32, name
        np.testing.assert_array_equal(y, y_ref, err_msg=name)
        np.testing.assert_array_equal(idx, idx_ref, err_msg=name)
        gx = getattr(pool, f"max_pool2d_backward_{name}")(g, idx, shape[2:], k, s, p)
        assert gx.dtype == dtype, name
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_numba_at_alexnets_shapes(dtype):
    """pool5's 13x13 planes (3x3, stride 2) and a 2x2 pool, ties and a NaN plane mixed in: the fast
    forward's unrolled window paths and its general path, and the backward, exactly the reference."""
    x = _inputs((2, 8, 13, 13), dtype, "random")
    x[1, :4] = _inputs((4, 13, 13), dtype, "ties", seed=3)
    x[0, 5, 7, 2] = np.nan
    for k, s, p in [((3, 3), (2, 2), (0, 0)), ((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1))]:
        y_ref, idx_ref = pool.max_pool2d_forward_reference(x, k, s, p)
        y, idx = pool.max_pool2d_forward_numba(x, k, s, p)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)
        g = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
        np.testing.assert_array_equal(pool.max_pool2d_backward_numba(g, idx, (13, 13), k, s, p),
                                      pool.max_pool2d_backward_reference(g, idx_ref, (13, 13), k, s, p))


MAX_FORWARDS = {"reference": pool.max_pool2d_forward_reference, "numba": pool.max_pool2d_forward_numba,
                "xp": pool.max_pool2d_forward_xp}


@pytest.mark.parametrize("case", CASES)
def test_max_pool_indices_equal_torchs(case):
    """The saved argmax is PyTorch's return_indices (flat h*W + w), ties included."""
    shape, k, s, p = case
    for kind in ("random", "ties", "equal"):
        x = _inputs(shape, np.float32, kind)
        _, theirs = TF.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
        for name, fwd in MAX_FORWARDS.items():
            np.testing.assert_array_equal(fwd(x, k, s, p)[1], theirs.numpy(), err_msg=f"{name} {kind}")


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (3, 2, 0), (2, 2, 1)])
def test_max_pool_minus_inf_and_nan(k, s, p):
    """Padding never wins, even against -inf inputs; a NaN in a window makes its max NaN (as torch)."""
    x = np.full((1, 2, 7, 7), -np.inf, dtype=np.float32)
    x[0, 1] = np.arange(49).reshape(7, 7)
    x[0, 1, 2, 3] = np.nan
    ty, ti = TF.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    for name, fwd in MAX_FORWARDS.items():
        y, idx = fwd(x, (k, k), (s, s), (p, p))
        np.testing.assert_array_equal(y, ty.numpy(), err_msg=name)     # NaN == NaN here
        np.testing.assert_array_equal(idx, ti.numpy(), err_msg=name)   # a single NaN: first == last


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_avg_pool_kernels_match_reference(case, dtype):
    shape, k, s, p = case
    x = _inputs(shape, dtype, "random")
    y_ref = pool.avg_pool2d_forward_reference(x, k, s, p)
    g = np.random.default_rng(1).standard_normal(y_ref.shape).astype(dtype)
    gx_ref = pool.avg_pool2d_backward_reference(g, shape[2:], k, s, p)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for name in ("numba", "xp"):
        y = getattr(pool, f"avg_pool2d_forward_{name}")(x, k, s, p)
        gx = getattr(pool, f"avg_pool2d_backward_{name}")(g, shape[2:], k, s, p)
        assert y.dtype == dtype and gx.dtype == dtype, name
        np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol, err_msg=name)
        np.testing.assert_allclose(gx, gx_ref, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,out", [((2, 3, 13, 13), (6, 6)), ((1, 2, 7, 5), (3, 2)), ((2, 1, 5, 6), (5, 6)),
                                       ((1, 2, 3, 4), (7, 9)), ((1, 3, 6, 6), (1, 1))])
def test_adaptive_avg_pool_kernels_match_reference(shape, out, dtype):
    x = _inputs(shape, dtype, "random")
    y_ref = pool.adaptive_avg_pool2d_forward_reference(x, out)
    g = np.random.default_rng(1).standard_normal(y_ref.shape).astype(dtype)
    gx_ref = pool.adaptive_avg_pool2d_backward_reference(g, shape[2:])
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for name in ("numba", "xp"):
        y = getattr(pool, f"adaptive_avg_pool2d_forward_{name}")(x, out)
        gx = getattr(pool, f"adaptive_avg_pool2d_backward_{name}")(g, shape[2:])
        assert y.dtype == dtype and gx.dtype == dtype, name
        np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol, err_msg=name)
        np.testing.assert_allclose(gx, gx_ref, rtol=tol, atol=tol, err_msg=name)


def test_adaptive_bins_are_pytorchs_rule():
    starts, ends = pool.adaptive_bins(13, 6)   # floor(i*13/6), ceil((i+1)*13/6)
    assert starts == [int(np.floor(i * 13 / 6)) for i in range(6)]
    assert ends == [int(np.ceil((i + 1) * 13 / 6)) for i in range(6)]


# ----------------------------------------------------------------- gradient checks
def _distinct(shape):
    """float64 values spaced 0.1 apart in random order: no ties, so max-pool is differentiable."""
    def make(rng, dtype):
        n = int(np.prod(shape))
        return [(rng.permutation(n) * 0.1 - n * 0.05).reshape(shape).astype(dtype)]
    return make


@pytest.mark.parametrize("k,s,p", [(3, 2, 0), (2, 2, 0), (3, 2, 1)])
def test_max_pool2d_gradcheck(k, s, p):
    shape = (1, 2, 5, 5)
    gradcheck_random(lambda x: F.max_pool2d(x, k, s, p), [shape], inputs=_distinct(shape))


@pytest.mark.parametrize("k,s,p", [(3, 2, 0), (2, 1, 1)])
def test_avg_pool2d_gradcheck(k, s, p):
    gradcheck_random(lambda x: F.avg_pool2d(x, k, s, p), [(1, 2, 5, 4)])


@pytest.mark.parametrize("out", [(2, 3), 4])
def test_adaptive_avg_pool2d_gradcheck(out):
    gradcheck_random(lambda x: F.adaptive_avg_pool2d(x, out), [(1, 2, 5, 6)])


# ----------------------------------------------------------------- PyTorch parity
@pytest.mark.parametrize("case", CASES)
def test_max_pool2d_matches_torch(case):
    shape, k, s, p = case
    check(lambda x: F.max_pool2d(x, k, s, p), lambda x: TF.max_pool2d(x, k, s, p), [shape])


@pytest.mark.parametrize("kind", ["ties", "equal"])
@pytest.mark.parametrize("case", CASES[:3])
def test_max_pool2d_ties_match_torch(case, kind):
    """The gradient goes to the first maximum in row-major window order, as in PyTorch on CPU."""
    shape, k, s, p = case
    check(lambda x: F.max_pool2d(x, k, s, p), lambda x: TF.max_pool2d(x, k, s, p), [shape],
          inputs=lambda rng, dtype: [_inputs(shape, dtype, kind, seed=int(rng.integers(100)))])


def test_max_pool2d_default_stride_is_kernel_size():
    check(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), [(2, 3, 7, 6)])


@pytest.mark.parametrize("case", CASES)
def test_avg_pool2d_matches_torch(case):
    shape, k, s, p = case
    check(lambda x: F.avg_pool2d(x, k, s, p), lambda x: TF.avg_pool2d(x, k, s, p), [shape])


@pytest.mark.parametrize("shape,out", [((2, 3, 13, 13), 6), ((1, 2, 7, 5), (3, 2)), ((1, 2, 3, 4), (7, 9)),
                                       ((2, 2, 6, 5), (None, 2))])
def test_adaptive_avg_pool2d_matches_torch(shape, out):
    check(lambda x: F.adaptive_avg_pool2d(x, out), lambda x: TF.adaptive_avg_pool2d(x, out), [shape])


def test_layers_match_torch():
    shape = (2, 4, 11, 11)
    check(nn.MaxPool2d(3, 2), torch.nn.MaxPool2d(3, 2), [shape])
    check(nn.MaxPool2d((3, 2), stride=(2, 1), padding=1), torch.nn.MaxPool2d((3, 2), stride=(2, 1), padding=1),
          [shape])
    check(nn.AvgPool2d(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1), [shape])
    check(nn.AdaptiveAvgPool2d((6, 4)), torch.nn.AdaptiveAvgPool2d((6, 4)), [shape])


def test_layer_repr_and_no_parameters():
    layer = nn.MaxPool2d(3, 2)
    assert repr(layer) == "MaxPool2d(kernel_size=3, stride=2, padding=0)"
    assert list(layer.parameters()) == [] and nn.AdaptiveAvgPool2d(6).state_dict() == {}


# ----------------------------------------------------------------- bad input
def _x(shape=(1, 2, 5, 5), dtype=np.float32):
    return md.tensor(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("fn,name", [(F.max_pool2d, "max_pool2d"), (F.avg_pool2d, "avg_pool2d")])
def test_pool_bad_input(fn, name):
    with pytest.raises(ValueError, match=rf"{name}: expected a 4-D input.*\(2, 5, 5\)"):
        fn(_x((2, 5, 5)), 2)
    with pytest.raises(ValueError, match=rf"{name}: kernel_size \(6, 6\) is larger than the padded input \(5, 5\)"):
        fn(_x(), 6)
    with pytest.raises(ValueError, match=rf"{name}: kernel_size \(8, 8\) is larger than the padded input \(7, 7\)"):
        fn(_x(), 8, 1, 1)
    with pytest.raises(ValueError, match=rf"{name}: padding \(2, 2\) must be at most half of kernel_size \(3, 3\)"):
        fn(_x(), 3, 1, 2)
    with pytest.raises(TypeError, match=rf"{name}: input has dtype int32 \(shape \(1, 2, 5, 5\)\)"):
        fn(_x(dtype=np.int32), 2)
    with pytest.raises(TypeError, match=rf"{name}: input has dtype float16"):
        fn(_x(dtype=np.float16), 2)
    with pytest.raises(ValueError, match=rf"{name}: kernel_size must be >= 1, got \(0, 0\)"):
        fn(_x(), 0)
    with pytest.raises(ValueError, match=rf"{name}: stride must be >= 1"):
        fn(_x(), 2, 0)
    with pytest.raises(TypeError, match=rf"{name}: kernel_size must be an int or a pair of ints, got 2.5"):
        fn(_x(), 2.5)
    with pytest.raises(TypeError, match=rf"{name}: input must be a Tensor"):
        fn(np.zeros((1, 2, 5, 5), np.float32), 2)


def test_adaptive_avg_pool2d_bad_input():
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected a 4-D input.*\(5, 5\)"):
        F.adaptive_avg_pool2d(_x((5, 5)), 2)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be >= 1, got \(0, 3\)"):
        F.adaptive_avg_pool2d(_x(), (0, 3))
    with pytest.raises(TypeError, match=r"adaptive_avg_pool2d: output_size must be an int or a pair"):
        F.adaptive_avg_pool2d(_x(), (1, 2, 3))
    with pytest.raises(TypeError, match=r"adaptive_avg_pool2d: input has dtype int64"):
        F.adaptive_avg_pool2d(_x(dtype=np.int64), 2)


def test_layer_bad_settings_name_the_layer():
    with pytest.raises(ValueError, match=r"MaxPool2d: padding \(2, 2\) must be at most half of kernel_size \(3, 3\)"):
        nn.MaxPool2d(3, 2, padding=2)
    with pytest.raises(ValueError, match=r"AvgPool2d: kernel_size must be >= 1"):
        nn.AvgPool2d(0)
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d: output_size entries must be ints >= 1"):
        nn.AdaptiveAvgPool2d((0, 2))
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input.*\(3, 9\)"):
        nn.MaxPool2d(3, 2)(_x((3, 9)))


@pytest.mark.gpu
def test_gpu_matches_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 13, 13)).astype(np.float32)
    for fn in (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: F.avg_pool2d(t, 3, 2, 1),
               lambda t: F.adaptive_avg_pool2d(t, (6, 5))):
        cpu, gpu = md.tensor(x, requires_grad=True), md.tensor(x, requires_grad=True, device="gpu")
        fn(cpu).sum().backward()
        out = fn(gpu)
        out.sum().backward()
        np.testing.assert_allclose(out.numpy(), fn(md.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(gpu.grad.numpy(), cpu.grad.numpy(), rtol=1e-6, atol=1e-6)
