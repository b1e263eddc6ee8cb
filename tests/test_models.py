"""The alexnet package: every variant against a hand-written PyTorch twin, the summary's counts,
the tf-lrn LRN mapping, options, recipes, bad input and the command line.

Whole-network parity. minidl's parameters are copied into the twin in parameters() order (names
and shapes must pair one to one), then on a batch of 2 random images:

float32 (as the networks train): the logits and the cross-entropy loss, and the gradients of the
  classifier's parameters, at max |ours - torch| <= RTOL * max |torch| per tensor, RTOL = 1e-3.
  Why so loose next to the one-op tests (1e-4): AlexNet's sums are long (fc6 adds 9216 products,
  conv3 2304 per output; conv1's weight gradient sums over 2*55*55 positions), float32 carries 24
  bits (6e-8 relative), minidl sums in another order than PyTorch (im2col + BLAS blocking vs
  oneDNN), and eight layers compound that; the differences measured are ~1e-6 of the scale, and
  1e-3 is still far below any real error (a wrong index, a missing bias or a transposed weight
  changes results by O(1) of the scale).
  Why not the conv gradients in float32: max-pool's gradient is discontinuous. Where two values
  of a window are within float32 rounding of each other, the two frameworks' last-bit differences
  pick different maxima and a whole upstream gradient element goes to a different pixel. With the
  paper's init (weights N(0, 0.01), biases 1) the activations are nearly constant (1 + small), so
  such near-ties are common: `paper` measured up to 4% of the scale in conv1's gradient in
  float32 while float64 agreed to 4e-15. That is a property of float32 max-pooling and not a bug,
  and no tolerance can absorb it reliably.
float64 (the same networks cast): the logits, every parameter's gradient, and the change of every
  parameter after three SGD steps (lr 0.01, momentum 0.9, weight decay 5e-4; minidl's optim.SGD
  vs torch.optim.SGD), and BatchNorm's running averages, at RTOL64 = 1e-6 of each tensor's scale.

`keras-bn` is also compared in train mode (batch statistics), with dropout 0. Run time: the
224/227 variants do one forward/backward per dtype (the three SGD steps then reuse that
gradient); `cifar` and `mini` recompute the gradient before each step.
"""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as tnn

import alexnet
import minidl as md
import minidl.functional as F
from alexnet import models
from minidl import optim
from alexnet.__main__ import main

RTOL = 1e-3      # float32, relative to each tensor's largest element (see the module docstring)
RTOL64 = 1e-6    # float64: only the summation order differs
ROOT = Path(__file__).resolve().parents[1]


# ============================================================================ PyTorch twins
# Written out layer by layer from each source's description (docs/alexnet.md), independently of
# alexnet/models.py's spec builder.

class Twin(tnn.Module):
    def __init__(self, features, classifier, avgpool=None):
        super().__init__()
        self.features = features
        if avgpool is not None:
            self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x):
        x = self.features(x)
        if hasattr(self, "avgpool"):
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


def _drop(p):
    return [tnn.Dropout(p)] if p > 0 else []


def _paper_lrn():
    return tnn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # paper's alpha 1e-4 times n=5


def _caffe_classifier(fan_in, hidden, num_classes, p):
    """fc6 -> ReLU -> Dropout -> fc7 -> ReLU -> Dropout -> fc8 (Caffe's and Keras' placement)."""
    return tnn.Sequential(tnn.Linear(fan_in, hidden), tnn.ReLU(), *_drop(p),
                          tnn.Linear(hidden, hidden), tnn.ReLU(), *_drop(p),
                          tnn.Linear(hidden, num_classes))


def twin_paper(num_classes, p=0.5):
    return Twin(tnn.Sequential(
        tnn.Conv2d(3, 96, 11, stride=4), tnn.ReLU(), _paper_lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(96, 256, 5, padding=2, groups=2), tnn.ReLU(), _paper_lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(256, 384, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 384, 3, padding=1, groups=2), tnn.ReLU(),
        tnn.Conv2d(384, 256, 3, padding=1, groups=2), tnn.ReLU(), tnn.MaxPool2d(3, 2)),
        _caffe_classifier(256 * 6 * 6, 4096, num_classes, p))


