"""nn.Module: registration order, PyTorch names, state dicts, modes; Linear and nn.init."""
import math

import numpy as np
import pytest
import torch

import minidl as md
from minidl import nn
from parity import assert_close


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6))
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.body(x))


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6))
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_names_and_order_match_torch():
    ours, theirs = Net(), TorchNet()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]


def test_torch_state_dict_loads_and_outputs_match():
    ours, theirs = Net(), TorchNet()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    assert_close(ours(md.tensor(x)), theirs(torch.tensor(x)), np.float32, "Net output")


def test_state_dict_round_trip_is_a_copy():
    a, b = Net(), Net()
    state = a.state_dict()
    b.load_state_dict(state)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(p.numpy(), q.numpy())
    state["head.bias"][:] = 123.0
    assert not np.any(a.head.bias.numpy() == 123.0)


def test_load_state_dict_lists_missing_and_unexpected_keys():
    state = Net().state_dict()
    del state["head.weight"]
    state["tail.weight"] = np.zeros(3)
    with pytest.raises(KeyError, match=r"missing keys \['head.weight'\].*unexpected keys \['tail.weight'\]"):
        Net().load_state_dict(state)


def test_load_state_dict_checks_shapes():
    state = Net().state_dict()
    state["head.weight"] = np.zeros((3, 7), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'head.weight'.*\(3, 7\).*\(3, 6\)"):
        Net().load_state_dict(state)


def test_train_eval_zero_grad():
    net = Net()
    assert net.eval() is net and not net.body[0].training
    net.train()
    assert all(m.training for m in net.modules())
    net(md.tensor(np.ones((2, 4)))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_shared_parameter_listed_once():
    net = nn.Module()
    net.a = nn.Linear(2, 2)
    net.b = net.a
    assert len(list(net.parameters())) == 2


def test_linear_default_init_follows_torch_bounds():
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.isclose(w.std(), bound / math.sqrt(3), rtol=0.02)
    assert np.abs(b).max() <= bound
    assert w.dtype == np.float32


def test_init_functions_follow_their_formulas():
    w = md.tensor(np.zeros((200, 300), dtype=np.float32))
    nn.init.xavier_uniform_(w)
    assert np.isclose(w.numpy().std(), math.sqrt(2.0 / 500), rtol=0.03)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.isclose(w.numpy().std(), math.sqrt(2.0 / 300), rtol=0.03)
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert np.isclose(w.numpy().std(), math.sqrt(2.0 / 300), rtol=0.03)
    nn.init.normal_(w, 0.0, 0.01)
    assert np.isclose(w.numpy().std(), 0.01, rtol=0.03)
    nn.init.constant_(w, 1.0)
    assert np.all(w.numpy() == 1.0)


def test_manual_seed_makes_init_reproducible():
    md.manual_seed(7)
    a = Net().state_dict()
    md.manual_seed(7)
    b = Net().state_dict()
    md.manual_seed(8)
    c = Net().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["head.weight"], c["head.weight"])


def test_module_without_super_init_is_reported():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(RuntimeError, match="super"):
        Broken()


def test_forward_hook_sees_output_and_its_gradient():
    net = Net()
    outputs, grads = [], []

    def hook(module, inputs, output):
        outputs.append(output.shape)
        output.register_hook(lambda g: grads.append(g.numpy()))

    handle = net.body[0].register_forward_hook(hook)
    net(md.tensor(np.ones((2, 4)))).sum().backward()
    assert outputs == [(2, 8)] and grads[0].shape == (2, 8)
    handle.remove()
    net(md.tensor(np.ones((2, 4))))
    assert len(outputs) == 1
