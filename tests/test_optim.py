"""Optimizers and schedulers: the fused kernels against the reference, and minidl against torch.optim."""
import numpy as np
import pytest
import torch

import minidl as md
from minidl import optim
from minidl.kernels import adam as adam_kernels
from minidl.kernels import sgd as sgd_kernels

SHAPES = [(3, 4), (5,), (2, 3, 3, 3)]
SGD_CONFIGS = [
    dict(momentum=0.0),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.9, weight_decay=5e-4),
    dict(momentum=0.0, weight_decay=1e-2),
    dict(momentum=0.9, nesterov=True, weight_decay=1e-2),
]
ADAM_CONFIGS = [dict(), dict(weight_decay=1e-2), dict(betas=(0.8, 0.99), eps=1e-6, lr=0.05)]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(dtype, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def _run_both(make_ours, make_theirs, dtype, steps=5):
    """Same initial parameters and the same gradients for minidl and torch, ``steps`` steps."""
    ours = [md.tensor(a, requires_grad=True) for a in _params(dtype)]
    theirs = [torch.tensor(a, requires_grad=True) for a in _params(dtype)]
    opt_ours, opt_theirs = make_ours(ours), make_theirs(theirs)
    for grads in _grads(dtype, steps):
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = md.tensor(g), torch.tensor(g)
        opt_ours.step()
        opt_theirs.step()
    return ours, theirs, opt_ours, opt_theirs


# ----------------------------------------------------------- fused == reference
def _kernel_runs(versions, dtype, steps=4, **settings):
    results = []
    for fn in versions:
        w, state = np.random.default_rng(0).standard_normal((7, 13)).astype(dtype), {}
        for g in np.random.default_rng(1).standard_normal((steps, 7, 13)).astype(dtype):
            fn(w, g, state, **settings)
        results.append((w, state))
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", SGD_CONFIGS + [dict(momentum=0.9, weight_decay=5e-4, rule="paper")])
def test_sgd_fused_equals_reference(dtype, config):
    settings = dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, rule="pytorch")
    settings.update(config)
    (w_ref, s_ref), *others = _kernel_runs(
        (sgd_kernels.sgd_step_reference, sgd_kernels.sgd_step_numba, sgd_kernels.sgd_step_xp), dtype, **settings)
    for w, state in others:
        assert w.dtype == dtype
        np.testing.assert_array_max_ulp(w, w_ref, maxulp=2)
        assert set(state) == set(s_ref)
        if "momentum_buffer" in state:
            np.testing.assert_array_max_ulp(state["momentum_buffer"], s_ref["momentum_buffer"], maxulp=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_fused_equals_reference(dtype, weight_decay):
    settings = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    (w_ref, s_ref), *others = _kernel_runs(
        (adam_kernels.adam_step_reference, adam_kernels.adam_step_numba, adam_kernels.adam_step_xp), dtype, **settings)
    for w, state in others:
        np.testing.assert_array_max_ulp(w, w_ref, maxulp=2)
        assert state["step"] == s_ref["step"] == 4
        for key in ("exp_avg", "exp_avg_sq"):
            assert state[key].dtype == dtype
            np.testing.assert_array_max_ulp(state[key], s_ref[key], maxulp=2)


def test_cupy_kernel_bodies_mirror_xp():
    """The ElementwiseKernel sources contain the statements that sgd_step_xp/adam_step_xp run."""
    body = sgd_kernels._sgd_body(paper=False, use_momentum=True, first=False, nesterov=True, decay=True)
    assert body == ("T gi = g; gi = gi + wd * w; T vi = v * mu + od * gi; v = vi; gi = gi + mu * vi;"
                    " w = w - lr * gi;")
    assert "w = w + vi" in sgd_kernels._sgd_body(paper=True, use_momentum=True, first=False, nesterov=False,
                                                 decay=True)
    assert "sqrt(vi) / bc2_sqrt + eps" in adam_kernels._ADAM_BODY


def test_non_contiguous_parameter_falls_back():
    w = np.random.default_rng(0).standard_normal((4, 6)).T
    w_ref, g = w.copy(), np.ones_like(w)
    sgd_kernels.sgd_step_numba(w, g, {}, lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                               rule="pytorch")
    np.testing.assert_allclose(w, w_ref - 0.1)


# ---------------------------------------------------------- against torch.optim
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_matches_torch(dtype, config):
    ours, theirs, opt, topt = _run_both(lambda p: optim.SGD(p, lr=0.05, **config),
                                        lambda p: torch.optim.SGD(p, lr=0.05, **config), dtype)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), **TOL[dtype])
        if config["momentum"]:
            np.testing.assert_allclose(opt.state[id(p)]["momentum_buffer"], topt.state[q]["momentum_buffer"].numpy(),
                                       **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", ADAM_CONFIGS)
def test_adam_matches_torch(dtype, config):
    config = {"lr": 1e-2, **config}
    ours, theirs, opt, topt = _run_both(lambda p: optim.Adam(p, **config), lambda p: torch.optim.Adam(p, **config),
                                        dtype)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), **TOL[dtype])
        state, tstate = opt.state[id(p)], topt.state[q]
        assert state["step"] == int(tstate["step"]) == 5
        np.testing.assert_allclose(state["exp_avg"], tstate["exp_avg"].numpy(), **TOL[dtype])
        np.testing.assert_allclose(state["exp_avg_sq"], tstate["exp_avg_sq"].numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_paper_rule_against_numpy(dtype):
    lr = 0.01
    ours = [md.tensor(a, requires_grad=True) for a in _params(dtype)]
    opt = optim.SGD(ours, lr=lr, momentum=0.9, weight_decay=0.0005, rule="paper")
    ws = [a.astype(np.float64) for a in _params(dtype)]
    vs = [np.zeros_like(w) for w in ws]
    for grads in _grads(dtype, 5):
        for p, g in zip(ours, grads):
            p.grad = md.tensor(g)
        opt.step()
        for i, g in enumerate(grads):  # the paper's update (section 5), in float64
            vs[i] = 0.9 * vs[i] - 0.0005 * lr * ws[i] - lr * g
            ws[i] = ws[i] + vs[i]
    for p, w in zip(ours, ws):
        np.testing.assert_allclose(p.numpy(), w, **TOL[dtype])


def test_parameters_without_grad_are_skipped():
    a, b = md.tensor(np.ones(3), requires_grad=True), md.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    a.grad = md.tensor(np.ones(3))
    opt.step()
    np.testing.assert_array_equal(a.numpy(), 0.5)
    np.testing.assert_array_equal(b.numpy(), 1.0)
    assert id(b) not in opt.state


# ------------------------------------------------------------------ schedulers
def _lrs_over_epochs(scheduler, optimizer, epochs, metrics=None):
    lrs = []
    for epoch in range(epochs):
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[epoch])
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


