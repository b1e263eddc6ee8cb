"""AdamW, RMSprop, Adadelta and the schedulers MultiStepLR, LambdaLR, CosineAnnealingLR and OneCycleLR
against torch.optim; hyper-parameter checks, parameter groups, state dicts."""
import math
import warnings

import numpy as np
import pytest
import torch

import minidl as md
from minidl import optim

SHAPES = [(3, 4), (5,), (2, 3, 3)]
# float64: the same formulas in the same order, so only rounding differs; float32: a few ulps per step
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


def _run_both(make_ours, make_theirs, dtype, steps=5):
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [md.tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt, topt = make_ours(ours), make_theirs(theirs)
    for _ in range(steps):
        for p, q in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad, q.grad = md.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    return ours, theirs, opt, topt


OPTIMIZERS = [
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=5e-2, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.0)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=1e-2)),
    ("RMSprop", dict(lr=1e-2, momentum=0.9)),
    ("RMSprop", dict(lr=1e-2, centered=True)),
    ("RMSprop", dict(lr=1e-2, momentum=0.8, centered=True, weight_decay=1e-3)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, config", OPTIMIZERS)
def test_optimizer_matches_torch(dtype, name, config):
    ours, theirs, opt, topt = _run_both(lambda p: getattr(optim, name)(p, **config),
                                        lambda p: getattr(torch.optim, name)(p, **config), dtype)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), **TOL[dtype])
        for key, value in topt.state[q].items():
            np.testing.assert_allclose(np.asarray(opt.state[id(p)][key]), value.numpy(), **TOL[dtype], err_msg=key)


def test_adamw_decays_apart_from_the_gradient():
    """With a zero gradient Adam's m and v stay 0, so AdamW's only change is w *= 1 - lr * wd."""
    w = md.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
    w.grad = md.tensor(np.zeros(2))
    opt.step()
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0]) * (1 - 0.1 * 0.5), rtol=1e-15)


