"""Module and Parameter: the containers that layers and models are built from (as torch.nn)."""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad=True)."""

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")):
    """What load_state_dict returns (torch's named tuple): the keys it did not find, and the extra ones."""


class _RemovableHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Module:
    """Base class of layers and models.

    Assigning a Parameter or a Module as an attribute registers it, in order;
    ``register_buffer`` registers non-learnable state (BatchNorm's running stats).
    Names follow PyTorch's dotted convention ("features.0.weight").
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            target = self._parameters
        elif isinstance(value, Module):
            target = self._modules
        elif name in self.__dict__.get("_buffer_names", ()):
            target = self._buffers
        else:
            target = None
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not target:
                registry.pop(name, None)
        if target is not None:
            target[name] = value   # a replaced entry keeps its place (parameters() order), as in torch
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array) -> None:
        """Non-learnable state saved in state_dict and moved by to(): an array, or None."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        setattr(self, name, array)

    # ------------------------------------------------------------- forward
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook in tuple(self.__dict__.get("_forward_hooks", ())):
            replaced = hook(self, args, output)
            if replaced is not None:
                output = replaced
        return output

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward (as torch's); a returned value
        replaces the output. To see the output's gradient, call ``output.register_hook`` in it.
        Returns a handle whose ``remove()`` unregisters the hook."""
        hooks = self.__dict__.setdefault("_forward_hooks", [])
        hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    # -------------------------------------------------------------- walking
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, module in self.named_children():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return (m for _, m in self.named_children())

    def named_children(self):
        """(name, module) of the direct sub-modules, in registration order."""
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def add_module(self, name: str, module) -> None:
        """Register ``module`` under ``name`` (as torch.nn.Module.add_module; same as setattr)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{type(self).__name__}.add_module: name must be a non-empty string without '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} is a {type(module).__name__}, not a Module")
        if module is None:
            self._modules[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, module)

    register_module = add_module

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module (children first, then self), as torch; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) in registration order, each parameter once."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        for module_name, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def to(self, device):
        """Move every parameter and buffer to ``device`` ("cpu" or "gpu") in place; returns self."""
        device = backend.check_device(device)
        for m in self.modules():
            for p in m._parameters.values():
                p.data = backend.to_device(p.data, device)
                if p.grad is not None:
                    p.grad = Tensor(backend.to_device(p.grad.data, device))
            for name, b in list(m._buffers.items()):
                if b is not None:
                    setattr(m, name, backend.to_device(b, device))
        return self

    # ------------------------------------------------------------ state
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Every parameter and buffer as a detached Tensor holding a host copy, under PyTorch's
        dotted names (``.numpy()``, ``np.asarray`` and ``md.save`` take them as they are)."""
        state = OrderedDict((name, Tensor(p.numpy())) for name, p in self.named_parameters())
        for name, b in self.named_buffers():
            state[name] = Tensor(np.array(backend.asnumpy(b), copy=True))
        return state

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays (NumPy, CuPy, Tensors, torch tensors' .numpy(), or nested lists) into the
        parameters and buffers; returns (missing_keys, unexpected_keys) as torch's named tuple.

        Atomic: every key, shape and value is checked before anything is copied, so a bad entry
        leaves the model unchanged.  strict=True (default) also requires the keys to match exactly.
        """
        where = f"load_state_dict for {type(self).__name__}"
        if not hasattr(state_dict, "items"):
            raise TypeError(f"{where}: expected a dict of name -> array, got {type(state_dict).__name__}")
        own = OrderedDict((name, p.data) for name, p in self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
        staged = []
        for name, value in state_dict.items():
            if name not in own:
                continue
            target = own[name]
            value = _as_array(where, name, value)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{where}: {name!r} has shape {tuple(value.shape)} in the state dict but "
                                 f"{tuple(target.shape)} in the model")
            if not np.can_cast(value.dtype, target.dtype, "same_kind") and value.dtype != np.bool_:
                raise TypeError(f"{where}: {name!r} has dtype {value.dtype} in the state dict, which does not "
                                f"convert to the model's {target.dtype}")
            staged.append((target, value))
        for target, value in staged:  # everything checked: now copy
            target[...] = backend.to_device(value, backend.device_of(target)).astype(target.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        body = ("\n" + "\n".join(lines) + "\n") if lines else ""
        return f"{type(self).__name__}({self.extra_repr()}{body})"


def _as_array(where: str, name: str, value):
    """A state-dict value as an array: Tensors give their data, lists and numbers become NumPy arrays."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise TypeError(f"{where}: {name!r} is a {type(value).__name__} that is not a rectangular array ({err})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {name!r} is a {type(value).__name__} holding {array.dtype} values, "
                        f"not numbers")
    return array
