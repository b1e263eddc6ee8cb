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
