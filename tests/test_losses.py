"""The losses and the new activations: parity with PyTorch (forward and backward, float32 and
float64, tolerances in tests/parity.py) and a float64 gradient check each; then the errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minidl as md
import minidl.functional as F
from minidl import nn
from parity import check, gradcheck_random

RNG = np.random.default_rng(7)
LABELS_2D = RNG.integers(0, 5, 6)                      # for (6, 5) scores
LABELS_4D = RNG.integers(0, 5, (3, 2, 4))              # for (3, 5, 2, 4) scores
LABELS_2D_IGN = np.where(np.arange(6) % 3 == 0, -100, LABELS_2D)
LABELS_4D_IGN = np.where(RNG.random((3, 2, 4)) < 0.3, 2, LABELS_4D)   # ignore_index=2 below
CLASS_W = RNG.uniform(0.2, 2.0, 5)


def _torch_labels(labels):
    return torch.tensor(labels, dtype=torch.int64)


CLASS_CASES = [  # (scores shape, labels, ignore_index)
    ((6, 5), LABELS_2D, -100),
    ((6, 5), LABELS_2D_IGN, -100),
    ((3, 5, 2, 4), LABELS_4D, -100),
    ((3, 5, 2, 4), LABELS_4D_IGN, 2),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", range(len(CLASS_CASES)))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_cross_entropy_matches_torch(reduction, case, weighted, smoothing):
    shape, labels, ignore = CLASS_CASES[case]
    w = CLASS_W if weighted else None

    def ours(x):
        return F.cross_entropy(x, labels, weight=None if w is None else md.tensor(w.astype(x.dtype)),
                               ignore_index=ignore, reduction=reduction, label_smoothing=smoothing)

    def theirs(x):
        return TF.cross_entropy(x, _torch_labels(labels), weight=None if w is None else torch.tensor(w, dtype=x.dtype),
                                ignore_index=ignore, reduction=reduction, label_smoothing=smoothing)

    check(ours, theirs, [shape])
    gradcheck_random(lambda x: F.cross_entropy(x, labels, weight=w, ignore_index=ignore, reduction=reduction,
                                               label_smoothing=smoothing), [shape])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", range(len(CLASS_CASES)))
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_matches_torch(reduction, case, weighted):
    shape, labels, ignore = CLASS_CASES[case]
    w = CLASS_W if weighted else None
    check(lambda x: F.nll_loss(x, md.tensor(labels), weight=w, ignore_index=ignore, reduction=reduction),
          lambda x: TF.nll_loss(x, _torch_labels(labels), weight=None if w is None else torch.tensor(w, dtype=x.dtype),
                                ignore_index=ignore, reduction=reduction), [shape])
    gradcheck_random(lambda x: F.nll_loss(x, labels, weight=w, ignore_index=ignore, reduction=reduction), [shape])


def test_nll_of_log_softmax_is_cross_entropy():
    x = md.tensor(RNG.standard_normal((6, 5)))
    a = F.nll_loss(F.log_softmax(x, dim=1), LABELS_2D_IGN, weight=CLASS_W)
    b = F.cross_entropy(x, LABELS_2D_IGN, weight=CLASS_W)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    check(lambda a, b: F.mse_loss(a, b, reduction=reduction), lambda a, b: TF.mse_loss(a, b, reduction=reduction),
          [(4, 3, 2), (4, 3, 2)])
    gradcheck_random(lambda a, b: F.mse_loss(a, b, reduction=reduction), [(4, 3), (4, 3)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [None, (1.0, 3.0, 0.5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits_matches_torch(reduction, pos_weight, weighted):
    w = RNG.uniform(0.5, 1.5, (4, 3)) if weighted else None

    def inputs(rng, dtype):  # logits over a wide range (the stable form matters), targets in [0, 1]
        return [rng.uniform(-30, 30, (4, 3)).astype(dtype), rng.uniform(0, 1, (4, 3)).astype(dtype)]

    def ours(x, y):
        return F.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction, pos_weight=pos_weight)

    def theirs(x, y):
        as_t = (lambda v: None if v is None else torch.tensor(v, dtype=x.dtype))
        return TF.binary_cross_entropy_with_logits(x, y, weight=as_t(w), reduction=reduction,
                                                   pos_weight=as_t(pos_weight))

    check(ours, theirs, None, inputs=inputs)
    gradcheck_random(ours, None, inputs=lambda rng, dtype: [rng.uniform(-4, 4, (4, 3)), rng.uniform(0, 1, (4, 3))])


def test_bce_with_logits_is_finite_for_huge_logits():
    x = md.tensor(np.array([-1e4, -50.0, 50.0, 1e4]), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, np.array([1.0, 0.0, 1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [1e4, 0.0, 0.0, 1e4], atol=1e-20)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, 0.0, 0.0, 1.0], atol=1e-20)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "leaky_relu"])
def test_activations_match_torch(name):
    ours = {"sigmoid": F.sigmoid, "tanh": F.tanh, "leaky_relu": lambda x: F.leaky_relu(x, 0.2)}[name]
    theirs = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "leaky_relu": lambda x: TF.leaky_relu(x, 0.2)}[name]
    check(ours, theirs, [(3, 7)], low=-6, high=6)
    gradcheck_random(ours, [(3, 7)], low=-6, high=6)


def test_sigmoid_saturates_without_overflow():
    with np.errstate(over="raise", invalid="raise"):  # underflow to 0 is the right answer
        y = F.sigmoid(md.tensor(np.array([-1000.0, 0.0, 1000.0], dtype=np.float32)))
    np.testing.assert_array_equal(y.numpy(), np.array([0.0, 0.5, 1.0], dtype=np.float32))


def test_loss_modules_pass_their_options():
    x = md.tensor(RNG.standard_normal((6, 5)))
    tx = torch.tensor(x.numpy())
    pairs = [
        (nn.CrossEntropyLoss(weight=md.tensor(CLASS_W), ignore_index=-100, label_smoothing=0.1, reduction="sum"),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(CLASS_W), label_smoothing=0.1, reduction="sum"), LABELS_2D_IGN),
        (nn.NLLLoss(reduction="none"), torch.nn.NLLLoss(reduction="none"), LABELS_2D),
    ]
    for ours, theirs, labels in pairs:
        np.testing.assert_allclose(ours(x, labels).numpy(), theirs(tx, _torch_labels(labels)).numpy(), rtol=1e-12)
    y = RNG.uniform(0, 1, (6, 5))
    np.testing.assert_allclose(nn.MSELoss(reduction="sum")(x, y).numpy(),
                               torch.nn.MSELoss(reduction="sum")(tx, torch.tensor(y)).numpy(), rtol=1e-12)
    pw = RNG.uniform(0.5, 2, 5)
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(pos_weight=pw)(x, y).numpy(),
                               torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))(tx, torch.tensor(y)).numpy(),
                               rtol=1e-12)
    # torch's legacy flags: reduce=False means "none", size_average=False means "sum"
    assert nn.MSELoss(reduce=False).reduction == "none" and nn.MSELoss(size_average=False).reduction == "sum"


def test_targets_as_tensor_or_numpy_give_the_same_loss():
    x = md.tensor(RNG.standard_normal((6, 5)))
    a = F.cross_entropy(x, LABELS_2D).item()
    b = F.cross_entropy(x, md.tensor(LABELS_2D)).item()
    c = F.cross_entropy(x, LABELS_2D.astype(np.int32)).item()
    assert a == b == c


@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.cross_entropy(x, np.array([0.0, 1.0, 2.0])), ValueError, r"integer class labels.*float64"),
    (lambda x: F.cross_entropy(x, md.tensor(np.array([0.0, 1.0, 2.0]))), ValueError, "integer class labels"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, 4])), ValueError, r"\[0, 4\).*\(3, 4\).*\[4\]"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, -100, -1])), ValueError, r"target has shape \(4,\).*\(3, 4\)"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, -1])), ValueError, r"ignore_index=-100; got \[-1\]"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, 2]), reduction="avg"), ValueError, "reduction must be one of"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, 2]), weight=np.ones(3)), ValueError, r"weight.*\(4,\)"),
    (lambda x: F.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda x: F.nll_loss(x, np.array([[0, 1, 2]])), ValueError, r"target has shape \(1, 3\)"),
    (lambda x: F.mse_loss(x, np.ones((3, 1))), ValueError, r"\(3, 1\).*\(3, 4\)"),
    (lambda x: F.mse_loss(x, np.ones((3, 4), dtype=np.float32)), TypeError, "float32 differs from input dtype float64"),
    (lambda x: F.binary_cross_entropy_with_logits(x, np.ones(4)), ValueError, r"target shape \(4,\)"),
    (lambda x: F.binary_cross_entropy_with_logits(x, np.ones((3, 4)), pos_weight=np.ones(3)), ValueError,
     "pos_weight of shape"),
    (lambda x: F.leaky_relu(x, "0.1"), TypeError, "negative_slope"),
    (lambda x: nn.Softmax()(x), ValueError, "give dim explicitly"),
])
def test_bad_loss_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(md.tensor(np.zeros((3, 4))))


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # 0 / 0: NumPy says so, torch does not
def test_all_ignored_mean_is_nan_as_torch():
    x = md.tensor(np.zeros((2, 3)))
    ours = F.cross_entropy(x, np.array([-100, -100])).item()
    theirs = TF.cross_entropy(torch.zeros(2, 3), torch.tensor([-100, -100])).item()
    assert np.isnan(ours) and np.isnan(theirs)