def twin_torchvision(num_classes, p=0.5):
    """torchvision.models.AlexNet, copied by hand."""
    features = tnn.Sequential(
        tnn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), tnn.ReLU(inplace=True), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 192, kernel_size=5, padding=2), tnn.ReLU(inplace=True), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(192, 384, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
        tnn.Conv2d(384, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
        tnn.Conv2d(256, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True), tnn.MaxPool2d(3, 2))
    classifier = tnn.Sequential(*_drop(p), tnn.Linear(256 * 6 * 6, 4096), tnn.ReLU(inplace=True),
                                *_drop(p), tnn.Linear(4096, 4096), tnn.ReLU(inplace=True),
                                tnn.Linear(4096, num_classes))
    return Twin(features, classifier, tnn.AdaptiveAvgPool2d((6, 6)))


def twin_d2l(num_classes, p=0.5):
    """d2l.ai ch. 8.1's AlexNet (its LazyConv2d/LazyLinear with the shapes filled in)."""
    return Twin(tnn.Sequential(
        tnn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(96, 256, kernel_size=5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(256, 384, kernel_size=3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 384, kernel_size=3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 256, kernel_size=3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2)),
        _caffe_classifier(256 * 5 * 5, 4096, num_classes, p))


def twin_keras_bn(num_classes, p=0.5):
    """Conv2D(activation='relu') -> BatchNormalization [-> MaxPool2D], paper widths, 224 input."""
    return Twin(tnn.Sequential(
        tnn.Conv2d(3, 96, 11, stride=4, padding=2), tnn.ReLU(), tnn.BatchNorm2d(96), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(96, 256, 5, padding=2), tnn.ReLU(), tnn.BatchNorm2d(256), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(256, 384, 3, padding=1), tnn.ReLU(), tnn.BatchNorm2d(384),
        tnn.Conv2d(384, 384, 3, padding=1), tnn.ReLU(), tnn.BatchNorm2d(384),
        tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(), tnn.BatchNorm2d(256), tnn.MaxPool2d(3, 2)),
        _caffe_classifier(256 * 6 * 6, 4096, num_classes, p))


def twin_tf_lrn(num_classes, p=0.5):
    """TF2: Conv2D(96, 11, 4, 'same') on 227 pads 4 each side; max-pool, then tf.nn.lrn(2, 1, 1e-4, 0.75)."""
    def lrn():
        return tnn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=1.0)
    return Twin(tnn.Sequential(
        tnn.Conv2d(3, 96, 11, stride=4, padding=4), tnn.ReLU(), tnn.MaxPool2d(3, 2), lrn(),
        tnn.Conv2d(96, 256, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2), lrn(),
        tnn.Conv2d(256, 384, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 384, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2)),
        _caffe_classifier(256 * 6 * 6, 4096, num_classes, p))


def twin_cifar(num_classes, p=0.0):
    return Twin(tnn.Sequential(
        tnn.Conv2d(3, 64, 5), tnn.ReLU(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 64, 5), tnn.ReLU(), tnn.MaxPool2d(3, 2)),
        tnn.Sequential(*_drop(p), tnn.Linear(64 * 4 * 4, 384), tnn.ReLU(),
                       *_drop(p), tnn.Linear(384, 192), tnn.ReLU(), tnn.Linear(192, num_classes)))


def twin_mini(num_classes, p=0.5):
    return Twin(tnn.Sequential(
        tnn.Conv2d(1, 64, 5, padding=2), tnn.ReLU(), _paper_lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 128, 5, padding=2, groups=2), tnn.ReLU(), _paper_lrn(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(128, 192, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(192, 192, 3, padding=1, groups=2), tnn.ReLU(),
        tnn.Conv2d(192, 128, 3, padding=1, groups=2), tnn.ReLU(), tnn.MaxPool2d(3, 2)),
        tnn.Sequential(*_drop(p), tnn.Linear(128 * 2 * 2, 512), tnn.ReLU(),
                       *_drop(p), tnn.Linear(512, 512), tnn.ReLU(), tnn.Linear(512, num_classes)))


TWINS = {"paper": twin_paper, "torchvision": twin_torchvision, "d2l": twin_d2l, "keras-bn": twin_keras_bn,
         "tf-lrn": twin_tf_lrn, "cifar": twin_cifar, "mini": twin_mini}
SMALL = ("cifar", "mini")   # cheap enough to recompute the gradient at every SGD step


# ============================================================================ helpers
def assert_scaled_close(ours, theirs, rtol, what):
    """max |ours - theirs| <= rtol * max |theirs| (+ a tiny floor for all-zero tensors)."""
    ours = torch.from_numpy(np.asarray(ours.data if isinstance(ours, md.Tensor) else ours))
    theirs = theirs.detach() if isinstance(theirs, torch.Tensor) else torch.from_numpy(np.asarray(theirs))
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs torch {tuple(theirs.shape)}"
    # (torch's reductions are multi-threaded: fc6's 37.7 M elements compare quickly)
    err, scale = float((ours - theirs).abs_().max()), max(float(theirs.max()), -float(theirs.min()))
    assert err <= rtol * scale + 1e-12, f"{what}: max error {err:.3g} > {rtol} * scale {scale:.3g}"


def copy_into_twin(model, twin):
    """minidl -> torch in parameters() order; shapes and names must pair one to one.
    Buffers (BatchNorm's running statistics) are copied by name."""
    ours, theirs = list(model.named_parameters()), list(twin.named_parameters())
    assert [(n, p.shape) for n, p in ours] == [(n, tuple(q.shape)) for n, q in theirs]
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for (_, p), (_, q) in zip(ours, theirs):
            q.copy_(torch.from_numpy(p.numpy()))
        for bname, b in twin.named_buffers():
            b.copy_(torch.from_numpy(np.asarray(buffers[bname])))


def to_float64(model, twin):
    """Both networks in float64 (minidl: every parameter and floating buffer, in place)."""
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    for m in model.modules():
        for bname, b in list(m._buffers.items()):
            if b is not None and b.dtype.kind == "f":
                setattr(m, bname, b.astype(np.float64))
    twin.double()


def forward_backward(model, twin, x, y):
    logits, tlogits = model(md.tensor(x)), twin(torch.from_numpy(x))
    loss = F.cross_entropy(logits, y)
    tloss = tnn.functional.cross_entropy(tlogits, torch.from_numpy(y))
    loss.backward()
    tloss.backward()
    return logits, tlogits, loss.item(), tloss.item()


def run_parity(name, train=False, **options):
    """float32: logits, loss and the classifier's gradients at RTOL; float64: logits, every
    gradient, the parameters after three SGD steps (and BN's running averages) at RTOL64."""
    num_classes = 10
    md.manual_seed(0)
    model = alexnet.build(name, num_classes=num_classes, **options)
    with torch.device("meta"):  # skip torch's initialisation: the values are copied from minidl
        twin = TWINS[name](num_classes, options.get("dropout", models.VARIANTS[name].dropout))
    twin.to_empty(device="cpu")
    copy_into_twin(model, twin)
    model.train(train)
    twin.train(train)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *model.input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, size=2)

    # float32, as the networks train
    state = {k: v.numpy() for k, v in model.state_dict().items()} if train else None
    logits, tlogits, loss, tloss = forward_backward(model, twin, x, y)
    assert logits.dtype == np.float32
    assert_scaled_close(logits, tlogits, RTOL, f"{name}: float32 logits")
    assert abs(loss - tloss) <= RTOL * abs(tloss), (loss, tloss)
    for (pname, p), q in zip(model.named_parameters(), twin.parameters()):
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        if pname.startswith("classifier."):   # no max-pool between these and the loss
            assert_scaled_close(p.grad, q.grad, RTOL, f"{name}: float32 gradient of {pname}")
    if train:  # BatchNorm's running averages moved; start float64 from the same state
        model.load_state_dict(state)
        twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)

    # float64: everything, tightly
    to_float64(model, twin)
    x = x.astype(np.float64)
    before = [p.numpy() for p in model.parameters()]
    sgd = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt, topt = optim.SGD(model.parameters(), **sgd), torch.optim.SGD(twin.parameters(), **sgd)
    for step in range(3):
        if step == 0 or name in SMALL:
            opt.zero_grad()
            topt.zero_grad()
            logits, tlogits, loss, tloss = forward_backward(model, twin, x, y)
            if step == 0:
                assert logits.dtype == np.float64
                assert_scaled_close(logits, tlogits, RTOL64, f"{name}: float64 logits")
                for (pname, p), q in zip(model.named_parameters(), twin.parameters()):
                    assert_scaled_close(p.grad, q.grad, RTOL64, f"{name}: float64 gradient of {pname}")
        opt.step()
        topt.step()
    for (pname, p), q, p0 in zip(model.named_parameters(), twin.parameters(), before):
        # the change each parameter made (both start from p0); implies the parameters agree
        p0 = torch.from_numpy(p0)
        assert_scaled_close(torch.from_numpy(p.data) - p0, q.detach() - p0, RTOL64, f"{name}: change of {pname}")
    if train:  # batch statistics went into the running averages the same way
        ours = dict(model.named_buffers())
        for bname, b in twin.named_buffers():
            assert bname in ours, f"{name}: minidl has no buffer {bname}"
            assert_scaled_close(np.asarray(ours[bname]), b, RTOL64, f"{name}: buffer {bname}")
    return model


