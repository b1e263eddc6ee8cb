"""Optimizer base class: parameter groups, per-parameter state, zero_grad, state_dict."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend


class Optimizer:
    def __init__(self, params, defaults: dict):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        self.state: dict = {}  # id(param) -> {name: array}
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own options (the others default to the constructor's)."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a parameter group is a dict with a 'params' entry, got {group!r}")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown options {sorted(unknown)} in a parameter group")
        params = [group["params"]] if hasattr(group["params"], "data") else list(group["params"])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group (or twice)")
        group = {**self.defaults, **group, "params": params}
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        """Raise ValueError on a bad hyper-parameter of ``group`` (each optimizer checks its own)."""

    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self):
        raise NotImplementedError

    def _params_with_grad(self):
        """(group, param, state) for every parameter that received a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self.state.setdefault(id(p), {})

    def state_dict(self) -> dict:
        """Hyper-parameters per group and per-parameter state as host NumPy arrays, keyed by the
        parameter's position across groups (so it can be saved without pickling)."""
        index, groups, state = 0, [], {}
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                if id(p) in self.state:
                    state[index] = {k: np.array(backend.asnumpy(v)) if hasattr(v, "shape") else v
                                    for k, v in self.state[id(p)].items()}
                ids.append(index)
                index += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved parameter groups "
                             f"({[len(g['params']) for g in groups]} parameters) do not match this optimizer's "
                             f"({[len(g['params']) for g in self.param_groups]})")
        params = [p for group in self.param_groups for p in group["params"]]
        self.state = {}
        for index, saved in state_dict["state"].items():
            p = params[int(index)]
            self.state[id(p)] = {k: backend.to_device(v, p.device).astype(p.dtype) if hasattr(v, "shape") else v
                                 for k, v in saved.items()}
        for own, saved in zip(self.param_groups, groups):
            own.update({k: v for k, v in saved.items() if k != "params"})


def check_hyper(where: str, what: str, value, rule: str, low: float = 0.0, high: float | None = None,
                high_inclusive: bool = False) -> None:
    """Raise unless ``value`` is a finite real number in [low, high) (or [low, high]).

    The message says ``where`` (the optimizer), ``rule`` and torch's wording, e.g.
    "SGD: lr must be >= 0 and finite (Invalid learning rate: -1.0)".  Unlike torch, a NaN or
    infinite value is refused: it would turn every parameter into NaN at the first step.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {rule} (Invalid {what}: {value!r} is not a number)")
    above = high is None or (value <= high if high_inclusive else value < high)
    if not (math.isfinite(value) and value >= low and above):
        raise ValueError(f"{where}: {rule} (Invalid {what}: {value})")
