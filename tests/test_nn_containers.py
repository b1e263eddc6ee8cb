"""ModuleList/ModuleDict, Module walking and apply, activation layers, gradient clipping and the
atomic load_state_dict, each against torch.nn where torch has the same thing."""
import numpy as np
import pytest
import torch

import minidl as md
from minidl import nn


def _build(self, mod):
    self.layers = mod.ModuleList([mod.Linear(4, 3), mod.Linear(3, 3)])
    self.heads = mod.ModuleDict({"a": mod.Linear(3, 2), "b": mod.Linear(3, 1)})


def _forward(self, x):
    for layer in self.layers:
        x = layer(x)
    return self.heads["a"](x)


class Net(nn.Module):
    def __init__(self, mod):
        super().__init__()
        _build(self, mod)

    forward = _forward


class TorchNet(torch.nn.Module):
    def __init__(self, mod):
        super().__init__()
        _build(self, mod)

    forward = _forward


def test_container_names_and_order_match_torch():
    ours, theirs = Net(nn), TorchNet(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()] == ["layers", "heads"]
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(md.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_module_list_editing_renumbers_like_torch():
    ours = nn.ModuleList([nn.Linear(1, 1), nn.ReLU()])
    theirs = torch.nn.ModuleList([torch.nn.Linear(1, 1), torch.nn.ReLU()])
    for m in (ours, theirs):
        m.insert(0, type(m[1])())                # ReLU at the front
        m.append(type(m[0])())
        m.extend([type(m[0])()])
        del m[1]
        m += [type(m[0])()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [type(c).__name__ for c in ours] == [type(c).__name__ for c in theirs]
    assert len(ours) == len(theirs) == 5 and isinstance(ours[-1], nn.ReLU) and len(ours[1:3]) == 2
    with pytest.raises(IndexError, match="out of range"):
        ours[5]
    with pytest.raises(TypeError, match="expected a Module"):
        ours.append(lambda x: x)


def test_module_dict_operations():
    d = nn.ModuleDict()
    d["conv"] = nn.Linear(2, 2)
    d.update([("act", nn.ReLU())])
    assert list(d.keys()) == ["conv", "act"] and "act" in d and len(d) == 2
    assert list(d.state_dict()) == ["conv.weight", "conv.bias"]
    assert isinstance(d.pop("act"), nn.ReLU) and list(d) == ["conv"]
    with pytest.raises(KeyError, match="no module named 'x'"):
        d["x"]
    with pytest.raises(KeyError, match="hide the attribute"):
        d["keys"] = nn.ReLU()


def test_apply_visits_children_first_and_returns_self():
    ours, theirs = Net(nn), TorchNet(torch.nn)
    seen, tseen = [], []
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    theirs.apply(lambda m: tseen.append(type(m).__name__))
    assert seen[:-1] == tseen[:-1] and (seen[-1], tseen[-1]) == ("Net", "TorchNet")


def test_apply_with_init_functions():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    net.apply(init_weights)
    assert all(not np.any(m.bias.numpy()) for m in net if isinstance(m, nn.Linear))
    bound = np.sqrt(6 / (3 + 4))
    assert np.abs(net[0].weight.numpy()).max() <= bound


@pytest.mark.parametrize("make, tmake", [
    (lambda: nn.Softmax(dim=1), lambda: torch.nn.Softmax(dim=1)),
    (lambda: nn.LogSoftmax(dim=0), lambda: torch.nn.LogSoftmax(dim=0)),
    (nn.Sigmoid, torch.nn.Sigmoid),
    (nn.Tanh, torch.nn.Tanh),
    (lambda: nn.LeakyReLU(0.1), lambda: torch.nn.LeakyReLU(0.1)),
    (nn.Identity, torch.nn.Identity),
])
def test_activation_layers_match_torch(make, tmake):
    x = np.random.default_rng(1).standard_normal((3, 4))
    np.testing.assert_allclose(make()(md.tensor(x)).numpy(), tmake()(torch.tensor(x)).numpy(), rtol=1e-12)


def _grads_pair(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    grads = [rng.standard_normal(s) * 3 for s in shapes]
    ours = [md.tensor(np.zeros(s), requires_grad=True) for s in shapes]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = md.tensor(g.copy()), torch.tensor(g.copy())
    return ours, theirs


@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2), (100.0, 2), (0.5, 1), (2.0, float("inf")), (1.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    ours, theirs = _grads_pair()
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    np.testing.assert_allclose(total.numpy(), ttotal.numpy(), rtol=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_matches_torch():
    ours, theirs = _grads_pair(1)
    nn.utils.clip_grad_value_(ours, 0.5)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


def test_clip_grad_norm_skips_missing_grads_and_refuses_nonfinite():
    a, b = md.tensor(np.ones(2), requires_grad=True), md.tensor(np.ones(2), requires_grad=True)
    a.grad = md.tensor(np.array([3.0, 4.0]))
    assert nn.utils.clip_grad_norm_([a, b], 1.0).item() == pytest.approx(5.0)
    a.grad = md.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="total norm"):
        nn.utils.clip_grad_norm_(a, 1.0, error_if_nonfinite=True)


# ------------------------------------------------------------ load_state_dict
def _net():
    md.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_load_state_dict_is_atomic():
    net = _net()
    before = {k: v.numpy() for k, v in net.state_dict().items()}
    bad = {k: v + 1 for k, v in before.items()}
    last = list(bad)[-1]
    bad[last] = np.zeros((7,))           # the LAST entry has the wrong shape
    with pytest.raises(ValueError, match=rf"'{last}' has shape \(7,\)"):
        net.load_state_dict(bad)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_returns_torch_named_tuple():
    net, tnet = _net(), torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    state = net.state_dict()
    del state["2.bias"]
    state["extra"] = np.zeros(1)
    ours = net.load_state_dict(state, strict=False)
    tstate = {k: torch.tensor(np.asarray(v)) for k, v in state.items()}
    theirs = tnet.load_state_dict(tstate, strict=False)
    assert ours.missing_keys == theirs.missing_keys == ["2.bias"]
    assert ours.unexpected_keys == theirs.unexpected_keys == ["extra"]
    with pytest.raises(KeyError, match=r"missing keys \['2.bias'\], unexpected keys \['extra'\]"):
        net.load_state_dict(state)


def test_load_state_dict_accepts_tensors_lists_and_torch_tensors():
    net = nn.Linear(2, 1)
    net.load_state_dict({"weight": [[1.0, 2.0]], "bias": md.tensor(np.array([3.0]))})
    np.testing.assert_array_equal(net.weight.numpy(), [[1.0, 2.0]])
    net.load_state_dict({"weight": torch.tensor([[5.0, 6.0]]), "bias": [0]})
    np.testing.assert_array_equal(net.weight.numpy(), [[5.0, 6.0]])
    assert net.bias.numpy().dtype == np.float32
    with pytest.raises(TypeError, match="'weight' is a list holding"):
        net.load_state_dict({"weight": [["a", "b"]], "bias": [0.0]})
    with pytest.raises(TypeError, match="not a rectangular array"):
        net.load_state_dict({"weight": [[1.0], [2.0, 3.0]], "bias": [0.0]})
    with pytest.raises(TypeError, match="expected a dict"):
        net.load_state_dict([("weight", [[1.0, 2.0]])])


def test_module_zero_grad_set_to_none_false_keeps_zeroed_arrays():
    net = nn.Linear(2, 1)
    net(md.tensor(np.ones((1, 2), dtype=np.float32))).sum().backward()
    net.zero_grad(set_to_none=False)
    assert net.weight.grad is not None and not np.any(net.weight.grad.numpy())
    net.zero_grad()
    assert net.weight.grad is None


def test_more_init_functions():
    w = md.tensor(np.empty((200, 300), dtype=np.float32))
    nn.init.trunc_normal_(w, mean=0.5, std=1.0, a=0.0, b=1.0)
    assert w.numpy().min() >= 0.0 and w.numpy().max() <= 1.0 and w.numpy().std() > 0.2
    nn.init.eye_(w)
    np.testing.assert_array_equal(w.numpy(), np.eye(200, 300))
    assert nn.init.calculate_gain("selu") == torch.nn.init.calculate_gain("selu")
    with pytest.raises(ValueError, match="under 0.1%"):
        nn.init.trunc_normal_(w, a=10.0, b=11.0)


def test_replacing_a_child_keeps_its_place_in_the_parameter_order():
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    for model, lib in ((ours, nn), (theirs, torch.nn)):
        setattr(model, "0", lib.Linear(3, 4))    # as model.fc = nn.Linear(...) in transfer learning
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