# ============================================================================ parity
@pytest.mark.parametrize("name", list(TWINS))
def test_parity_eval(name):
    run_parity(name)


def test_parity_keras_bn_train_mode():
    """Batch statistics (train mode), dropout off so that only BatchNorm's mode differs."""
    model = run_parity("keras-bn", train=True, dropout=0.0)
    assert any(name.endswith("running_mean") for name, _ in model.named_buffers())


def test_parity_mini_ablation_options():
    """The options build what the twin spells out: BN for LRN, no dropout."""
    md.manual_seed(0)
    model = alexnet.build("mini", norm="bn", dropout=0.0)
    twin = Twin(tnn.Sequential(
        tnn.Conv2d(1, 64, 5, padding=2), tnn.ReLU(), tnn.BatchNorm2d(64), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 128, 5, padding=2, groups=2), tnn.ReLU(), tnn.BatchNorm2d(128), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(128, 192, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(192, 192, 3, padding=1, groups=2), tnn.ReLU(),
        tnn.Conv2d(192, 128, 3, padding=1, groups=2), tnn.ReLU(), tnn.MaxPool2d(3, 2)),
        tnn.Sequential(tnn.Linear(512, 512), tnn.ReLU(), tnn.Linear(512, 512), tnn.ReLU(), tnn.Linear(512, 10)))
    copy_into_twin(model, twin)
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28)).astype(np.float32)
    for mode in (True, False):
        model.train(mode)
        twin.train(mode)
        assert_scaled_close(model(md.tensor(x)), twin(torch.from_numpy(x)), RTOL, f"mini bn, train={mode}")


