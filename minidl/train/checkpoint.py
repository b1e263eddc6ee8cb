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

Reading trusts nothing in the file: member names, dtypes and shapes are checked from the zip
directory and the .npy headers (against the model, and a cap on the total size) before anything
is decompressed, and the JSON against a schema; every problem is a CheckpointError naming the
file and the key (docs/reliability.md).
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
import zlib
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


# ---------------------------------------------------------------------------- temporaries
def remove_stale_temporaries(directory: str) -> list:
    """Delete the temporary files ``atomic_write`` leaves behind when a process is killed mid-write.

    Call it only while holding the directory's lock (minidl.train.lock), so that no live writer's
    temporary file is taken.  Returns the names removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if _TEMPORARY.fullmatch(name):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")   # mkstemp(prefix="." + name + ".", suffix=".tmp")


# ------------------------------------------------------------------------------ validation
# A checkpoint may come from anywhere, so nothing in it is trusted: member names, dtypes and
# shapes are read from the zip directory and the .npy headers, and checked (against the model
# when the caller gives its shapes, and against a cap on the total size) before any array is
# decompressed or allocated; the JSON metadata is checked against a schema before it is used.
MAX_JSON_BYTES = 64 << 20          # all JSON members together (history, configuration, RNG state)
DEFAULT_MAX_BYTES = 2 << 30        # all arrays together, when the caller gives no model to size them by
_MEMBER = re.compile(r"(model/[^/]+|optim/\d+/[^/]+|json/(meta|optim|scheduler|rng))\.npy")


class Field:
    """One key of a JSON schema: its types, whether it must be present, a lower bound, and the
    schema of its items (a list) or keys (a dict).  bool is never accepted for a number."""

    def __init__(self, types, *, required=False, low=None, items=None, keys=None):
        self.types = types if isinstance(types, tuple) else (types,)
        self.required, self.low, self.items, self.keys = required, low, items, keys

    def describe(self) -> str:
        names = {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list",
                 type(None): "null", bool: "true/false"}
        text = " or ".join(names[t] for t in self.types)
        return text + (f" >= {self.low}" if self.low is not None else "")


def _ok_type(value, types) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, types)


def validate(value, schema: dict, where: str, path: str) -> None:
    """CheckpointError naming the file and the key when ``value`` (a dict) does not fit ``schema``."""
    if not isinstance(value, dict):
        raise CheckpointError(f"checkpoint {path!r}: {where} must be an object, got {type(value).__name__}")
    for key, rule in schema.items():
        if key not in value:
            if rule.required:
                raise CheckpointError(f"checkpoint {path!r}: {where} has no key {key!r}")
            continue
        item = value[key]
        bad = not _ok_type(item, rule.types)
        if not bad and rule.low is not None and isinstance(item, (int, float)):
            bad = not item >= rule.low
        if bad:
            raise CheckpointError(f"checkpoint {path!r}: {where} key {key!r} must be {rule.describe()}, "
                                  f"got {item!r:.80}")
        if rule.keys is not None and isinstance(item, dict):
            validate(item, rule.keys, f"{where}.{key}", path)
        if rule.items is not None and isinstance(item, list):
            for i, element in enumerate(item):
                validate(element, rule.items, f"{where}.{key}[{i}]", path)


NUMBER = (int, float)
META_SCHEMA = {
    "format": Field(str, required=True), "version": Field(int, required=True, low=0),
    "epoch": Field(int, low=0), "step": Field(int, low=0), "epochs": Field(int, low=1),
    "steps_per_epoch": Field((int, type(None)), low=1), "num_classes": Field((int, type(None)), low=1),
    "classes": Field((list, type(None))), "model": Field((str, type(None))), "dataset": Field((str, type(None))),
    "options": Field(dict), "config": Field(dict),
    "running": Field((dict, type(None)), keys={"loss_sum": Field(NUMBER), "correct": Field(int, low=0),
                                               "count": Field(int, low=0), "train_seconds": Field(NUMBER)}),
    "history": Field(list, items={"epoch": Field(int, required=True, low=1),
                                  "test_acc": Field(NUMBER, required=True)}),
}
OPTIM_SCHEMA = {"param_groups": Field(list, required=True, items={"lr": Field(NUMBER, required=True)}),
                "scalars": Field(dict, required=True)}
SCHEDULER_SCHEMA = {"kind": Field(str, required=True), "base_lrs": Field(list, required=True),
                    "inner": Field((dict, type(None)))}


def _read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str):
    """(dtype, shape) of a member from its .npy header, checked against the zip directory's size."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10000)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        header = f.tell()
    if dtype.hasobject or dtype.kind not in "biufcU":
        raise CheckpointError(f"checkpoint {path!r}: member {info.filename!r} has dtype {dtype}, not a plain "
                              "numeric or text array")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise CheckpointError(f"checkpoint {path!r}: member {info.filename!r} has an invalid shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != header + nbytes:
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt: member {info.filename!r} declares "
                              f"{info.file_size} bytes, its header describes {header + nbytes}")
    return dtype, tuple(shape), nbytes


