"""Function.xp: the array module of the inputs, right inside forward (not only in backward)."""
import numpy as np
import pytest

import minidl as md
from minidl import backend


class _Probe(md.Function):
    """Records what self.xp gives in forward and in backward."""
    seen = {}

    def forward(self, x, y):
        _Probe.seen["forward"] = self.xp
        return x * y

    def backward(self, grad):
        _Probe.seen["backward"] = self.xp
        return grad, grad


def test_xp_inside_forward_is_the_inputs_module(monkeypatch):
    # Without a GPU both modules are numpy, so a numpy fallback would pass unnoticed: ask the
    # backend which arrays it was given instead.
    asked = []
    monkeypatch.setattr(backend, "get_array_module", lambda *arrays: asked.append(arrays) or np)
    x, y = md.tensor([1.0, 2.0], requires_grad=True), md.tensor([3.0, 4.0])
    _Probe.apply(x, y).sum().backward()
    assert _Probe.seen == {"forward": np, "backward": np}
    forward_call = asked[0]
    assert len(forward_call) == 2 and forward_call[0] is x.data and forward_call[1] is y.data


def test_xp_without_grad_still_sees_the_inputs(monkeypatch):
    asked = []
    monkeypatch.setattr(backend, "get_array_module", lambda *arrays: asked.append(arrays) or np)
    with md.no_grad():
        _Probe.apply(md.tensor([1.0]), md.tensor([2.0]))
    assert len(asked) == 1 and len(asked[0]) == 2


def test_xp_outside_apply_says_how_to_call():
    with pytest.raises(RuntimeError, match=r"_Probe\.xp: the inputs are not known.*_Probe\.apply"):
        _Probe().forward(np.ones(2), np.ones(2))