def test_state_dict_loads_from_torch_twin():
    """PyTorch-style names: a twin's state dict loads as it is (cifar: small)."""
    twin = twin_cifar(10)
    model = alexnet.build("cifar")
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.detach().numpy())


# ============================================================================ parameter counts
def conv_p(cin, cout, k, groups=1):
    return cout * (cin // groups) * k * k + cout


def fc_p(fan_in, fan_out):
    return fan_in * fan_out + fan_out


PAPER_LAYERS = [34_944, 307_456, 885_120, 663_936, 442_624, 37_752_832, 16_781_312, 4_097_000]  # the issue's

# Totals derived by hand from each source's layer list (default num_classes).
EXPECTED_TOTALS = {
    "paper": 60_965_224,
    "torchvision": 61_100_840,
    "d2l": (conv_p(1, 96, 11) + conv_p(96, 256, 5) + conv_p(256, 384, 3) + conv_p(384, 384, 3)
            + conv_p(384, 256, 3) + fc_p(6400, 4096) + fc_p(4096, 4096) + fc_p(4096, 10)),
    "keras-bn": (conv_p(3, 96, 11) + conv_p(96, 256, 5) + conv_p(256, 384, 3) + conv_p(384, 384, 3)
                 + conv_p(384, 256, 3) + 2 * (96 + 256 + 384 + 384 + 256)
                 + fc_p(9216, 4096) + fc_p(4096, 4096) + fc_p(4096, 1000)),
    "tf-lrn": (conv_p(3, 96, 11) + conv_p(96, 256, 5) + conv_p(256, 384, 3) + conv_p(384, 384, 3)
               + conv_p(384, 256, 3) + fc_p(9216, 4096) + fc_p(4096, 4096) + fc_p(4096, 1000)),
    "cifar": conv_p(3, 64, 5) + conv_p(64, 64, 5) + fc_p(1024, 384) + fc_p(384, 192) + fc_p(192, 10),
    "mini": (conv_p(1, 64, 5) + conv_p(64, 128, 5, 2) + conv_p(128, 192, 3) + conv_p(192, 192, 3, 2)
             + conv_p(192, 128, 3, 2) + fc_p(512, 512) + fc_p(512, 512) + fc_p(512, 10)),
}


@functools.lru_cache(maxsize=None)
def summary_of(name):
    """(rows, totals, number of parameters) of a default-built variant, computed once per test run."""
    model = alexnet.build(name)
    rows, totals = alexnet.summary(model)
    return rows, totals, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(EXPECTED_TOTALS))
