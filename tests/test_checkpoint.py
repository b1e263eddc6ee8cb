"""Checkpoints: exact round trip without pickle, atomic writes, clear errors for corrupt or mismatched files."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import minidl as md
from minidl import nn, optim

from minidl.train import checkpoint as ckpt_io
from minidl.train.checkpoint import CheckpointError
import zipfile
import io
import tracemalloc


def small_model(hidden=5):
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def trained(opt_cls, **kw):
    """A model and optimizer after two steps, so the optimizer has state."""
    model = small_model()
    opt = opt_cls(model.parameters(), **kw)
    x = md.tensor(np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    for _ in range(2):
        opt.zero_grad()
        (model(x) * model(x)).mean().backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("opt_cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)),
                                        (optim.Adam, dict(lr=1e-3, betas=(0.8, 0.99)))])
def test_round_trip_is_exact(tmp_path, opt_cls, kw):
    model, opt = trained(opt_cls, **kw)
    md.random.generator("augment").normal(size=3)        # a stream with state, plus dropout calls
    md.random.dropout_key()
    rng = md.get_rng_state()
    sched = {"kind": "plateau", "base_lrs": [0.1], "inner": {"best": float("-inf"), "num_bad_epochs": 2}}
    meta = {"model": "small", "epoch": 3, "step": 7, "options": {"width": 0.5}, "lr": 0.1 + 1e-17 * 3,
            "history": [{"epoch": 1, "test_acc": 1 / 3}]}
    path = str(tmp_path / "ck.npz")
    ckpt_io.save_checkpoint(path, model_state=model.state_dict(), meta=meta, optimizer_state=opt.state_dict(),
                            scheduler_state=sched, rng_state=rng)
    with np.load(path, allow_pickle=False) as npz:      # readable without pickle
        names = set(npz.files)
    assert {"model/0.weight", "json/meta", "json/rng"} <= names
    assert any(n.startswith("optim/0/") for n in names)

    ck = ckpt_io.load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert np.array_equal(ck.model_state[k], v) and ck.model_state[k].dtype == v.dtype
    assert ck.meta["epoch"] == 3 and ck.meta["lr"] == meta["lr"] and ck.meta["history"] == meta["history"]
    assert ck.scheduler_state == sched
    assert ck.rng_state == json.loads(json.dumps(rng))

    # restoring into fresh objects reproduces the optimizer and the RNG exactly
    md.manual_seed(1)
    model2 = small_model()
    opt2 = opt_cls(model2.parameters(), **kw)
    ckpt_io.check_model_state(ck, model2, "small")
    model2.load_state_dict(ck.model_state)
    ckpt_io.restore_optimizer(ck, opt2)
    md.set_rng_state(ck.rng_state)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for name, v in a["state"][i].items():
            assert np.array_equal(np.asarray(v), np.asarray(b["state"][i][name])), name
    md.set_rng_state(rng)
    expected = md.random.generator("augment").normal(size=3), md.random.dropout_key()
    md.set_rng_state(ck.rng_state)
    assert np.array_equal(md.random.generator("augment").normal(size=3), expected[0])
    assert md.random.dropout_key() == expected[1]


def test_write_is_atomic(tmp_path):
    path = str(tmp_path / "ck.npz")
    model = small_model()
    ckpt_io.save_checkpoint(path, model_state=model.state_dict(), meta={"epoch": 1})
    before = open(path, "rb").read()

    def failing(f):
        f.write(b"partial")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ckpt_io.atomic_write(path, failing)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["ck.npz"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~ckpt_io._UMASK   # the usual permissions, not mkstemp's 0600


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_names_the_file(tmp_path, damage):
    path = str(tmp_path / "ck.npz")
    ckpt_io.save_checkpoint(path, model_state=small_model().state_dict(), meta={"epoch": 1})
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write({"truncate": data[:len(data) // 2], "garbage": b"\x00not a zip" * 20, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=r"ck\.npz.*(truncated or corrupt)"):
        ckpt_io.load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt_io.load_checkpoint(str(tmp_path / "nope.npz"))
    foreign = str(tmp_path / "weights.npz")
    np.savez(foreign, w=np.ones(3))
    with pytest.raises(CheckpointError, match=r"weights\.npz.*not an alexnet training checkpoint"):
        ckpt_io.load_checkpoint(foreign)


def test_mismatched_model(tmp_path):
    path = str(tmp_path / "ck.npz")
    ckpt_io.save_checkpoint(path, model_state=small_model(hidden=5).state_dict(), meta={"model": "small"})
    ck = ckpt_io.load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"ck\.npz.*written for model 'small', not 'other'"):
        ckpt_io.check_model_state(ck, small_model(hidden=5), "other")
    with pytest.raises(CheckpointError, match=r"ck\.npz.*0\.weight: \(5, 4\) in the file, \(7, 4\) in the model"):
        ckpt_io.check_model_state(ck, small_model(hidden=7), "small")
    with pytest.raises(CheckpointError, match="missing"):
        ckpt_io.check_model_state(ck, nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.Linear(3, 2)),
                                  "small")


def test_mismatched_optimizer_state(tmp_path):
    model, opt = trained(optim.SGD, lr=0.1, momentum=0.9)
    path = str(tmp_path / "ck.npz")
    ckpt_io.save_checkpoint(path, model_state=model.state_dict(), meta={}, optimizer_state=opt.state_dict())
    ck = ckpt_io.load_checkpoint(path)
    other = small_model(hidden=7)
    with pytest.raises(CheckpointError, match=r"ck\.npz.*momentum_buffer.*shape \(5, 4\)"):
        ckpt_io.restore_optimizer(ck, optim.SGD(other.parameters(), lr=0.1, momentum=0.9))


# ------------------------------------------------------------------------- hostile files
def _npz_with(path, members: dict):
    """A zip of .npy members written by hand (``members``: name -> bytes), deflated."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


