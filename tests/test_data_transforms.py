"""minidl.data.batch_transforms against direct per-image / per-pixel NumPy references (and torch for Resize)."""
import numpy as np
import pytest
import torch

import minidl as md
from minidl.data import batch_transforms as T


def batch(shape=(4, 3, 9, 11), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def rng(seed=5):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- Resize

@pytest.mark.parametrize("size", [224, (13, 9), (9, 11), (4, 17), 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resize_matches_torch_bilinear(size, dtype):
    x = batch((3, 2, 9, 11), dtype)
    ours = T.Resize(size)(x, None)
    theirs = torch.nn.functional.interpolate(torch.tensor(x), size=T._size_pair(size, "t"), mode="bilinear",
                                             align_corners=False).numpy()
    assert ours.dtype == dtype and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_resize_matches_pixel_formula():
    x = batch((1, 1, 5, 4), np.float64)
    h, w = 7, 3
    out = T.Resize((h, w))(x, None)

    def src(i, n_in, n_out):
        s = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1)
        i0 = int(np.floor(s))
        return i0, min(i0 + 1, n_in - 1), s - i0

    for i in range(h):
        r0, r1, fr = src(i, 5, h)
        for j in range(w):
            c0, c1, fc = src(j, 4, w)
            img = x[0, 0]
            expected = ((1 - fr) * ((1 - fc) * img[r0, c0] + fc * img[r0, c1])
                        + fr * ((1 - fc) * img[r1, c0] + fc * img[r1, c1]))
            assert out[0, 0, i, j] == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- crops and flips

@pytest.mark.parametrize("size,padding", [(5, 0), ((7, 4), 0), (9, 2), (3, 1), ((9, 11), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_crop_matches_loop(size, padding, dtype):
    x = batch(dtype=dtype)
    out = T.RandomCrop(size, padding)(x, rng())
    h, w = T._size_pair(size, "t")
    r = rng()   # reference: same draws, one image at a time
    padded = np.zeros((4, 3, 9 + 2 * padding, 11 + 2 * padding), dtype)
    padded[:, :, padding:padding + 9, padding:padding + 11] = x
    tops = r.integers(0, padded.shape[2] - h + 1, size=4)
    lefts = r.integers(0, padded.shape[3] - w + 1, size=4)
    assert out.shape == (4, 3, h, w) and out.dtype == dtype
    for n in range(4):
        np.testing.assert_array_equal(out[n], padded[n, :, tops[n]:tops[n] + h, lefts[n]:lefts[n] + w])


def test_random_crop_offsets_differ_per_image():
    x = np.broadcast_to(np.arange(11, dtype=np.float32), (64, 1, 1, 11)).copy()
    out = T.RandomCrop((1, 4))(x, rng())
    assert len(np.unique(out[:, 0, 0, 0])) > 1


@pytest.mark.parametrize("shape,size", [((2, 3, 9, 11), 5), ((1, 1, 8, 8), 3), ((2, 2, 10, 7), (4, 6))])
def test_center_crop(shape, size):
    x = batch(shape)
    h, w = T._size_pair(size, "t")
    top, left = int(round((shape[2] - h) / 2)), int(round((shape[3] - w) / 2))
    np.testing.assert_array_equal(T.CenterCrop(size)(x, None), x[:, :, top:top + h, left:left + w])


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_random_horizontal_flip_matches_loop(p):
    x = batch((16, 2, 3, 5))
    out = T.RandomHorizontalFlip(p)(x, rng())
    flips = rng().random(16) < p
    for n in range(16):
        np.testing.assert_array_equal(out[n], x[n, :, :, ::-1] if flips[n] else x[n])
    if p == 0.5:
        assert 0 < flips.sum() < 16


def test_normalize():
    x = batch()
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    out = T.Normalize(mean, std)(x, None)
    assert out.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (x[:, c] - mean[c]) / std[c], rtol=1e-6, atol=1e-6)


def test_compose_threads_one_rng():
    x = batch()
    a, b = T.RandomCrop(5, padding=1), T.RandomHorizontalFlip()
    r = rng()
    expected = b(a(x, r), r)
    np.testing.assert_array_equal(T.Compose([a, b])(x, rng()), expected)


# ----------------------------------------------------------------------------- PCA lighting

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pca_lighting_matches_pixel_loop(dtype):
    x = batch((3, 3, 4, 5), dtype)
    eigval, eigvec = T.IMAGENET_PCA["eigval"], T.IMAGENET_PCA["eigvec"]
    out = T.PCALighting(eigval, eigvec, alphastd=0.1)(x, rng())
    alpha = rng().normal(0.0, 0.1, size=(3, 3))
    assert out.dtype == dtype
    for n in range(3):
        # the paper: add sum_i alpha_i lambda_i p_i (p_i = i-th eigenvector = column i) to every pixel
        shift = sum(alpha[n, i] * float(eigval[i]) * eigvec[:, i].astype(np.float64) for i in range(3))
        for r in range(4):
            for c in range(5):
                np.testing.assert_allclose(out[n, :, r, c], x[n, :, r, c] + shift, rtol=1e-6, atol=1e-6)


def test_pca_lighting_basis_matches_np_cov():
    rgb = np.random.default_rng(1).integers(0, 256, (37, 3, 5, 6), dtype=np.uint8)
    eigval, eigvec = T.pca_lighting_basis(rgb, chunk=8)
    pixels = rgb.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    cov = np.cov(pixels)
    ref_val = np.linalg.eigvalsh(cov)[::-1]
    np.testing.assert_allclose(eigval, ref_val, rtol=1e-5)
    assert np.all(np.diff(eigval) <= 0)
    np.testing.assert_allclose(cov @ eigvec, eigvec * eigval, atol=1e-6)     # cov p_i = lambda_i p_i
    np.testing.assert_allclose(eigvec.T @ eigvec, np.eye(3), atol=1e-6)
    f_val, _ = T.pca_lighting_basis(rgb.astype(np.float32) / 255)           # float input is taken as is
    np.testing.assert_allclose(f_val, eigval, rtol=1e-4)


# ----------------------------------------------------------------------------- ten crops

@pytest.mark.parametrize("shape,size", [((2, 3, 9, 11), 5), ((1, 1, 6, 6), 4), ((2, 2, 10, 7), (4, 6))])
def test_ten_crop_matches_slices(shape, size):
    x = batch(shape)
    h, w = T._size_pair(size, "t")
    H, W = shape[2:]
    out = T.ten_crop(x, size)
    assert out.shape == (10,) + shape[:2] + (h, w)
    top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
    refs = [x[:, :, :h, :w], x[:, :, :h, W - w:], x[:, :, H - h:, :w], x[:, :, H - h:, W - w:],
            x[:, :, top:top + h, left:left + w]]
    for k, ref in enumerate(refs):
        np.testing.assert_array_equal(out[k], ref)
        np.testing.assert_array_equal(out[k + 5], ref[..., ::-1])


def test_ten_crop_predict_averages_softmax():
    x = batch((3, 2, 7, 7))
    weights = np.random.default_rng(2).standard_normal((2 * 5 * 5, 4)).astype(np.float32)

    def model_fn(b):
        assert not md.is_grad_enabled()
        return b.reshape(len(b), -1) @ weights

    probs = T.ten_crop_predict(model_fn, x, 5)
    expected = np.zeros((3, 4))
    for crop in T.ten_crop(x, 5):
        z = (crop.reshape(3, -1) @ weights).astype(np.float64)
        expected += np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) / 10
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)

    tensor_probs = T.ten_crop_predict(lambda b: md.tensor(model_fn(b), requires_grad=False), x, 5)
    np.testing.assert_allclose(tensor_probs, probs, rtol=1e-6)


# ----------------------------------------------------------------------------- bad input

def test_transform_bad_input():
    x = batch()
    with pytest.raises(ValueError, match=r"RandomCrop \(padding=0\): crop size \(10, 10\) is larger than the images "
                                         r"\(batch shape \(4, 3, 9, 11\)\)"):
        T.RandomCrop(10)(x, rng())
    with pytest.raises(ValueError, match="CenterCrop: crop size"):
        T.CenterCrop((3, 12))(x, None)
    with pytest.raises(ValueError, match="ten_crop: crop size"):
        T.ten_crop(x, 10)
    with pytest.raises(ValueError, match=r"Resize: expected a batch array \(N, C, H, W\), got \(3, 9, 11\)"):
        T.Resize(4)(x[0], None)
    with pytest.raises(ValueError, match=r"Normalize: the batch has 3 channels .* but mean/std have 1 values"):
        T.Normalize([0.5], [0.5])(x, None)
    with pytest.raises(ValueError, match="Normalize: mean has 3 values but std has 2"):
        T.Normalize([0, 0, 0], [1, 1])
    with pytest.raises(ValueError, match="PCALighting: needs RGB images"):
        T.PCALighting(T.IMAGENET_PCA["eigval"], T.IMAGENET_PCA["eigvec"])(x[:, :1], rng())
    with pytest.raises(ValueError, match=r"PCALighting: eigval must have shape \(3,\)"):
        T.PCALighting([1, 2], np.eye(3))
    with pytest.raises(ValueError, match=r"pca_lighting_basis: expected RGB images"):
        T.pca_lighting_basis(x[:, :2])
    with pytest.raises(ValueError, match="RandomHorizontalFlip: p must be in"):
        T.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="RandomCrop: padding must be"):
        T.RandomCrop(3, padding=-1)
    with pytest.raises(TypeError, match="Compose: .* is not callable"):
        T.Compose([3])
    with pytest.raises(ValueError, match=r"ten_crop_predict: model_fn returned shape \(4,\)"):
        T.ten_crop_predict(lambda b: np.zeros(4), x, 5)
