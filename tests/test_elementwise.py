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
