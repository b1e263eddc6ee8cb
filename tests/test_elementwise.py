"""The gradient-accumulation add: the Numba version and the array-generic one against np.add."""
import numpy as np
import pytest

from minidl.kernels import elementwise


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3,), (70000,), (2, 3, 5, 7), (33, 96, 5, 5)])
def test_add_matches_numpy(shape, dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    for add in (elementwise.add_numba, elementwise.add_xp, elementwise.add_reference, elementwise.add):
        out = add(a, b)
        assert out.shape == shape and out.dtype == dtype
        np.testing.assert_array_equal(out, a + b)
        assert not np.shares_memory(out, a) and not np.shares_memory(out, b)


def test_add_falls_back_for_mixed_dtypes_and_strided_arrays():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 400)).astype(np.float32)
    b = rng.standard_normal((300, 400))
    out = elementwise.add_numba(a, b)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, a + b)
    np.testing.assert_array_equal(elementwise.add_numba(a.T, a.T.copy()), 2 * a.T)


# ----------------------------------------------------------------------------- ReLU
from minidl.kernels import relu as R  # noqa: E402


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5,), (70000,), (64, 32, 28, 28), (3, 5, 7, 9)])
@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply")   # the inf * 0 on purpose
def test_relu_versions_match_the_reference_including_nan_and_inf(shape, dtype):
    """Bit-for-bit the reference's values and mask, with -inf, +inf, NaN and -0.0 among the inputs
    (large shapes go through the Numba kernels, small ones through the fallback); the backward with
    an infinite upstream gradient at a masked position gives NaN, as g * (a > 0) does."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    flat[:4] = [-np.inf, np.inf, np.nan, -0.0]
    g = rng.standard_normal(shape).astype(dtype)
    g.reshape(-1)[0] = np.inf                       # at a's -inf: masked, inf * 0
    y_ref, mask_ref = R.relu_forward_reference(a)
    gx_ref = R.relu_backward_reference(g, mask_ref)
    assert np.isnan(gx_ref.reshape(-1)[0]) and np.isnan(y_ref.reshape(-1)[2]) and not mask_ref.reshape(-1)[2]
    for forward, backward in ((R.relu_forward_numba, R.relu_backward_numba), (R.relu_forward_xp, R.relu_backward_xp),
                              (R.relu_forward, R.relu_backward)):
        y, mask = forward(a)
        assert y.dtype == dtype and mask.dtype == bool and y.shape == mask.shape == shape
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(mask, mask_ref)
        np.testing.assert_array_equal(backward(g, mask), gx_ref)
    np.testing.assert_array_equal(y_ref, np.where(a > 0, a, np.where(np.isnan(a), a, 0)))   # max(a, 0) by definition


def test_relu_numba_falls_back_for_strided_and_integer_arrays():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((400, 300)).astype(np.float32)
    y, mask = R.relu_forward_numba(a.T)
    np.testing.assert_array_equal(y, np.maximum(a.T, 0))
    ints = rng.integers(-5, 5, 100000)
    np.testing.assert_array_equal(R.relu_forward_numba(ints)[0], np.maximum(ints, 0))
