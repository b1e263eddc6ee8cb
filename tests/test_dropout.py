"""Dropout: Philox4x32-10 known answers, bit-identical masks across versions, F.dropout and nn.Dropout."""
import numpy as np
import pytest
import torch
from parity import check

import minidl as md
import minidl.functional as F
from minidl import nn
from minidl.kernels import dropout as K

# Random123's known-answer vectors for Philox4x32-10 (its tests/kat_vectors), also used by
# TensorFlow's XLA Philox tests: (counter, key, output).
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", PHILOX_KAT)
def test_philox_known_answers(counter, key, expected):
    assert K.philox4x32_10(counter, key) == expected
    words = K.philox4x32_10_xp(*(np.array([c], dtype=np.uint64) for c in counter), *key)
    assert tuple(int(w[0]) for w in words) == expected
    numba_words = K._philox_block(*(np.uint64(c) for c in counter), np.uint64(key[0]), np.uint64(key[1]))
    assert tuple(int(w) for w in numba_words) == expected


@pytest.mark.parametrize("n", [1, 3, 4, 5, 257, 1000])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_masks_bit_identical(n, p):
    seed, call = 2**40 + 12345, 2**33 + 7  # exercise the high words of key and counter
    ref = K.dropout_mask_reference(n, p, seed, call)
    np.testing.assert_array_equal(K.dropout_mask_xp(n, p, seed, call), ref)
    np.testing.assert_array_equal(K.dropout_mask_numba(n, p, seed, call), ref)


@pytest.mark.parametrize("shape", [(1,), (3, 7, 11), (2, 3, 5, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_backward_versions_agree(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y_ref, m_ref = K.dropout_forward_reference(x, 0.4, 3, 5, 1 / 0.6)
    for fn in (K.dropout_forward_numba, K.dropout_forward_xp):
        y, m = fn(x, 0.4, 3, 5, 1 / 0.6)
        assert y.dtype == dtype and y.shape == shape
        np.testing.assert_array_equal(m, m_ref)
        np.testing.assert_array_equal(y, y_ref)
    expected = np.where(m_ref, g * dtype(1 / 0.6), dtype(0))
    np.testing.assert_array_equal(K.dropout_backward_numba(g, m_ref, 1 / 0.6), expected)
    np.testing.assert_array_equal(K.dropout_backward_xp(g, m_ref, 1 / 0.6), expected)


def test_non_contiguous_input():
    x = np.random.default_rng(0).standard_normal((6, 8)).T
    y, m = K.dropout_forward_numba(x, 0.5, 1, 2, 2.0)
    y_ref, m_ref = K.dropout_forward_reference(np.ascontiguousarray(x), 0.5, 1, 2, 2.0)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(m, m_ref)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_statistics(p):
    x = md.ones(200, 500)
    y = F.dropout(x, p).numpy()
    kept = y != 0
    # 10^5 Bernoulli(1-p) draws: the fraction is within 5 standard deviations of 1-p
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / kept.size)
    np.testing.assert_allclose(y[kept], np.float32(1 / (1 - p)))
    assert abs(y.mean() - 1) < 0.02  # inverted dropout keeps the expectation


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_is_mask_times_scale(dtype):
    x = md.tensor(np.random.default_rng(0).standard_normal((4, 50)).astype(dtype), requires_grad=True)
    y = F.dropout(x, 0.3)
    upstream = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    y.backward(upstream)
    mask = y.numpy() != 0
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(x.grad.numpy(), upstream * mask / (1 - 0.3), rtol=1e-6)


def test_gradcheck_with_fixed_mask():
    x = md.tensor(np.random.default_rng(0).standard_normal((3, 9)), requires_grad=True)

    def fn(t):  # the same key at every call: a fixed mask, so the function is differentiable
        md.manual_seed(5)
        return F.dropout(t, 0.5)

    assert md.gradcheck(fn, [x])


def test_same_seed_same_mask_and_sequence_reset():
    x = md.ones(10, 10)
    md.manual_seed(3)
    a1, a2 = F.dropout(x).numpy(), F.dropout(x).numpy()
    assert not np.array_equal(a1, a2)  # successive calls draw different masks
    md.manual_seed(3)
    b1, b2 = F.dropout(x).numpy(), F.dropout(x).numpy()
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    md.manual_seed(4)
    assert not np.array_equal(F.dropout(x).numpy(), a1)  # another seed, another mask


def test_mask_matches_kernel_key():
    md.manual_seed(9)
    y = F.dropout(md.ones(7, 3), 0.5)
    np.testing.assert_array_equal(y.numpy() != 0, K.dropout_mask_reference(21, 0.5, 9, 0).reshape(7, 3))


def test_modes_and_edge_cases():
    x = md.tensor(np.random.default_rng(0).uniform(1, 2, (8, 8)).astype(np.float32), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x                     # inverted: identity at test time
    np.testing.assert_allclose(F.dropout(x, 0.3, training=False, mode="paper").numpy(), x.numpy() * 0.7, rtol=1e-6)
    y = F.dropout(x, 0.5, mode="paper")                                # paper: no scaling when training
    kept = y.numpy() != 0
    np.testing.assert_array_equal(y.numpy()[kept], x.numpy()[kept])
    z = F.dropout(x, 1.0)
    assert not np.any(z.numpy())
    z.backward(np.ones((8, 8), np.float32))
    assert not np.any(x.grad.numpy())
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x.numpy())


def test_layer_train_eval_and_torch_eval_parity():
    layer = nn.Dropout(0.5)
    x = md.ones(20, 20)
    assert np.any(layer(x).numpy() == 0)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    assert repr(layer) == "Dropout(p=0.5)"
    check(lambda t: F.dropout(t, 0.5, training=False), lambda t: torch.nn.functional.dropout(t, 0.5, training=False),
          [(3, 4)])
    check(lambda t: F.dropout(t, 0.0), lambda t: torch.nn.functional.dropout(t, 0.0), [(3, 4)])


@pytest.mark.parametrize("p,error", [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                                     ("0.5", TypeError), (None, TypeError), (True, TypeError)])
def test_bad_p(p, error):
    with pytest.raises(error, match="dropout: p must be"):
        F.dropout(md.ones(2, 2), p)
    with pytest.raises(error, match="Dropout: p must be"):
        nn.Dropout(p)


def test_bad_mode_and_dtype():
    with pytest.raises(ValueError, match="mode"):
        F.dropout(md.ones(2, 2), 0.5, mode="bogus")
    with pytest.raises(TypeError, match="dropout: input must be a floating-point tensor"):
        F.dropout(md.tensor(np.ones((2, 2), dtype=np.int64)), 0.5)


@pytest.mark.gpu
def test_gpu_mask_equals_cpu_mask():
    x = md.ones(33, 17)
    md.manual_seed(11)
    cpu = F.dropout(x, 0.5).numpy()
    md.manual_seed(11)
    gpu = F.dropout(x.to("gpu"), 0.5).numpy()
    np.testing.assert_array_equal(cpu, gpu)


def test_numpy_scalar_probability_is_accepted():
    x = md.tensor(np.ones((4, 8), dtype=np.float32))
    a = F.dropout(x, np.float32(0.25)).numpy()
    assert set(np.unique(a)).issubset({0.0, np.float32(1 / 0.75)})
    assert md.nn.Dropout(np.float64(0.25)).p == 0.25
