"""Training checkpoints: one ``.npz`` file, written atomically, read without pickle.

Layout of ``checkpoint.npz`` (every entry an array, so ``np.load(..., allow_pickle=False)`` reads it):

    model/<name>            the model's state dict (parameters and buffers, PyTorch's dotted names)
    optim/<index>/<name>    the optimizer's per-parameter arrays (momentum buffers, Adam's moments);
                            <index> is the parameter's position in optimizer.param_groups
    json/meta               0-d unicode arrays holding JSON: metadata (format, epoch, step, model
    json/optim              name, options, args, history, ...), the optimizer's hyper-parameters and
    json/scheduler          non-array state (Adam's step counts), the LR schedule's state and
    json/rng                minidl's RNG state (md.get_rng_state())

Writing goes to a temporary file in the same directory, is flushed to disk, then renamed over the
old checkpoint (``os.replace``), so a crash or Ctrl-C during the write leaves the previous
checkpoint intact, never a half-written one.  JSON keeps Python floats exactly (shortest repr
round-trips), so learning rates and schedule state come back bit-for-bit.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

FORMAT = "alexnet-checkpoint"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    path: str
    meta: dict
    model_state: dict
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    rng_state: dict | None = None
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- atomic writes
def atomic_write(path: str, write, mode: str = "wb") -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    Readers see either the old file or the complete new one.  On any error (including
    KeyboardInterrupt) the temporary file is removed and ``path`` is left untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path: str, obj) -> None:
    text = json.dumps(obj, indent=1)
    atomic_write(path, lambda f: f.write(text + "\n"), mode="w")


def _json_array(obj) -> np.ndarray:
    return np.array(json.dumps(obj))


def _jsonable(value):
    """Plain Python values for JSON: tuples to lists, NumPy scalars to Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------------ save
def save_checkpoint(path: str, *, model_state: dict, meta: dict, optimizer_state: dict | None = None,
                    scheduler_state: dict | None = None, rng_state: dict | None = None) -> None:
    """Write a checkpoint atomically (see the module docstring for the layout)."""
    arrays = {}
    for name, value in model_state.items():
        arrays[f"model/{name}"] = np.asarray(value)
    optim_json = None
    if optimizer_state is not None:
        scalars = {}
        for index, state in optimizer_state["state"].items():
            for name, value in state.items():
                if hasattr(value, "shape"):
                    arrays[f"optim/{int(index)}/{name}"] = np.asarray(value)
                else:
                    scalars.setdefault(str(int(index)), {})[name] = _jsonable(value)
        optim_json = {"param_groups": _jsonable(optimizer_state["param_groups"]), "scalars": scalars}
    arrays["json/meta"] = _json_array({"format": FORMAT, "version": VERSION, **_jsonable(meta)})
    arrays["json/optim"] = _json_array(optim_json)
    arrays["json/scheduler"] = _json_array(_jsonable(scheduler_state))
    arrays["json/rng"] = _json_array(_jsonable(rng_state))
    atomic_write(path, lambda f: np.savez(f, **arrays))


# ------------------------------------------------------------------------------------ load
def load_checkpoint(path: str) -> Checkpoint:
    """Read a checkpoint; a missing, truncated, corrupt or foreign file raises CheckpointError."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {name: npz[name] for name in npz.files}  # reads (and CRC-checks) every member now
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
    try:
        meta = json.loads(str(entries["json/meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        optim_json = json.loads(str(entries["json/optim"]))
        scheduler_state = json.loads(str(entries["json/scheduler"]))
        rng_state = json.loads(str(entries["json/rng"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path!r} is not an alexnet training checkpoint "
                              f"({type(exc).__name__}: {exc})") from exc
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {meta['version']}, newer than this "
                              f"code's {VERSION}; update the code")
    model_state = {k[len("model/"):]: v for k, v in entries.items() if k.startswith("model/")}
    optimizer_state = None
    if optim_json is not None:
        state: dict = {}
        for key, value in entries.items():
            if key.startswith("optim/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = value
        for index, scalars in optim_json["scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
        optimizer_state = {"state": dict(sorted(state.items())), "param_groups": optim_json["param_groups"]}
    return Checkpoint(path=path, meta=meta, model_state=model_state, optimizer_state=optimizer_state,
                      scheduler_state=scheduler_state, rng_state=rng_state)


# --------------------------------------------------------------------------------- restore
def check_model_state(ckpt: Checkpoint, model, model_name: str | None = None) -> None:
    """Raise CheckpointError naming the file when ``ckpt`` was written for another model or shapes."""
    saved_name = ckpt.meta.get("model")
    if model_name is not None and saved_name is not None and saved_name != model_name:
        raise CheckpointError(f"checkpoint {ckpt.path!r} was written for model {saved_name!r}, "
                              f"not {model_name!r}")
    own = model.state_dict()
    missing = [k for k in own if k not in ckpt.model_state]
    unexpected = [k for k in ckpt.model_state if k not in own]
    wrong = [f"{k}: {tuple(ckpt.model_state[k].shape)} in the file, {tuple(v.shape)} in the model"
             for k, v in own.items() if k in ckpt.model_state and tuple(ckpt.model_state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch " + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""))
        if missing:
            parts.append(f"missing {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}" + (" ..." if len(unexpected) > 5 else ""))
        raise CheckpointError(f"checkpoint {ckpt.path!r} does not fit model {model_name or type(model).__name__} "
                              f"(saved for {saved_name!r} with options {ckpt.meta.get('options')}): "
                              + ", ".join(parts))


def restore_optimizer(ckpt: Checkpoint, optimizer) -> None:
    """Load the optimizer state, turning JSON lists back into tuples where the optimizer had tuples."""
    if ckpt.optimizer_state is None:
        raise CheckpointError(f"checkpoint {ckpt.path!r} holds no optimizer state")
    groups = []
    for saved, own in zip(ckpt.optimizer_state["param_groups"], optimizer.param_groups):
        groups.append({k: tuple(v) if isinstance(own.get(k), tuple) else v for k, v in saved.items()})
    groups += ckpt.optimizer_state["param_groups"][len(groups):]
    state = {"state": ckpt.optimizer_state["state"], "param_groups": groups}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, entries in state["state"].items():
        if int(index) >= len(params):
            raise CheckpointError(f"checkpoint {ckpt.path!r}: optimizer state for parameter {index}, but the "
                                  f"optimizer has {len(params)} parameters")
        for name, value in entries.items():
            if hasattr(value, "shape") and tuple(value.shape) not in ((), tuple(params[int(index)].shape)):
                raise CheckpointError(f"checkpoint {ckpt.path!r}: optimizer state {name!r} of parameter {index} "
                                      f"has shape {tuple(value.shape)}, the parameter {tuple(params[int(index)].shape)}")
    try:
        optimizer.load_state_dict(state)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {ckpt.path!r}: {exc}") from exc