@pytest.mark.parametrize("name, config", [o for o in OPTIMIZERS if o[0] != "AdamW" or o[1].get("weight_decay")])
def test_state_dict_round_trip(name, config):
    rng = np.random.default_rng(3)
    params = [md.tensor(rng.standard_normal(s), requires_grad=True) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(5)]
    opt = getattr(optim, name)(params, **config)

    def step(opt, params, gs):
        for p, g in zip(params, gs):
            p.grad = md.tensor(g)
        opt.step()

    for gs in grads[:2]:
        step(opt, params, gs)
    clone = [md.tensor(p.numpy(), requires_grad=True) for p in params]
    opt2 = getattr(optim, name)(clone, **config)
    opt2.load_state_dict(opt.state_dict())
    for gs in grads[2:]:
        step(opt, params, gs)
        step(opt2, clone, gs)
    for p, q in zip(params, clone):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_param_groups_have_their_own_lr():
    a, b = md.tensor(np.ones(2), requires_grad=True), md.tensor(np.ones(2), requires_grad=True)
    opt = optim.RMSprop([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    a.grad, b.grad = md.tensor(np.ones(2)), md.tensor(np.ones(2))
    opt.step()
    # first step from s = 0: s = (1 - alpha) g^2, so the step is lr / (sqrt(1 - alpha) + eps)
    step = 1 / (math.sqrt(1 - 0.99) + 1e-8)
    np.testing.assert_allclose(a.numpy(), 1 - 0.01 * step, rtol=1e-12)
    np.testing.assert_allclose(b.numpy(), 1 - 0.1 * step, rtol=1e-12)
    c = md.tensor(np.ones(1), requires_grad=True)
    opt.add_param_group({"params": [c], "alpha": 0.5})
    assert opt.param_groups[2]["alpha"] == 0.5 and opt.param_groups[2]["lr"] == 0.01
    with pytest.raises(ValueError, match="more than one group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="Invalid learning rate: -0.5"):
        opt.add_param_group({"params": [md.tensor(np.ones(1), requires_grad=True)], "lr": -0.5})


def test_zero_grad_set_to_none():
    p = md.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adadelta([p])
    p.grad = md.tensor(np.ones(2))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), 0)
    opt.zero_grad()
    assert p.grad is None


def _p():
    return [md.tensor(np.ones(2), requires_grad=True)]


@pytest.mark.parametrize("make, match", [
    (lambda: optim.SGD(_p(), lr=-1), r"Invalid learning rate: -1\b"),
    (lambda: optim.SGD(_p(), lr=float("nan")), "Invalid learning rate: nan"),
    (lambda: optim.SGD(_p(), lr=float("inf")), "Invalid learning rate: inf"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=1.0), "Invalid momentum value: 1.0"),
    (lambda: optim.SGD(_p(), lr=0.1, dampening=2.0), "Invalid dampening value"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=0.0, nesterov=True), "requires a momentum and zero dampening"),
    (lambda: optim.Adam(_p(), lr=float("inf")), "Invalid learning rate: inf"),
    (lambda: optim.Adam(_p(), betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (lambda: optim.Adam(_p(), betas=(0.9, -0.1)), "Invalid beta parameter at index 1"),
    (lambda: optim.AdamW(_p(), eps=-1e-8), "Invalid epsilon value"),
    (lambda: optim.AdamW(_p(), weight_decay=-0.1), "Invalid weight_decay value"),
    (lambda: optim.RMSprop(_p(), alpha=-0.1), "Invalid alpha value"),
    (lambda: optim.RMSprop(_p(), momentum=-0.1), "Invalid momentum value"),
    (lambda: optim.Adadelta(_p(), rho=1.5), "Invalid rho value"),
    (lambda: optim.Adadelta(_p(), lr=-1.0), "Adadelta: lr must be >= 0"),
    (lambda: optim.SGD([{"params": _p(), "lr": 0.1, "betas": (0.9, 0.9)}]), "unknown options"),
])
def test_bad_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_numeric_hyper_parameter_is_a_type_error():
    with pytest.raises(TypeError, match="learning rate"):
        optim.AdamW(_p(), lr="0.1")
    with pytest.raises(NotImplementedError, match="amsgrad"):
        optim.Adam(_p(), amsgrad=True)


# ------------------------------------------------------------------ schedulers
def _lr_sequence(lib, make_opt, make_sched, steps):
    """(lr, momentum or beta1) after construction and after each of ``steps`` scheduler steps."""
    if lib is torch:
        params = [torch.ones(2, requires_grad=True)]
        opt = make_opt(torch.optim, params)
        sched = make_sched(torch.optim.lr_scheduler, opt)
    else:
        params = [md.tensor(np.ones(2), requires_grad=True)]
        opt = make_opt(optim, params)
        sched = make_sched(optim.lr_scheduler, opt)

    def now():
        g = opt.param_groups[-1]
        return [g["lr"], g.get("momentum", g.get("betas", (0.0,))[0]), sched.get_last_lr()[-1]]

    out = [now()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: scheduler.step() before optimizer.step()
        for _ in range(steps):
            sched.step()
            out.append(now())
    return np.array(out)


SGD = lambda m, p: m.SGD(p, lr=0.1, momentum=0.9)  # noqa: E731
ADAM = lambda m, p: m.Adam(p, lr=0.1)  # noqa: E731


def GROUPS(m, p):  # noqa: N802 - two groups with their own lr
    extra = torch.ones(1, requires_grad=True) if m is torch.optim else md.tensor(np.ones(1), requires_grad=True)
    return m.SGD([{"params": p}, {"params": [extra], "lr": 0.5}], lr=0.1, momentum=0.5)


SCHEDULERS = [
    ("multistep", SGD, lambda s, o: s.MultiStepLR(o, milestones=[3, 7, 7, 12], gamma=0.5), 20),
    ("multistep groups", GROUPS, lambda s, o: s.MultiStepLR(o, milestones=[2, 5]), 8),
    ("lambda", SGD, lambda s, o: s.LambdaLR(o, lambda e: 0.95 ** e + 0.01 * e), 20),
    ("lambda per group", GROUPS, lambda s, o: s.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.9 ** e]), 10),
    ("cosine", SGD, lambda s, o: s.CosineAnnealingLR(o, T_max=10), 35),
    ("cosine eta_min", GROUPS, lambda s, o: s.CosineAnnealingLR(o, T_max=7, eta_min=0.01), 30),
    ("onecycle", SGD, lambda s, o: s.OneCycleLR(o, max_lr=1.0, total_steps=50), 50),
    ("onecycle adam linear", ADAM, lambda s, o: s.OneCycleLR(o, max_lr=0.3, epochs=4, steps_per_epoch=6,
                                                               anneal_strategy="linear"), 24),
    ("onecycle three-phase", GROUPS, lambda s, o: s.OneCycleLR(o, max_lr=[0.2, 0.4], total_steps=33, pct_start=0.25,
                                                                 three_phase=True, div_factor=10.0,
                                                                 final_div_factor=100.0, base_momentum=0.8,
                                                                 max_momentum=0.9), 33),
    ("onecycle no momentum", SGD, lambda s, o: s.OneCycleLR(o, max_lr=0.5, total_steps=20, cycle_momentum=False), 20),
]


@pytest.mark.parametrize("name, make_opt, make_sched, steps", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_scheduler_matches_torch(name, make_opt, make_sched, steps):
    ours = _lr_sequence(md, make_opt, make_sched, steps)
    theirs = _lr_sequence(torch, make_opt, make_sched, steps)
    assert len(np.unique(theirs[:, 0])) > 2   # the schedule does change the lr
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_onecycle_refuses_to_step_past_the_end():
    opt = optim.SGD(_p(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        sched.step()


def test_onecycle_needs_momentum_or_betas_to_cycle():
    with pytest.raises(ValueError, match="cycle_momentum"):
        optim.lr_scheduler.OneCycleLR(optim.Adadelta(_p()), max_lr=1.0, total_steps=10)


@pytest.mark.parametrize("make", [
    lambda o: optim.lr_scheduler.MultiStepLR(o, [2, 4]),
    lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=5),
    lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=12),
])
def test_scheduler_state_dict_round_trip(make):
    opt = optim.SGD(_p(), lr=0.1, momentum=0.9)
    sched = make(opt)
    for _ in range(4):
        sched.step()
    opt2 = optim.SGD(_p(), lr=0.1, momentum=0.9)
    sched2 = make(opt2)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    for _ in range(6):
        sched.step()
        sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()
        assert opt.param_groups[0]["momentum"] == opt2.param_groups[0]["momentum"]