def test_parameter_counts(name):
    rows, totals, n_params = summary_of(name)
    twin = TWINS[name](models.VARIANTS[name].num_classes)
    assert totals["params"] == n_params == sum(r.params for r in rows) == EXPECTED_TOTALS[name]
    assert totals["params"] == sum(q.numel() for q in twin.parameters())
    assert totals["output_shape"] == (models.VARIANTS[name].num_classes,)


def test_summary_paper_per_layer():
    rows, totals, _ = summary_of("paper")
    weighted = [r for r in rows if r.type in ("Conv2d", "Linear")]
    assert [r.params for r in weighted] == PAPER_LAYERS
    assert totals["params"] == sum(PAPER_LAYERS) == 60_965_224
    # MACs = output pixels x weights per output pixel (the weight count without biases)
    pixels = [55 * 55, 27 * 27, 13 * 13, 13 * 13, 13 * 13, 1, 1, 1]
    biases = [96, 256, 384, 384, 256, 4096, 4096, 1000]
    assert [r.macs for r in weighted] == [n * (p - b) for n, p, b in zip(pixels, PAPER_LAYERS, biases)]
    assert totals["macs"] == sum(r.macs for r in rows)
    shapes = {r.name: r.output_shape for r in rows}
    assert shapes["features.0"] == (96, 55, 55) and shapes["features.3"] == (96, 27, 27)
    assert shapes["features.7"] == (256, 13, 13) and shapes["features.14"] == (256, 6, 6)
    assert shapes["flatten"] == (9216,)
    text = alexnet.format_summary(rows, totals)
    assert "60,965,224" in text and "37,752,832" in text


def test_summary_other_input_size():
    """torchvision's adaptive pool takes any size >= 63; a fixed-size variant is rebuilt for the input."""
    rows, totals = alexnet.summary("torchvision", (3, 100, 100))
    shapes = {r.name: r.output_shape for r in rows}
    assert shapes["features.12"] == (256, 2, 2) and shapes["avgpool"] == (256, 6, 6)
    assert totals["params"] == 61_100_840
    rows, totals = alexnet.summary("cifar", (1, 40, 40))      # 40 -> 36 -> 17 -> 13 -> 6
    assert {r.name: r.output_shape for r in rows}["flatten"] == (64 * 6 * 6,)


# ============================================================================ LRN mapping
def tf_lrn_numpy(x, depth_radius, bias, alpha, beta):
    """tf.nn.local_response_normalization, written from TensorFlow's docs, on NCHW:
    sqr_sum[c] = sum(x[c - r : c + r + 1] ** 2);  out = x / (bias + alpha * sqr_sum) ** beta."""
    c = x.shape[1]
    out = np.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - depth_radius), min(c, i + depth_radius + 1)
        sqr_sum = (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, i] = x[:, i] / (bias + alpha * sqr_sum) ** beta
    return out


@pytest.mark.parametrize("r,bias,alpha,beta", [(2, 1.0, 1e-4, 0.75), (1, 2.0, 0.3, 0.5), (3, 0.5, 0.05, 1.0)])
def test_tf_lrn_mapping(r, bias, alpha, beta):
    x = np.random.default_rng(r).standard_normal((2, 9, 4, 5))
    ours = F.local_response_norm(md.tensor(x), **alexnet.tf_lrn_to_torch(r, bias, alpha, beta))
    np.testing.assert_allclose(ours.numpy(), tf_lrn_numpy(x, r, bias, alpha, beta), rtol=1e-10, atol=1e-12)