@pytest.mark.filterwarnings("ignore:Detected call of")  # torch: scheduler.step() without optimizer.step()
@pytest.mark.parametrize("step_size,gamma", [(1, 0.5), (3, 0.1), (4, 0.7)])
def test_step_lr_matches_torch(step_size, gamma):
    opt = optim.SGD([md.tensor(np.ones(2), requires_grad=True)], lr=0.1)
    topt = torch.optim.SGD([torch.ones(2, requires_grad=True)], lr=0.1)
    ours = _lrs_over_epochs(optim.lr_scheduler.StepLR(opt, step_size, gamma), opt, 12)
    theirs = _lrs_over_epochs(torch.optim.lr_scheduler.StepLR(topt, step_size, gamma), topt, 12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


METRICS = [1.0, 0.9, 0.95, 0.91, 0.9, 0.92, 0.93, 0.5, 0.5, 0.5, 0.5, 0.49999, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]


@pytest.mark.parametrize("options", [
    dict(patience=4),
    dict(mode="min", factor=0.5, patience=1),
    dict(mode="max", factor=0.1, patience=2, threshold=0.01),
    dict(mode="min", factor=0.5, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2),
    dict(mode="min", factor=0.1, patience=0, min_lr=1e-4),
])
def test_reduce_on_plateau_matches_torch(options):
    opt = optim.SGD([md.tensor(np.ones(2), requires_grad=True)], lr=0.1)
    topt = torch.optim.SGD([torch.ones(2, requires_grad=True)], lr=0.1)
    ours = _lrs_over_epochs(optim.lr_scheduler.ReduceLROnPlateau(opt, **options), opt, len(METRICS), METRICS)
    theirs = _lrs_over_epochs(torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **options), topt, len(METRICS), METRICS)
    assert len(set(theirs)) > 1  # the sequence exercises at least one reduction
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# ------------------------------------------------------------------ state dicts
@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-3)])
def test_optimizer_state_dict_round_trip(make):
    grads = _grads(np.float32, 5)
    params = [md.tensor(a, requires_grad=True) for a in _params(np.float32)]
    opt = make(params)

    def step(opt, params, gs):
        for p, g in zip(params, gs):
            p.grad = md.tensor(g)
        opt.step()

    for gs in grads[:2]:
        step(opt, params, gs)
    saved = opt.state_dict()
    assert all(isinstance(v, (np.ndarray, int, float)) for s in saved["state"].values() for v in s.values())
    clone = [md.tensor(p.numpy(), requires_grad=True) for p in params]
    opt2 = make(clone)
    opt2.load_state_dict(saved)
    for gs in grads[2:]:
        step(opt, params, gs)
        step(opt2, clone, gs)
    for p, q in zip(params, clone):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_scheduler_state_dict_round_trip():
    opt = optim.SGD([md.tensor(np.ones(2), requires_grad=True)], lr=0.1)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for m in METRICS[:5]:
        sched.step(m)
    opt2 = optim.SGD([md.tensor(np.ones(2), requires_grad=True)], lr=opt.param_groups[0]["lr"])
    sched2 = optim.lr_scheduler.ReduceLROnPlateau(opt2, patience=1, factor=0.5)
    sched2.load_state_dict(sched.state_dict())
    assert _lrs_over_epochs(sched, opt, 8, METRICS[5:]) == _lrs_over_epochs(sched2, opt2, 8, METRICS[5:])


