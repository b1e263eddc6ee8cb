"""``md.save(obj, f)`` / ``md.load(f)``: tensors, arrays and state dicts in an .npz file, never pickle.

What can be saved: a Tensor or NumPy array, a Python scalar (bool, int, float, str, None), and
dicts (str or int keys), lists and tuples of these, nested: a model's ``state_dict()``, an
optimizer's, a checkpoint dict of both plus an epoch number. Arrays go into the .npz archive
as ``arr_0``, ``arr_1`` ...; the structure around them (keys, scalars, which leaf is a Tensor)
goes into one JSON string stored under ``__minidl__``. Loading reads it with
``allow_pickle=False``, so a file can hold data only, never code to run.

A Module or any other object is refused with a TypeError: save ``model.state_dict()``
and restore it with ``model.load_state_dict(md.load(f))``, as PyTorch recommends.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from . import backend
from .tensor import Tensor

_META = "__minidl__"
_FORMAT = 1


def save(obj, f) -> None:
    """Write obj to f (a path, written exactly there, or a binary file object) as .npz."""
    arrays = {}
    meta = {"format": _FORMAT, "root": _encode(obj, arrays, "obj")}
    arrays[_META] = np.array(json.dumps(meta))
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as handle:  # np.savez(path) would append ".npz" to the name
            np.savez(handle, **arrays)
    else:
        np.savez(f, **arrays)


def _encode(obj, arrays, where):
    if isinstance(obj, Tensor):
        key = f"arr_{len(arrays)}"
        arrays[key] = backend.asnumpy(obj.data)
        return {"tensor": key, "requires_grad": obj.requires_grad}
    if isinstance(obj, (np.ndarray, np.generic)) or backend.is_gpu_array(obj):
        array = backend.asnumpy(obj) if not isinstance(obj, np.generic) else np.asarray(obj)
        if array.dtype.hasobject:
            raise TypeError(f"md.save: {where} is an array of Python objects, which needs pickle")
        key = f"arr_{len(arrays)}"
        arrays[key] = array
        return {"array": key, "scalar": isinstance(obj, np.generic)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"md.save: {where} has a key {k!r} of type {type(k).__name__}; keys must be "
                                "str or int")
            items.append([k, _encode(v, arrays, f"{where}[{k!r}]")])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        return {"tuple" if isinstance(obj, tuple) else "list":
                [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    hint = (" Save the model's state: md.save(model.state_dict(), path), and restore it with "
            "model.load_state_dict(md.load(path)).") if hasattr(obj, "state_dict") else ""
    raise TypeError(f"md.save: {where} is a {type(obj).__name__}; minidl saves tensors, arrays, Python scalars "
                    f"and dicts/lists of them (no pickle).{hint}")


def load(f, map_location=None, weights_only=None, **unused):
    """Read what ``save`` wrote. Tensors go to ``map_location`` ("cpu" by default; "cuda"/"gpu" or
    a minidl.device). ``weights_only`` is accepted for compatibility: loading is always data-only."""
    if weights_only not in (None, True, False):
        raise TypeError(f"md.load: weights_only must be a bool, got {weights_only!r}")
    if unused.keys() - {"mmap", "pickle_module"}:
        raise TypeError(f"md.load: unexpected keyword arguments {sorted(unused)}")
    if map_location is None:
        device = "cpu"
    elif isinstance(map_location, str):  # includes minidl.device
        device = backend.check_device(map_location)
    else:
        raise TypeError(f"md.load: map_location must be a device such as 'cpu' or 'cuda', got "
                        f"{type(map_location).__name__} (functions and dicts are not supported)")
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", repr(f))
    try:
        archive = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"md.load: {name} is not a file written by md.save (an .npz archive); "
                         f"numpy.load said: {type(exc).__name__}: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"md.load: {name} is a single .npy array, not a file written by md.save; "
                         "read it with numpy.load")
    with archive:
        if _META not in archive.files:
            raise ValueError(f"md.load: {name} is an .npz archive but was not written by md.save "
                             f"(no {_META} entry; it holds {archive.files[:5]}); read it with numpy.load")
        try:
            meta = json.loads(str(archive[_META]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"format {meta.get('format')!r}; this minidl reads format {_FORMAT}")
            return _decode(meta["root"], archive, device)
        except (ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"md.load: {name} is damaged or not from this minidl ({type(exc).__name__}: "
                             f"{exc})") from None


def _decode(node, archive, device):
    if "tensor" in node:
        data = backend.to_device(archive[node["tensor"]], device)
        return Tensor(data, requires_grad=node["requires_grad"])
    if "array" in node:
        array = archive[node["array"]]
        return array[()] if node["scalar"] else array
    if "value" in node:
        return node["value"]
    if "dict" in node:
        return {k: _decode(v, archive, device) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, archive, device) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, archive, device) for v in node["tuple"])
    raise ValueError(f"md.load: unknown entry {node!r}")