def test_tf_lrn_variant_uses_the_mapping():
    lrns = [m for m in alexnet.build("tf-lrn", width=0.25).features if type(m).__name__ == "LocalResponseNorm"]
    assert len(lrns) == 2
    x = np.random.default_rng(0).standard_normal((1, 96, 3, 3))
    np.testing.assert_allclose(lrns[0](md.tensor(x)).numpy(), tf_lrn_numpy(x, 2, 1.0, 1e-4, 0.75),
                               rtol=1e-10, atol=1e-12)


# ============================================================================ options, init, recipes
VARIANT_INPUTS = {"paper": (3, 227, 227), "torchvision": (3, 224, 224), "d2l": (1, 224, 224),
                 "keras-bn": (3, 224, 224), "tf-lrn": (3, 227, 227), "cifar": (3, 32, 32), "mini": (1, 28, 28)}


def test_names_and_input_shapes():
    assert alexnet.names() == list(VARIANT_INPUTS)
    for name, shape in VARIANT_INPUTS.items():
        model = alexnet.build(name, width=0.25)   # a quarter of the widths: quick to build, same input
        assert model.input_shape == shape
        assert model.fixed_size == (name != "torchvision")


def test_option_pool_norm_width():
    rows, _ = alexnet.summary(alexnet.build("mini", pool="nonoverlap"))   # 28 -> 14 -> 7 -> 3
    assert {r.name: r.output_shape for r in rows}["flatten"] == (128 * 3 * 3,)
    kinds = lambda m: [type(layer).__name__ for layer in m.features]  # noqa: E731
    assert kinds(alexnet.build("mini", norm="bn")).count("BatchNorm2d") == 2
    assert "LocalResponseNorm" not in kinds(alexnet.build("mini", norm="none"))
    assert kinds(alexnet.build("d2l", norm="lrn", width=0.25)).count("LocalResponseNorm") == 0  # d2l has no norm positions
    assert kinds(alexnet.build("paper", norm="bn", width=0.25)).count("BatchNorm2d") == 2
    half = alexnet.build("mini", width=0.5)
    convs = [m for m in half.features if type(m).__name__ == "Conv2d"]
    assert [c.weight.shape[0] for c in convs] == [32, 64, 96, 96, 64]
    assert half.classifier[1].weight.shape == (256, 64 * 2 * 2)
    assert not any(type(m).__name__ == "Dropout" for m in alexnet.build("mini", dropout=0.0).classifier)
    one = alexnet.build("paper", in_channels=1, input_size=99, num_classes=7, width=0.25)
    assert one.input_shape == (1, 99, 99) and one.classifier[-1].weight.shape[0] == 7


@pytest.mark.parametrize("name", alexnet.names())
@pytest.mark.parametrize("width", [0.1, 0.03])
def test_any_width_keeps_every_conv_input_divisible_by_its_groups(name, width):
    """A conv's outputs feed the next conv: rounding respects both convs' groups (0.1 used to fail)."""
    model = alexnet.build(name, width=width)
    convs = [m for m in model.features if type(m).__name__ == "Conv2d"]
    for before, conv in zip(convs, convs[1:]):
        assert before.weight.shape[0] % conv.groups == 0
        assert conv.weight.shape[1] * conv.groups == before.weight.shape[0]


def test_initialisations():
    md.manual_seed(0)
    paper = alexnet.build("paper", width=0.25)
    layers = [m for m in list(paper.features) + list(paper.classifier) if type(m).__name__ in ("Conv2d", "Linear")]
    assert [float(m.bias.numpy().mean()) for m in layers] == [0, 1, 0, 1, 1, 1, 1, 0]  # conv2,4,5 fc6,7
    assert all(np.allclose(m.bias.numpy(), m.bias.numpy()[0]) for m in layers)
    assert abs(layers[5].weight.numpy().std() - 0.01) < 5e-4
    mini = alexnet.build("mini")
    fc = mini.classifier[1]
    assert abs(fc.weight.numpy().std() - np.sqrt(2 / 512)) < 0.05 * np.sqrt(2 / 512)
    assert not fc.bias.numpy().any()
    d2l = alexnet.build("d2l", width=0.25)
    w = d2l.features[0].weight.numpy()                    # (24, 1, 11, 11): fan_in 121, fan_out 24*121
    bound = np.sqrt(6 / (121 + 24 * 121))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    tv = alexnet.build("cifar", init="torch")              # PyTorch's default: bias U(+-1/sqrt(fan_in))
    assert np.abs(tv.features[0].bias.numpy()).max() <= 1 / np.sqrt(75)


