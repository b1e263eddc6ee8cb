"""ModuleList and ModuleDict: sub-modules held in a list or a dict, registered (as torch.nn).

Their children are registered like attributes, so parameters() and state_dict() include them
under torch's names: a ModuleList ``layers`` gives "layers.0.weight", a ModuleDict ``heads``
gives "heads.<key>.weight".  Neither has a forward: the owning module decides how to call them.
"""
from __future__ import annotations

import operator

from .module import Module


def _check_module(where: str, module):
    if not isinstance(module, Module):
        raise TypeError(f"{where}: expected a Module, got {type(module).__name__}")
    return module


class ModuleList(Module):
    """A list of modules, named "0", "1", ... in order (renumbered after insert or delete)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _set_all(self, modules):
        for name in list(self._modules):
            object.__delattr__(self, name)
        self._modules.clear()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def _index(self, idx: int) -> int:
        idx = operator.index(idx)
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"ModuleList: index {idx} is out of range for {n} modules")
        return idx % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __setitem__(self, idx, module):
        setattr(self, str(self._index(idx)), _check_module("ModuleList.__setitem__", module))

    def __delitem__(self, idx):
        modules = list(self._modules.values())
        del modules[idx if isinstance(idx, slice) else self._index(idx)]
        self._set_all(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def append(self, module):
        setattr(self, str(len(self)), _check_module("ModuleList.append", module))
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module):
        modules = list(self._modules.values())
        modules.insert(index, _check_module("ModuleList.insert", module))
        self._set_all(modules)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over it in your module's forward")


class ModuleDict(Module):
    """An ordered dict of modules, registered under their keys (strings)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str):
        if key not in self._modules:
            raise KeyError(f"ModuleDict: no module named {key!r}; keys: {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module):
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        if hasattr(self, key) and key not in self._modules:  # torch's rule too
            raise KeyError(f"ModuleDict: key {key!r} would hide the attribute {key!r} of the module; choose another")
        setattr(self, key, _check_module("ModuleDict.__setitem__", module))

    def __delitem__(self, key: str):
        self[key]  # a KeyError naming the keys if absent
        del self._modules[key]
        object.__delattr__(self, key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str):
        module = self[key]
        del self[key]
        return module

    def clear(self):
        for key in list(self._modules):
            del self[key]

    def update(self, modules):
        for key, module in (modules.items() if hasattr(modules, "items") else modules):
            self[key] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward: index it in your module's forward")
