"""kernels.implementation("reference") routes every F.* through the plain-NumPy references
(the benchmark relies on it), and they agree with the fast versions."""
import numpy as np
import pytest

import minidl as md
import minidl.functional as F
from minidl import kernels
from minidl.kernels import batchnorm, conv, dropout, lrn, pool

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 9, 9))
W = rng.standard_normal((6, 2, 3, 3))

CASES = {
    "conv2d": lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=2),
    "max_pool2d": lambda x, w: F.max_pool2d(x, 3, 2, 1),
    "avg_pool2d": lambda x, w: F.avg_pool2d(x, 2),
    "adaptive_avg_pool2d": lambda x, w: F.adaptive_avg_pool2d(x, (4, 3)),
    "local_response_norm": lambda x, w: F.local_response_norm(x, 3, 1e-2, 0.75, 2.0),
    "dropout": lambda x, w: F.dropout(x, 0.3),
    "batch_norm": lambda x, w: F.batch_norm(x, np.zeros(4), np.ones(4), training=True),
}


def run(name, impl):
    md.manual_seed(3)
    x, w = md.tensor(X, requires_grad=True), md.tensor(W, requires_grad=True)
    with kernels.implementation(impl):
        y = CASES[name](x, w)
        y.backward(np.cos(np.arange(y.numel())).reshape(y.shape))
    return y.numpy(), x.grad.numpy()


@pytest.mark.parametrize("name", list(CASES))
def test_reference_and_fast_agree(name, monkeypatch):
    calls = []
    for module in (conv, pool, lrn, dropout, batchnorm):
        for attr in dir(module):
            if attr.endswith("_reference"):
                original = getattr(module, attr)
                monkeypatch.setattr(module, attr, lambda *a, _f=original, _n=attr, **k: calls.append(_n) or _f(*a, **k))
    y_ref, g_ref = run(name, "reference")
    assert calls, f"{name}: no reference kernel ran under implementation('reference')"
    n_ref = len(calls)
    y_fast, g_fast = run(name, "fast")
    assert len(calls) == n_ref, f"{name}: a reference kernel ran under implementation('fast')"
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_fast, g_ref, rtol=1e-10, atol=1e-12)


def test_sgd_step_reference_and_fast_agree():
    results = []
    for impl in ("reference", "fast"):
        p = md.nn.Parameter(np.linspace(-1, 1, 10))
        opt = md.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=1e-2, rule="paper")
        with kernels.implementation(impl):
            for _ in range(3):
                p.grad = md.tensor(np.sin(p.numpy()))
                opt.step()
        results.append(p.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_unknown_implementation():
    with pytest.raises(ValueError, match="reference"):
        with kernels.implementation("fortran"):
            pass