def test_recipes():
    keys = {"optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs", "schedule", "dataset",
            "input_shape"}
    for name in alexnet.names():
        r = alexnet.recipe(name)
        assert keys <= set(r), name
        assert tuple(r["input_shape"]) == VARIANT_INPUTS[name]
    assert alexnet.recipe("paper")["optimizer"] == "sgd-paper"
    assert alexnet.recipe("keras-bn")["optimizer"] == "adam" and alexnet.recipe("keras-bn")["batch_size"] == 32
    alexnet.recipe("mini")["lr"] = 123.0
    assert alexnet.recipe("mini")["lr"] != 123.0
    with pytest.raises(ValueError, match="known variants"):
        alexnet.recipe("lenet")


# ============================================================================ bad input
def test_wrong_input_size_names_variant_and_sizes():
    model = alexnet.build("paper", width=0.25)
    with pytest.raises(ValueError, match=r"'paper'.*3x227x227.*3x224x224"):
        model(md.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match=r"'mini'.*\(N, 1, H, W\)"):
        alexnet.build("mini")(md.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"'mini'"):
        alexnet.build("mini")(md.zeros(1, 28, 28))


def test_adaptive_variant_minimum_size():
    # pool3 needs a 3x3 input, so pool2 a 7x7 one, pool1 7 -> 15, conv1 (H + 4 - 11) // 4 + 1 >= 15: H >= 63
    model = alexnet.build("torchvision", num_classes=3, width=0.25)
    assert model.min_size == 63
    model.eval()
    with md.no_grad():
        assert model(md.zeros(1, 3, 63, 70)).shape == (1, 3)
    with pytest.raises(ValueError, match=r"'torchvision'.*62x62.*at least 63"):
        model(md.zeros(1, 3, 62, 62))


def test_bad_names_and_options():
    with pytest.raises(ValueError, match=r"unknown AlexNet variant 'vgg'.*paper.*torchvision.*mini"):
        alexnet.build("vgg")
    with pytest.raises(ValueError, match=r"unknown option.*'depth'.*norm.*pool.*dropout"):
        alexnet.build("mini", depth=3)
    for option, value, pattern in [("norm", "group", "norm must be one of"), ("pool", "avg", "pool must be one of"),
                                   ("init", "lecun", "init must be one of"), ("dropout", 1.0, "dropout"),
                                   ("width", 0, "width"), ("in_channels", 0, "in_channels")]:
        with pytest.raises(ValueError, match=pattern):
            alexnet.build("mini", **{option: value})
    # cifar: conv 19 -> 15, pool -> 7, conv -> 3, pool -> 1; at 18 the last pool gets a 2x2 map
    with pytest.raises(ValueError, match=r"input size 18x18 is too small.*smallest square input is 19"):
        alexnet.build("cifar", input_size=18)
    with pytest.raises(ValueError, match="num_classes"):
        alexnet.build("mini", num_classes=0)
    tiny = alexnet.build("mini", width=1 / 64)   # conv1's single channel used to clash with conv2's groups=2
    assert tiny(md.tensor(np.zeros((1, 1, 28, 28), np.float32))).shape == (1, 10)


# ============================================================================ command line
def test_cli_summary_prints_total():
    out = subprocess.run([sys.executable, "-m", "alexnet", "summary", "paper"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "60,965,224" in out.stdout and "features.0" in out.stdout and "Conv2d" in out.stdout


def test_cli_in_process_input_option_and_errors(capsys):
    assert main(["summary", "cifar", "--input", "3x40x40"]) == 0
    assert f"{64 * 6 * 6 * 384 + 384:,}" in capsys.readouterr().out   # fc6 for a 40x40 input
    assert main(["summary", "torchvision", "--input", "3x32x32"]) == 2
    assert "too small" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["summary", "lenet"])
