"""Parity with PyTorch (forward and backward, float32 and float64) and a float64 gradient
check for every elementary operation; one line each (helpers in tests/parity.py)."""
import numpy as np
import pytest
import torch

import minidl as md
import minidl.functional as F
from parity import check, gradcheck_random


def positive(*shapes):
    """Inputs in [0.5, 2] (for log, pow and division)."""
    return lambda rng, dtype: [rng.uniform(0.5, 2.0, s).astype(dtype) for s in shapes]


def distinct(*shapes):
    """Inputs without ties (for max)."""
    return lambda rng, dtype: [rng.permutation(int(np.prod(s))).reshape(s).astype(dtype) / 7 for s in shapes]


def labels_for(n, c, seed=1):
    return np.random.default_rng(seed).integers(0, c, n)


CASES = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (3, 4)], {}),
    "add_broadcast": (lambda a, b: a + b, lambda a, b: a + b, [(2, 3, 4), (3, 1)], {}),
    "add_scalar": (lambda a: 2.5 + a, lambda a: 2.5 + a, [(3, 4)], {}),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [(3, 4), (4,)], {}),
    "rsub_scalar": (lambda a: 1 - a, lambda a: 1 - a, [(5,)], {}),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [(3, 4), (1, 4)], {}),
    "mul_scalar": (lambda a: a * 3, lambda a: a * 3, [(3, 4)], {}),
    "div": (lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (3, 4)], {"inputs": positive((3, 4), (3, 4))}),
    "rdiv_scalar": (lambda a: 2 / a, lambda a: 2 / a, [(6,)], {"inputs": positive((6,))}),
    "neg": (lambda a: -a, lambda a: -a, [(2, 5)], {}),
    "pow_scalar": (lambda a: a ** 3, lambda a: a ** 3, [(3, 4)], {}),
    "pow_tensor": (lambda a, b: a ** b, lambda a, b: a ** b, [(3, 4), (3, 4)], {"inputs": positive((3, 4), (3, 4))}),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 5), (5, 2)], {}),
    "matmul_batched": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 5), (5, 4)], {}),
    "getitem_slice": (lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(4, 6)], {}),
    "getitem_int": (lambda a: a[2], lambda a: a[2], [(4, 6)], {}),
    "getitem_repeated": (lambda a: a[np.array([0, 2, 0])], lambda a: a[torch.tensor([0, 2, 0])], [(4, 3)], {}),
    "reshape": (lambda a: a.reshape(3, 8), lambda a: a.reshape(3, 8), [(2, 3, 4)], {}),
    "transpose": (lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [(2, 3, 4)], {}),
    "T": (lambda a: a.T, lambda a: a.T, [(3, 5)], {}),
    "permute": (lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [(2, 3, 4)], {}),
    "flatten": (lambda a: F.flatten(a, 1), lambda a: torch.flatten(a, 1), [(2, 3, 4)], {}),
    "flatten_mid": (lambda a: F.flatten(a, 1, 2), lambda a: torch.flatten(a, 1, 2), [(2, 3, 4, 5)], {}),
    "sum": (lambda a: a.sum(), lambda a: a.sum(), [(3, 4)], {}),
    "sum_dim": (lambda a: a.sum(dim=1), lambda a: a.sum(dim=1), [(3, 4, 2)], {}),
    "sum_keepdim": (lambda a: a.sum(dim=(0, 2), keepdim=True), lambda a: a.sum(dim=(0, 2), keepdim=True),
                    [(3, 4, 2)], {}),
    "mean": (lambda a: a.mean(), lambda a: a.mean(), [(3, 4)], {}),
    "mean_dim": (lambda a: a.mean(dim=-1), lambda a: a.mean(dim=-1), [(3, 4)], {}),
    "max": (lambda a: a.max(), lambda a: a.max(), [(3, 4)], {"inputs": distinct((3, 4))}),
    "max_dim": (lambda a: a.max(dim=1).values, lambda a: a.max(dim=1).values, [(3, 4)], {"inputs": distinct((3, 4))}),
    "amax_dim": (lambda a: a.amax(dim=0, keepdim=True), lambda a: a.amax(dim=0, keepdim=True), [(3, 4)], {}),
    "exp": (lambda a: a.exp(), lambda a: a.exp(), [(3, 4)], {}),
    "log": (lambda a: a.log(), lambda a: a.log(), [(3, 4)], {"inputs": positive((3, 4))}),
    "relu": (F.relu, torch.relu, [(4, 5)], {}),
    "linear": (F.linear, torch.nn.functional.linear, [(4, 5), (3, 5), (3,)], {}),
    "linear_nobias": (F.linear, torch.nn.functional.linear, [(4, 5), (3, 5)], {}),
    "linear_3d": (F.linear, torch.nn.functional.linear, [(2, 4, 5), (3, 5), (3,)], {}),
    # fewer rows than out_features: Linear's forward computes the transposed product (w x^T)^T on the CPU
    "linear_few_rows": (F.linear, torch.nn.functional.linear, [(2, 5), (7, 5), (7,)], {}),
    "linear_few_rows_3d": (F.linear, torch.nn.functional.linear, [(2, 2, 5), (9, 5)], {}),
    "softmax": (lambda a: F.softmax(a, 1), lambda a: torch.softmax(a, 1), [(4, 6)], {}),
    "log_softmax": (lambda a: F.log_softmax(a, -1), lambda a: torch.log_softmax(a, -1), [(4, 6)], {}),
    "cross_entropy": (lambda a: F.cross_entropy(a, labels_for(5, 7)),
                      lambda a: torch.nn.functional.cross_entropy(a, torch.tensor(labels_for(5, 7))), [(5, 7)], {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_parity_with_torch(name):
    ours, theirs, shapes, options = CASES[name]
    check(ours, theirs, shapes, **options)


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    ours, _, shapes, options = CASES[name]
    assert gradcheck_random(ours, shapes, **options)


def test_duplicate_tie_gradient_is_shared_like_torch():
    """Ties: amax shares the gradient evenly; max(dim) sends it to the first maximum (as torch)."""
    check(lambda a: a.amax(dim=1), lambda a: a.amax(dim=1), None, dtypes=(np.float64,),
          inputs=lambda rng, dtype: [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=dtype)])
    check(lambda a: a.max(dim=1).values, lambda a: a.max(dim=1).values, None, dtypes=(np.float64,),
          inputs=lambda rng, dtype: [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=dtype)])


def test_softmax_is_stable_for_large_logits():
    x = md.tensor([[1000.0, 0.0, -1000.0]])
    assert np.allclose(F.softmax(x, 1).numpy(), [[1.0, 0.0, 0.0]])
    assert np.isfinite(F.log_softmax(x, 1).numpy()).all()
    assert np.isfinite(F.cross_entropy(x, np.array([2])).item())


def test_max_with_dim_returns_values_and_indices():
    x = md.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    values, indices = x.max(dim=1)
    assert values.numpy().tolist() == [5.0, 7.0]
    assert indices.numpy().tolist() == [1, 0]


def test_cross_entropy_accepts_tensor_labels():
    logits = md.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    a = F.cross_entropy(logits, md.tensor(np.array([0, 3, 1])))
    b = F.cross_entropy(logits, np.array([0, 3, 1]))
    assert a.item() == b.item()