# --------------------------------------------------------------- bad arguments
def _p():
    return [md.tensor(np.ones(2), requires_grad=True)]


@pytest.mark.parametrize("make,match", [
    (lambda: optim.SGD(_p(), lr=-1.0), "SGD: lr, momentum and weight_decay must be >= 0"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=-0.5), "SGD: lr, momentum"),
    (lambda: optim.SGD(_p(), lr=0.1, weight_decay=-1e-4), "SGD: lr, momentum"),
    (lambda: optim.SGD(_p(), lr=0.1, nesterov=True), "nesterov"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda: optim.SGD(_p(), lr=0.1, rule="bogus"), "rule must be one of"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=0.9, dampening=0.5, rule="paper"), "paper's rule"),
    (lambda: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda: optim.Adam(_p(), lr=-1e-3), "Adam"),
    (lambda: optim.Adam(_p(), betas=(0.9, 1.0)), "betas"),
    (lambda: optim.Adam(_p(), eps=-1.0), "Adam"),
    (lambda: optim.lr_scheduler.StepLR(optim.SGD(_p(), lr=0.1), step_size=0), "StepLR: step_size"),
    (lambda: optim.lr_scheduler.ReduceLROnPlateau(optim.SGD(_p(), lr=0.1), mode="avg"), "ReduceLROnPlateau: mode"),
    (lambda: optim.lr_scheduler.ReduceLROnPlateau(optim.SGD(_p(), lr=0.1), factor=1.0), "factor"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_load_state_dict_mismatch():
    saved = optim.SGD(_p() + _p(), lr=0.1).state_dict()
    with pytest.raises(ValueError, match="do not match"):
        optim.SGD(_p(), lr=0.1).load_state_dict(saved)


@pytest.mark.gpu
@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
                                  lambda p: optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4, rule="paper"),
                                  lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-3)])
def test_gpu_kernels_match_cpu(make):
    grads = _grads(np.float32, 3)
    cpu = [md.tensor(a, requires_grad=True) for a in _params(np.float32)]
    gpu = [md.tensor(a, requires_grad=True, device="gpu") for a in _params(np.float32)]
    opt_cpu, opt_gpu = make(cpu), make(gpu)
    for gs in grads:
        for p, q, g in zip(cpu, gpu, gs):
            p.grad, q.grad = md.tensor(g), md.tensor(g, device="gpu")
        opt_cpu.step()
        opt_gpu.step()
    for p, q in zip(cpu, gpu):  # nvcc may contract a*b+c into an FMA: equal to a few ulps, not bit for bit
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-6, atol=1e-7)
