"""kernels.implementation(...) routes every F.* through one kind of version: "reference" (the
plain-NumPy references: the benchmark relies on it), "xp" (the array-generic versions the GPU
runs, here with NumPy) or "fast" (Numba).  All three agree, and every ``*_xp`` function in
minidl.kernels runs here at least once, held to the reference."""
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import minidl as md
import minidl.functional as F
from minidl import kernels
from minidl.kernels import elementwise

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 9, 9))
W = rng.standard_normal((6, 2, 3, 3))

CASES = {
    "conv2d": lambda x, w: F.conv2d(x, w, md.tensor(np.arange(6.0)), stride=2, padding=1, groups=2),
    "max_pool2d": lambda x, w: F.max_pool2d(x, 3, 2, 1),
    "avg_pool2d": lambda x, w: F.avg_pool2d(x, 2),
    "adaptive_avg_pool2d": lambda x, w: F.adaptive_avg_pool2d(x, (4, 3)),
    "local_response_norm": lambda x, w: F.local_response_norm(x, 3, 1e-2, 0.75, 2.0),
    "dropout": lambda x, w: F.dropout(x, 0.3),
    "batch_norm": lambda x, w: F.batch_norm(x, np.zeros(4), np.ones(4), training=True),
    "gradient accumulation": lambda x, w: x * 2 + x * 3,   # x's two gradients are summed (elementwise.add)
}
KERNEL_MODULES = [importlib.import_module(f"minidl.kernels.{m.name}") for m in pkgutil.iter_modules(kernels.__path__)]


def _versions(suffix):
    """{(module, name): function} of every kernel version whose name ends in ``suffix``."""
    return {(m, name): f for m in KERNEL_MODULES for name, f in vars(m).items()
            if name.endswith(suffix) and inspect.isfunction(f) and f.__module__ == m.__name__}


def _record(monkeypatch, suffix, calls):
    for (module, name), f in _versions(suffix).items():
        monkeypatch.setattr(module, name, lambda *a, _f=f, _n=f"{module.__name__}.{name}", **k: calls.append(_n)
                            or _f(*a, **k))


def run(name, impl):
    md.manual_seed(3)
    x, w = md.tensor(X, requires_grad=True), md.tensor(W, requires_grad=True)
    with kernels.implementation(impl):
        y = CASES[name](x, w)
        y.backward(np.cos(np.arange(y.numel())).reshape(y.shape))
    return y.numpy(), x.grad.numpy(), None if w.grad is None else w.grad.numpy()


def optimizer_steps(impl, make_optimizer):
    p = md.nn.Parameter(np.linspace(-1, 1, 10))
    opt = make_optimizer([p])
    with kernels.implementation(impl):
        for _ in range(3):
            p.grad = md.tensor(np.sin(p.numpy()))
            opt.step()
    return p.numpy()


OPTIMIZERS = {
    "sgd (paper)": lambda p: md.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2, rule="paper"),
    "sgd (nesterov)": lambda p: md.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
    "adam": lambda p: md.optim.Adam(p, lr=0.1, weight_decay=1e-2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_xp_and_fast_agree(name, monkeypatch):
    monkeypatch.setattr(elementwise, "PARALLEL_MIN", 1)   # else add_numba hands small arrays to add_reference
    calls = {"_reference": [], "_xp": []}
    for suffix, seen in calls.items():
        _record(monkeypatch, suffix, seen)
    results = {}
    for impl in ("reference", "xp", "fast"):
        before = {suffix: len(seen) for suffix, seen in calls.items()}
        results[impl] = run(name, impl)
        ran = {suffix: len(seen) - before[suffix] for suffix, seen in calls.items()}
        if impl == "fast":
            assert ran == {"_reference": 0, "_xp": 0}, f"{name}: a reference or xp version ran under 'fast'"
        else:
            assert ran[f"_{impl}"], f"{name}: no {impl} version ran under implementation({impl!r})"
    for impl in ("xp", "fast"):
        for ours, ref in zip(results[impl], results["reference"]):
            if ref is not None:
                np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12, err_msg=f"{name}: {impl}")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_step_versions_agree(name):
    ref = optimizer_steps("reference", OPTIMIZERS[name])
    for impl in ("xp", "fast"):
        np.testing.assert_allclose(optimizer_steps(impl, OPTIMIZERS[name]), ref, rtol=1e-12, err_msg=impl)


def test_every_xp_version_runs_in_these_tests(monkeypatch):
    """Issue: the GPU path must be exercised without a GPU.  A new ``*_xp`` kernel fails here until a
    case above reaches it (CASES for a differentiable op, OPTIMIZERS for an update)."""
    calls = []
    _record(monkeypatch, "_xp", calls)
    for name in CASES:
        run(name, "xp")
    for make in OPTIMIZERS.values():
        optimizer_steps("xp", make)
    missing = {f"{m.__name__}.{n}" for m, n in _versions("_xp")} - set(calls)
    assert not missing, f"never ran under implementation('xp'): {sorted(missing)}; add a case to this file"


def test_unknown_implementation():
    with pytest.raises(ValueError, match="reference"):
        with kernels.implementation("fortran"):
            pass
