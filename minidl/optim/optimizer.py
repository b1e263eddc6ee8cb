"""Optimizer base class: parameter groups, per-parameter state, zero_grad, state_dict."""
from __future__ import annotations

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
        for group in groups:
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"{type(self).__name__}: unknown options {sorted(unknown)} in a parameter group")
            self.param_groups.append({**defaults, **group, "params": list(group["params"])})
        self.state: dict = {}  # id(param) -> {name: array}

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
