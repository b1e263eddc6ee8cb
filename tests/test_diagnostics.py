"""Per-layer diagnostics (minidl/train/monitor.py), the health check (minidl/train/health.py), and the
``diagnose`` / ``ablate`` commands."""
import json
import math
import os

import numpy as np
import pytest

import minidl as md
import minidl.functional as F
from minidl import nn, optim

from minidl.train.monitor import LayerMonitor, activation_stats, format_table
from minidl.train.health import HealthCheck
from minidl.train.diagnostic_plots import plot_layers
from minidl.data import FashionMNIST
from alexnet.__main__ import main
from alexnet.commands.ablate import SETTINGS, parse_settings
from minidl.data import DataLoader
from minidl.train.trainer import Trainer


def tiny_net(dtype=np.float32):
    net = nn.Sequential(nn.Linear(5, 8, dtype=dtype), nn.ReLU(), nn.Linear(8, 3, dtype=dtype))
    return net


# ------------------------------------------------------------------ statistics against NumPy
def test_statistics_match_a_direct_numpy_computation():
    rng = np.random.default_rng(1)
    net = tiny_net(np.float64)
    w1, b1 = rng.standard_normal((8, 5)), rng.standard_normal(8) * 0.1
    b1[[2, 5]] = -50.0                                     # units 2 and 5 never fire: dead
    w2, b2 = rng.standard_normal((3, 8)), rng.standard_normal(3)
    net.load_state_dict({"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2})
    x, y = rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    lr = 0.1
    opt = optim.SGD(net.parameters(), lr=lr)
    monitor = LayerMonitor(net, every=1)
    loss = F.cross_entropy(net(md.tensor(x)), y)
    opt.zero_grad()
    loss.backward()
    monitor.before_step()
    opt.step()
    monitor.after_step()
    rec = {r["layer"]: r for r in monitor.history}
    assert list(rec) == ["0", "1", "2"] and all(r["step"] == 0 for r in rec.values())

    # the same forward and backward written out in NumPy
    h = x @ w1.T + b1
    r = np.maximum(h, 0)
    z = r @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(3)[y]) / len(x)
    dr = dz @ w2
    dh = dr * (h > 0)
    grads = {"0": (dh.T @ x, dh.sum(0)), "2": (dz.T @ r, dz.sum(0))}
    params = {"0": (w1, b1), "2": (w2, b2)}
    for name, out, g in (("0", h, dh), ("1", r, dr), ("2", z, dz)):
        got = rec[name]
        assert got["shape"] == out.shape
        np.testing.assert_allclose(got["act_mean"], out.mean(), rtol=1e-10)
        np.testing.assert_allclose(got["act_std"], out.std(), rtol=1e-10)
        assert got["zero_frac"] == np.mean(out == 0)
        assert got["dead_frac"] == np.mean(np.all(out == 0, axis=0))
        np.testing.assert_allclose(got["grad_norm"], np.linalg.norm(g), rtol=1e-10)
        np.testing.assert_allclose(got["grad_rms"], np.linalg.norm(g) / math.sqrt(g.size), rtol=1e-10)
    assert rec["1"]["dead_frac"] == 2 / 8
    for name in ("0", "2"):
        gw, gb = grads[name]
        w, b = params[name]
        np.testing.assert_allclose(rec[name]["param_grad_norm"], math.sqrt(np.sum(gw ** 2) + np.sum(gb ** 2)),
                                   rtol=1e-10)
        norm = math.sqrt(np.sum(w ** 2) + np.sum(b ** 2))
        np.testing.assert_allclose(rec[name]["param_norm"], norm, rtol=1e-10)
        # plain SGD: the update is lr * grad
        np.testing.assert_allclose(rec[name]["update_ratio"],
                                   lr * math.sqrt(np.sum(gw ** 2) + np.sum(gb ** 2)) / norm, rtol=1e-8)
    assert rec["1"]["param_norm"] is None and rec["1"]["update_ratio"] is None
    assert "dead %" in format_table(monitor.latest())


def test_dead_units_of_an_nchw_output_are_channels():
    rng = np.random.default_rng(0)
    a = np.maximum(rng.standard_normal((4, 6, 5, 5)), 0).astype(np.float32)
    a[:, 1] = 0                          # channel 1 is zero everywhere: dead
    a[:3, 4] = 0                         # channel 4 fires for one example only: alive
    s = activation_stats(a)
    dead = [c for c in range(6) if not a[:, c].any()]
    assert s["dead_frac"] == len(dead) / 6 == 1 / 6
    assert s["zero_frac"] == pytest.approx(float((a == 0).mean()))
    assert s["act_std"] == pytest.approx(float(a.astype(np.float64).std()), rel=1e-6)
    assert s["shape"] == (4, 6, 5, 5)


def test_hooks_are_attached_only_on_monitored_steps():
    net = tiny_net()
    opt = optim.SGD(net.parameters(), lr=0.01)
    monitor = LayerMonitor(net, every=3)
    x, y = np.ones((2, 5), np.float32), np.array([0, 1])
    attached = []
    for step in range(7):
        attached.append(len(net[0].__dict__.get("_forward_hooks", [])))
        loss = F.cross_entropy(net(md.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        monitor.before_step()
        opt.step()
        monitor.after_step()
    assert attached == [1, 0, 0, 1, 0, 0, 1]
    assert monitor.steps() == [0, 3, 6]
    steps, values = monitor.series("2", "grad_norm")
    assert steps == [0, 3, 6] and all(v > 0 for v in values)
    monitor.remove()
    assert net[0].__dict__.get("_forward_hooks") == []


def test_forward_under_no_grad_is_not_recorded():
    net = tiny_net()
    monitor = LayerMonitor(net, every=1)
    with md.no_grad():
        net(md.tensor(np.ones((2, 5), np.float32)))
    monitor.end_step()
    assert monitor.history == []


def test_unknown_layer_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown layer name.*'classifier\.9'.*valid layer names: 0, 1, 2"):
        LayerMonitor(tiny_net(), layers=["0", "classifier.9"])
    with pytest.raises(ValueError, match="every"):
        LayerMonitor(tiny_net(), every=0)
    monitor = LayerMonitor(tiny_net(), layers=["1"])
    with pytest.raises(ValueError, match="valid ones"):
        monitor.series("1", "mean")


# ---------------------------------------------------------------------------- health check
def blobs(rng, n=512):
    """Three well-separated Gaussian blobs in 5-D: a problem a tiny MLP learns in ~100 steps."""
    centres = np.array([[2, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 2, 0, 0]], np.float32)
    y = rng.integers(0, 3, n)
    return (centres[y] + 0.5 * rng.standard_normal((n, 5))).astype(np.float32), y


def run_tiny(net, lr, steps=60, every=10, health=None):
    rng = np.random.default_rng(0)
    x_all, y_all = blobs(rng)
    opt = optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    monitor = LayerMonitor(net, every=every)
    health = health or HealthCheck(3, chance_steps=40)
    warnings, losses = [], []
    for step in range(steps):
        idx = rng.integers(0, len(y_all), 32)
        loss = F.cross_entropy(net(md.tensor(x_all[idx])), y_all[idx])
        opt.zero_grad()
        loss.backward()
        monitor.before_step()
        opt.step()
        monitor.after_step()
        losses.append(loss.item())
        warnings += health.check(step, loss.item(), monitor)
    return warnings, losses


def test_stuck_at_chance_fires_once_on_an_all_zero_initialisation():
    net = tiny_net()
    for p in net.parameters():
        p.data[...] = 0
    warnings, losses = run_tiny(net, lr=0.1)
    stuck = [w for w in warnings if "stuck at chance" in w]
    assert len(stuck) == 1, warnings
    assert "ln(3) = 1.099" in stuck[0] and "initialisation" in stuck[0] and "learning rate" in stuck[0]
    # the layer-level causes are named too, each once
    assert any("weights of layer '0'" in w and "all zero" in w for w in warnings)
    assert any("'1' (ReLU) has 100% dead units" in w for w in warnings)
    assert len(warnings) == len(set(warnings))


def test_stuck_at_chance_and_no_updates_with_zero_learning_rate():
    net = tiny_net()
    for p in net.parameters():        # tiny weights: the logits are ~0, the loss ~ln(3)
        p.data[...] = np.random.default_rng(0).normal(0, 1e-3, p.shape)
    warnings, _ = run_tiny(net, lr=0.0)
    assert sum("stuck at chance" in w for w in warnings) == 1
    ratio = [w for w in warnings if "update-to-weight ratio" in w]
    assert ratio and "barely learning" in ratio[0] and "learning rate" in ratio[0]


def test_health_check_is_silent_on_a_healthy_run():
    md.manual_seed(3)
    net = tiny_net()
    warnings, losses = run_tiny(net, lr=0.05, steps=100)
    assert np.mean(losses[-10:]) < 0.3, "the toy problem should have been learnt"
    assert warnings == []


def record(layer, kind, **stats):
    base = dict(step=0, layer=layer, type=kind, shape=(2, 2), act_mean=0.0, act_std=1.0, zero_frac=0.5,
                dead_frac=0.0, grad_norm=1.0, grad_rms=1.0, param_norm=1.0, param_grad_norm=1.0,
                update_ratio=1e-3)
    return {**base, **stats}


def test_vanishing_and_exploding_gradients_name_the_layers():
    health = HealthCheck(10, patience=1)
    out = health.check_records(0, [record("features.0", "Conv2d", grad_rms=1e-9),
                                   record("features.3", "Conv2d", grad_rms=1e-3),
                                   record("classifier.0", "Linear", grad_rms=1e3)])
    assert len(out) == 2
    assert "vanishes from layer 'features.3' to layer 'features.0'" in out[0] and "initialisation" in out[0]
    assert "vanishes from layer 'classifier.0' to layer 'features.3'" in out[1]
    out = health.check_records(1, [record("a", "Linear", grad_rms=5e3), record("b", "Linear", grad_rms=1.0)])
    assert len(out) == 1 and "explodes from layer 'b' to layer 'a'" in out[0]
    out = health.check_records(2, [record("a", "Linear", grad_rms=float("nan"))])
    assert len(out) == 0   # layer 'a' has already had its gradient warning: once per layer


def test_layer_warnings_need_patience():
    health = HealthCheck(10, patience=2)
    dead = [record("relu", "ReLU", dead_frac=0.95, zero_frac=0.97)]
    assert health.check_records(0, dead) == []
    assert health.check_records(1, [record("relu", "ReLU")]) == []        # streak broken
    assert health.check_records(2, dead) == []
    out = health.check_records(3, dead)
    assert len(out) == 1 and "layer 'relu' (ReLU) has 95% dead units" in out[0]
    assert health.check_records(4, dead) == []                             # fires once


def test_non_finite_loss_and_bad_arguments():
    health = HealthCheck(10)
    out = health.check(0, float("nan"))
    assert len(out) == 1 and "diverged" in out[0]
    with pytest.raises(ValueError, match="num_classes"):
        HealthCheck(1)


# ---------------------------------------------------------------------------------- figures
def test_layers_png_is_written(tmp_path):
    net = tiny_net()
    monitor = LayerMonitor(net, every=1)
    opt = optim.SGD(net.parameters(), lr=0.05)
    for _ in range(3):
        loss = F.cross_entropy(net(md.tensor(np.ones((4, 5), np.float32))), np.array([0, 1, 2, 0]))
        opt.zero_grad()
        loss.backward()
        monitor.before_step()
        opt.step()
        monitor.after_step()
    path = tmp_path / "layers.png"
    plot_layers(monitor.history, str(path), title="tiny")
    assert path.stat().st_size > 1000


# --------------------------------------------------------------------------------- commands
def fashion_mnist_present():
    try:
        FashionMNIST(train=False, download=False)
    except Exception:
        return False
    return True


def test_diagnose_compares_two_initialisations(tmp_path, capsys):
    out = tmp_path / "diag"
    status = main(["diagnose", "--model", "mini", "--dataset", "random", "--width", "0.125", "--batch-size", "4",
                   "--init", "paper", "kaiming", "--layers", "features.0", "features.4", "classifier.6",
                   "--out", str(out)])  # three layers: matplotlib is slow to draw many panels
    assert status == 0
    text = capsys.readouterr().out
    assert "side by side" in text and "features.0" in text and "classifier.6" in text
    assert "features.1 " not in text
    saved = json.loads((out / "diagnose.json").read_text())
    assert set(saved["results"]) == {"paper", "kaiming"}
    paper = {r["layer"]: r for r in saved["results"]["paper"]["records"]}
    kaiming = {r["layer"]: r for r in saved["results"]["kaiming"]["records"]}
    # N(0, 0.01) shrinks the signal in the first conv; He init keeps its std near 1
    assert paper["features.0"]["act_std"] < 0.2 < kaiming["features.0"]["act_std"]
    assert all(r["grad_norm"] is not None for r in saved["results"]["kaiming"]["records"])
    assert (out / "histograms-paper.png").stat().st_size > 1000
    assert (out / "histograms-kaiming.png").stat().st_size > 1000


def test_diagnose_unknown_layer_lists_the_valid_ones(tmp_path, capsys):
    status = main(["diagnose", "--model", "mini", "--dataset", "random", "--width", "0.125", "--batch-size", "2",
                   "--layers", "features.0", "fc9", "--out", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err
    assert "unknown layer name(s) ['fc9']" in err and "features.0, features.1" in err and "classifier.6" in err


def test_unknown_ablation_setting_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ValueError, match="valid settings: baseline, no-lrn, batchnorm"):
        parse_settings(["baseline", "no-lrm"])
    assert parse_settings(["baseline,no-lrn", "no-dropout"]) == ["baseline", "no-lrn", "no-dropout"]
    status = main(["ablate", "--settings", "lrn-off", "--out", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err
    assert "'lrn-off'" in err and all(name in err for name in SETTINGS)


@pytest.mark.skipif(not fashion_mnist_present() and not os.environ.get("CI"),
                    reason="Fashion-MNIST files not found (apt-get install dataset-fashion-mnist)")
def test_ablate_on_a_tiny_subset_writes_its_table(tmp_path, capsys):
    out = tmp_path / "ablation"
    status = main(["ablate", "--models", "mini", "--settings", "baseline", "no-lrn", "--seeds", "2",
                   "--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--batch-size", "32",
                   "--width", "0.125", "--out", str(out), "--quiet"])
    assert status == 0
    saved = json.loads((out / "ablation.json").read_text())
    assert [(r["setting"], r["seed"]) for r in saved["runs"]] == [("baseline", 0), ("baseline", 1),
                                                                   ("no-lrn", 0), ("no-lrn", 1)]
    rows = {r["setting"]: r for r in saved["summary"]}
    for row in rows.values():
        errors = [r["test_error"] for r in saved["runs"] if r["setting"] == row["setting"]]
        assert row["mean_error"] == pytest.approx(np.mean(errors))
        assert row["std_error"] == pytest.approx(np.std(errors, ddof=1))
        assert all(0 <= e <= 1 for e in errors)
    assert rows["no-lrn"]["delta_error"]["diff"] == pytest.approx(rows["no-lrn"]["mean_error"]
                                                                  - rows["baseline"]["mean_error"])
    assert [c["claim"] for c in saved["claims"]] == ["LRN lowers top-1 error"]
    # a rerun of the same command trains nothing: every run is read back from its result.json
    status = main(["ablate", "--models", "mini", "--settings", "baseline", "no-lrn", "--seeds", "2",
                   "--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--batch-size", "32",
                   "--width", "0.125", "--out", str(out), "--quiet"])
    assert status == 0 and "done before, kept" in capsys.readouterr().out
    assert json.loads((out / "ablation.json").read_text())["summary"] == saved["summary"]
    table = (out / "ablation.md").read_text()
    assert "| mini | baseline |" in table and "| mini | no-lrn |" in table
    assert (out / "ablation.png").stat().st_size > 1000


def test_trainer_runs_the_monitor_and_health_check_and_writes_layers_png(tmp_path):

    class Tiny:
        classes = ["a", "b", "c"]
        images = np.random.default_rng(0).integers(0, 256, (48, 1, 2, 2)).astype(np.uint8)
        targets = np.arange(48) % 3

        def __len__(self):
            return 48

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    for p in net.parameters():
        p.data[...] = 0                                # broken on purpose
    loader = DataLoader(Tiny(), batch_size=16, prefetch=0)
    messages = []
    trainer = Trainer(net, optim.SGD(net.parameters(), lr=0.1), loader, loader, epochs=2, num_classes=3,
                      out_dir=str(tmp_path), progress=False, monitor_every=2, log=messages.append)
    trainer.fit()
    assert trainer.monitor.steps() == [0, 2, 4]
    warnings = [m for m in messages if m.startswith("health check")]
    assert any("weights of layer '1' (Linear) are all zero" in m for m in warnings)
    assert len(warnings) == len(set(warnings))
    assert (tmp_path / "layers.png").stat().st_size > 1000


def test_stuck_at_chance_uses_window_means():
    chance = math.log(10)
    wobbling = HealthCheck(10, chance_steps=40)   # a stuck net whose per-batch loss wobbles by +-0.1
    fired = [step for step in range(60) if wobbling.check(step, chance + (0.1 if step % 2 else -0.1))]
    assert fired == [39]
    passing = HealthCheck(10, chance_steps=40)    # a loss falling through ln(10): window mean ~2.3
    losses = np.linspace(3.0, 1.6, 40)
    assert abs(losses.mean() - chance) < 0.05
    assert not any(passing.check(step, loss) for step, loss in enumerate(losses))


def test_tiny_updates_are_not_reported_while_the_schedule_anneals():
    class Monitor:
        def __init__(self):
            self.step = 0

        def latest(self):
            return [record("fc", "Linear", update_ratio=1e-7) | {"step": self.step}]

    monitor = Monitor()
    annealing = HealthCheck(10, patience=1)
    assert annealing.check(0, 1.0, monitor, lr_scale=0.01) == []    # lr at 1% of its peak: expected
    warned = HealthCheck(10, patience=1)
    out = warned.check(0, 1.0, monitor, lr_scale=1.0)
    assert len(out) == 1 and "barely learning" in out[0]