def state_shapes(model) -> dict:
    """{name: shape} of a model's state dict: what a checkpoint for it must hold."""
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


def _shape_problems(declared: dict, expected: dict) -> list:
    """Differences between a file's model entries and the shapes a model needs, as message parts."""
    missing = [k for k in expected if k not in declared]
    unexpected = [k for k in declared if k not in expected]
    wrong = [f"{k}: {tuple(declared[k])} in the file, {tuple(v)} in the model"
             for k, v in expected.items() if k in declared and tuple(declared[k]) != tuple(v)]
    parts = []
    if wrong:
        parts.append("shape mismatch " + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""))
    if missing:
        parts.append(f"missing {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        parts.append(f"unexpected {unexpected[:5]}" + (" ..." if len(unexpected) > 5 else ""))
    return parts


def _open_members(path: str, only=None):
    """(ZipFile, {member name without .npy: (info, dtype, shape, nbytes)}), every header checked."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
    try:
        members = {}
        for info in zf.infolist():
            if not _MEMBER.fullmatch(info.filename):
                raise CheckpointError(f"{path!r} is not an alexnet training checkpoint (unexpected member "
                                      f"{info.filename!r})")
            name = info.filename[:-len(".npy")]
            if only is None or name in only:
                members[name] = (info, *_read_header(zf, info, path))
        return zf, members
    except CheckpointError:
        zf.close()
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        zf.close()
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc


def _read(zf, members, name, path):
    info = members[name][0]
    try:
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__} in {info.filename}: {exc})") from exc


def _read_json(zf, members, name, path):
    if name not in members:
        raise CheckpointError(f"{path!r} is not an alexnet training checkpoint (no {name})")
    _, dtype, shape, _ = members[name]
    if dtype.kind != "U" or shape != ():
        raise CheckpointError(f"checkpoint {path!r}: {name} must be a 0-d text array, got {dtype} {shape}")
    try:
        return json.loads(str(_read(zf, members, name, path)))
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path!r}: {name} is not valid JSON ({exc})") from exc


def _check_meta(meta, path: str, require=()) -> dict:
    if isinstance(meta, dict) and meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not an alexnet training checkpoint (format is "
                              f"{meta.get('format')!r}, expected {FORMAT!r})")
    validate(meta, META_SCHEMA, "json/meta", path)
    if meta["version"] > VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {meta['version']}, newer than this "
                              f"code's {VERSION}; update the code")
    for key in require:
        if key not in meta:
            raise CheckpointError(f"checkpoint {path!r}: json/meta has no key {key!r}")
    return meta


def read_meta(path: str, require=()) -> dict:
    """Only the checked metadata of a checkpoint (cheap: no array is read); ``require``: keys it must have."""
    zf, members = _open_members(path, only={"json/meta"})
    with zf:
        if "json/meta" in members and members["json/meta"][3] > MAX_JSON_BYTES:
            raise CheckpointError(f"checkpoint {path!r}: json/meta declares {members['json/meta'][3]} bytes, "
                                  f"more than the {MAX_JSON_BYTES} allowed")
        return _check_meta(_read_json(zf, members, "json/meta", path), path, require)


def describe(path: str) -> str | None:
    """"PATH (epoch E, step S)" for messages, None when there is no file there."""
    if not path or not os.path.exists(path):
        return None
    try:
        meta = read_meta(path)
    except CheckpointError as exc:
        return f"{path} (unreadable: {exc})"
    if "epoch" in meta and "step" in meta:
        if meta["step"] == 0:
            return f"{path} (after epoch {meta['epoch']})"
        return f"{path} (epoch {meta['epoch'] + 1}, step {meta['step']})"
    return path


def declared_shapes(path: str) -> dict:
    """{name: shape} of the model entries, from the .npy headers alone (nothing is decompressed)."""
    zf, members = _open_members(path)
    with zf:
        return {k[len("model/"):]: m[2] for k, m in members.items() if k.startswith("model/")}


# ------------------------------------------------------------------------------------ load
def load_checkpoint(path: str, *, expected=None, max_bytes: int | None = None, require=()) -> Checkpoint:
    """Read a checkpoint; a missing, truncated, corrupt, foreign or malformed file raises CheckpointError.

    ``expected``: the model (or its ``state_shapes``) the checkpoint is for; the file's model
    entries must then have exactly its names and shapes, each optimizer entry the shape of one of
    them (or none), and all arrays together at most ``max_bytes`` (default 4 times the model at
    float64, the model plus an optimizer's two moments with room to spare; without ``expected``,
    DEFAULT_MAX_BYTES).  All of this is checked from the zip directory and the .npy headers,
    before anything is decompressed.  ``require``: metadata keys that must be present.
    """
    if expected is not None and not isinstance(expected, dict):
        expected = state_shapes(expected)
    zf, members = _open_members(path)
    with zf:
        json_bytes = sum(m[3] for k, m in members.items() if k.startswith("json/"))
        array_bytes = sum(m[3] for k, m in members.items() if not k.startswith("json/"))
        if max_bytes is None:
            max_bytes = DEFAULT_MAX_BYTES if expected is None else \
                4 * 8 * sum(math.prod(s) for s in expected.values()) + (1 << 20)
        if json_bytes > MAX_JSON_BYTES or array_bytes > max_bytes:
            raise CheckpointError(f"checkpoint {path!r} declares {array_bytes:,} bytes of arrays and "
                                  f"{json_bytes:,} of metadata, more than the {max_bytes:,} and {MAX_JSON_BYTES:,} "
                                  "allowed" + (" for this model" if expected is not None else "")
                                  + "; refusing to read it")
        meta = _check_meta(_read_json(zf, members, "json/meta", path), path, require)
        if expected is not None:
            declared = {k[len("model/"):]: m[2] for k, m in members.items() if k.startswith("model/")}
            problems = _shape_problems(declared, expected)
            if problems:
                raise CheckpointError(f"checkpoint {path!r} does not fit the model (saved for "
                                      f"{meta.get('model')!r} with options {meta.get('options')}): "
                                      + ", ".join(problems))
            shapes = set(map(tuple, expected.values())) | {()}
            for key, m in members.items():
                if key.startswith("optim/") and m[2] not in shapes:
                    raise CheckpointError(f"checkpoint {path!r}: optimizer entry {key} has shape {m[2]}, "
                                          "which no parameter of the model has")
        optim_json = _read_json(zf, members, "json/optim", path)
        if optim_json is not None:
            validate(optim_json, OPTIM_SCHEMA, "json/optim", path)
        scheduler_state = _read_json(zf, members, "json/scheduler", path)
        if scheduler_state is not None:
            validate(scheduler_state, SCHEDULER_SCHEMA, "json/scheduler", path)
        rng_state = _read_json(zf, members, "json/rng", path)
        if rng_state is not None and not isinstance(rng_state, dict):
            raise CheckpointError(f"checkpoint {path!r}: json/rng must be an object, got {type(rng_state).__name__}")
        model_state = {k[len("model/"):]: _read(zf, members, k, path) for k in members if k.startswith("model/")}
        optimizer_state = None
        if optim_json is not None:
            state: dict = {}
            for key in members:
                if key.startswith("optim/"):
                    _, index, name = key.split("/", 2)
                    state.setdefault(int(index), {})[name] = _read(zf, members, key, path)
            for index, scalars in optim_json["scalars"].items():
                if not (isinstance(index, str) and index.isdigit() and isinstance(scalars, dict)):
                    raise CheckpointError(f"checkpoint {path!r}: json/optim key 'scalars' must map parameter "
                                          f"indices to objects, got {index!r}: {scalars!r:.80}")
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
    declared = {k: tuple(v.shape) for k, v in ckpt.model_state.items()}
    parts = _shape_problems(declared, state_shapes(model))
    if parts:
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