def _npy(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _meta(**meta):
    return _npy(np.array(json.dumps({"format": ckpt_io.FORMAT, "version": 1, **meta})))


def test_a_huge_declared_member_is_refused_from_its_header_before_decompressing(tmp_path):
    """A member declaring 4 GiB (zeros deflate ~1000:1) is refused without allocating it: the
    test streams the member, so the file stays small, and checks the time and peak memory."""
    path = str(tmp_path / "bomb.npz")
    big = (1 << 30,)                                  # 2**30 float32 = 4 GiB
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": big})
    header = buf.getvalue()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("json/meta.npy", _meta(epoch=0, step=0))
        with zf.open("model/0.weight.npy", "w", force_zip64=True) as f:
            f.write(header)
            chunk = bytes(1 << 24)
            for _ in range(4):                        # only 64 MiB of data is really written
                f.write(chunk)
    assert os.path.getsize(path) < 1 << 20
    tracemalloc.start()
    with pytest.raises(CheckpointError, match=r"bomb\.npz.*(truncated or corrupt|declares)"):
        ckpt_io.load_checkpoint(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"


def test_declared_sizes_are_capped_by_the_model_and_shapes_checked_before_reading(tmp_path):
    path = str(tmp_path / "big.npz")
    model = small_model()
    state = {f"model/{k}": _npy(v) for k, v in model.state_dict().items()}
    state["model/0.weight"] = _npy(np.zeros((2000, 1000), np.float32))   # 8 MB, honest header, wrong shape
    _npz_with(path, {"json/meta": _meta(epoch=0, step=0), **state, "json/optim": _npy(np.array("null")),
                     "json/scheduler": _npy(np.array("null")), "json/rng": _npy(np.array("null"))})
    with pytest.raises(CheckpointError, match=r"big\.npz.*declares 8,0\d\d,\d\d\d bytes of arrays.*for this model"):
        ckpt_io.load_checkpoint(path, expected=model)
    with pytest.raises(CheckpointError, match=r"0\.weight: \(2000, 1000\) in the file, \(5, 4\) in the model"):
        ckpt_io.load_checkpoint(path, expected=model, max_bytes=1 << 30)


MALFORMED = {
    "meta is a list": ("json/meta", [1, 2], "json/meta must be an object"),
    "version is a string": ("version", "1", "key 'version' must be an integer"),
    "epoch is negative": ("epoch", -1, "key 'epoch' must be an integer >= 0"),
    "epoch is a bool": ("epoch", True, "key 'epoch' must be an integer"),
    "missing epoch": ("epoch", None, "has no key 'epoch'"),
    "config is a list": ("config", [1], "key 'config' must be an object"),
    "options is a string": ("options", "wide", "key 'options' must be an object"),
    "history holds a number": ("history", [3], r"json/meta.history\[0\] must be an object"),
    "history entry lacks test_acc": ("history", [{"epoch": 1}], r"history\[0\] has no key 'test_acc'"),
    "running count is a string": ("running", {"count": "7"}, r"json/meta.running key 'count'"),
    "num_classes is zero": ("num_classes", 0, "key 'num_classes' must be an integer or null >= 1"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_metadata_is_a_checkpoint_error_naming_file_and_key(tmp_path, case):
    key, value, message = MALFORMED[case]
    model = small_model()
    path = str(tmp_path / "ck.npz")
    ckpt_io.save_checkpoint(path, model_state=model.state_dict(), meta={"epoch": 1, "step": 0})
    good = ckpt_io.read_meta(path)
    if key == "json/meta":
        meta = value
    elif value is None:
        meta = {k: v for k, v in good.items() if k != key}
    else:
        meta = {**good, key: value}
    arrays = {f"model/{k}": _npy(v) for k, v in model.state_dict().items()}
    null = _npy(np.array("null"))
    _npz_with(path, {"json/meta": _npy(np.array(json.dumps(meta))), **arrays, "json/optim": null,
                     "json/scheduler": null, "json/rng": null})
    with pytest.raises(CheckpointError, match=r"ck\.npz.*" + message):
        ckpt_io.load_checkpoint(path, require=("epoch", "step"))


def test_unknown_members_and_object_arrays_are_refused(tmp_path):
    path = str(tmp_path / "ck.npz")
    _npz_with(path, {"json/meta": _meta(epoch=0, step=0), "model/w": _npy(np.ones(3)), "evil": _npy(np.ones(1))})
    with pytest.raises(CheckpointError, match="unexpected member 'evil.npy'"):
        ckpt_io.load_checkpoint(path)
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    _npz_with(path, {"json/meta": _meta(epoch=0, step=0), "model/w": buf.getvalue() + b"x" * 8})
    with pytest.raises(CheckpointError, match="dtype object"):
        ckpt_io.load_checkpoint(path)
