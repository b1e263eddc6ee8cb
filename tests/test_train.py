"""The trainer: bit-identical resumption (epoch boundary and mid-epoch, with dropout), NaN stop,
label and output-directory errors, schedules, evaluation metrics and the figures."""
from __future__ import annotations

import json
import os

import time

import numpy as np
import pytest

import alexnet
import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader

from minidl.train import checkpoint as ckpt_io
from minidl.train import plots
from minidl.train import trainer as trainer_module
from minidl.train.trainer import (CHECKPOINT, METRICS, Schedule, Trainer, TrainingDiverged, TrainingInterrupted,
                           check_labels, evaluate, prepare_out_dir, topk_correct)


class TinyDataset:
    """The dataset contract: uint8 (N, C, H, W) images, int64 targets, class names."""

    def __init__(self, n=96, classes=3, seed=0, size=6):
        rng = np.random.default_rng(seed)
        self.targets = rng.integers(0, classes, n).astype(np.int64)
        base = np.random.default_rng(1234).integers(0, 256, (classes, 1, size, size))  # shared by all splits
        noise = rng.integers(-60, 60, (n, 1, size, size))
        self.images = np.clip(base[self.targets] + noise, 0, 255).astype(np.uint8)
        self.classes = [f"c{i}" for i in range(classes)]

    def __len__(self):
        return len(self.targets)


def tiny_model(classes=3, size=6):
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 16), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(16, classes))


def make_trainer(out_dir, *, epochs=2, callback=None, schedule="onecycle", optimizer="sgd", lr=0.1, n=96):
    """Everything seeded from scratch, as the command line does: seed, model, loaders, optimizer."""
    md.manual_seed(7)
    model = tiny_model()
    train_loader = DataLoader(TinyDataset(n), batch_size=16, shuffle=True, prefetch=0,
                              transform=lambda x, rng: x + rng.normal(0, 0.05, x.shape).astype(np.float32))
    test_loader = DataLoader(TinyDataset(40, seed=1), batch_size=16)
    if optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=lr / 10, weight_decay=1e-4)
    else:
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = Schedule(schedule, opt, epochs=epochs, steps_per_epoch=len(train_loader), patience=0, step_size=1)
    return Trainer(model, opt, train_loader, test_loader, epochs=epochs, num_classes=3, out_dir=str(out_dir),
                   schedule=sched, classes=train_loader.dataset.classes, meta={"model": "tiny", "options": {}},
                   callback=callback, progress=False, plots=False, log=lambda *a: None)


def interrupt_at(epoch, step):
    def callback(trainer, e, s):
        if (e, s) == (epoch, step):
            raise KeyboardInterrupt
    return callback


def weights(trainer):
    return trainer.model.state_dict()


def assert_same_weights(a, b):
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("schedule,optimizer", [("onecycle", "sgd"), ("plateau", "adam"), ("step", "sgd")])
def test_resume_mid_epoch_and_at_epoch_boundary_is_bit_identical(tmp_path, schedule, optimizer):
    straight = make_trainer(tmp_path / "a", schedule=schedule, optimizer=optimizer)
    metrics = straight.fit()
    reference = weights(straight)
    assert len(metrics["epochs"]) == 2

    # interrupted mid-epoch (epoch 1, step 3), then at the epoch boundary (epoch 2, step 0), resumed twice
    out = tmp_path / "b"
    with pytest.raises(TrainingInterrupted) as info:
        make_trainer(out, schedule=schedule, optimizer=optimizer, callback=interrupt_at(0, 3)).fit()
    assert info.value.saved and (info.value.epoch, info.value.step) == (0, 3)
    assert "--resume" in str(info.value)
    saved = ckpt_io.load_checkpoint(str(out / CHECKPOINT))
    assert (saved.meta["epoch"], saved.meta["step"]) == (0, 3)
    with pytest.raises(TrainingInterrupted):
        make_trainer(out, schedule=schedule, optimizer=optimizer, callback=interrupt_at(1, 0)).fit(resume=True)
    resumed = make_trainer(out, schedule=schedule, optimizer=optimizer)
    resumed_metrics = resumed.fit(resume=True)
    assert_same_weights(weights(resumed), reference)
    # the optimizer state and the recorded training figures agree too
    for a, b in zip(straight.optimizer.state_dict()["state"].values(),
                    resumed.optimizer.state_dict()["state"].values()):
        for k in a:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    for a, b in zip(metrics["epochs"], resumed_metrics["epochs"]):
        for key in ("train_loss", "train_acc", "test_acc", "test_top5", "lr"):
            assert a[key] == b[key], key


def test_real_ctrl_c_stops_at_a_step_boundary_and_resumes_identically(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=1)
    straight.fit()

    def ctrl_c(trainer, epoch, step):
        if (epoch, step) == (0, 2):
            os.kill(os.getpid(), signal.SIGINT)     # the first Ctrl-C only asks the loop to stop
    out = tmp_path / "b"
    before = signal.getsignal(signal.SIGINT)   # Python's default, or SIG_IGN in a background job
    with pytest.raises(TrainingInterrupted) as info:
        make_trainer(out, epochs=1, callback=ctrl_c).fit()
    assert info.value.saved and info.value.step == 2
    assert signal.getsignal(signal.SIGINT) is before   # the handler in place before fit(), restored
    resumed = make_trainer(out, epochs=1)
    resumed.fit(resume=True)
    assert_same_weights(weights(resumed), weights(straight))


def test_dropout_is_active_so_resume_test_is_meaningful(tmp_path):
    """Dropout masks depend on the RNG counter: a run resumed with a different counter diverges."""
    straight = make_trainer(tmp_path / "a", epochs=1)
    straight.fit()
    out = tmp_path / "b"
    with pytest.raises(TrainingInterrupted):
        make_trainer(out, epochs=1, callback=interrupt_at(0, 2)).fit()
    trainer = make_trainer(out, epochs=1)
    original = md.set_rng_state

    def shifted(state):  # restore everything except the dropout counter
        original({**state, "dropout_calls": state["dropout_calls"] + 1})
    md.set_rng_state = shifted
    try:
        trainer.fit(resume=True)
    finally:
        md.set_rng_state = original
    a, b = weights(straight), weights(trainer)
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_metrics_json_schema_and_checkpoint_each_epoch(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.fit()
    metrics = json.loads((tmp_path / METRICS).read_text())
    assert set(metrics) >= {"model", "dataset", "epochs", "best_test_acc"}
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    for e in metrics["epochs"]:
        assert set(e) >= {"epoch", "train_loss", "train_acc", "test_acc", "test_top5", "lr", "seconds", "images_per_s"}
        assert 0 <= e["train_acc"] <= 1 and 0 <= e["test_acc"] <= e["test_top5"] <= 1
        assert e["seconds"] > 0 and e["images_per_s"] > 0
    assert metrics["best_test_acc"] == max(e["test_acc"] for e in metrics["epochs"])
    # the classes are separable: the tiny model learns something
    assert metrics["epochs"][-1]["test_acc"] > 0.6
    saved = ckpt_io.load_checkpoint(str(tmp_path / CHECKPOINT))
    assert (saved.meta["epoch"], saved.meta["step"]) == (2, 0)
    assert_same_weights(saved.model_state, weights(trainer))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    def poison(trainer, epoch, step):
        if (epoch, step) == (1, 2):
            trainer.model[1].weight.data[0, 0] = np.nan
    trainer = make_trainer(tmp_path, epochs=3, callback=poison)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3 of 6"):
        trainer.fit()
    saved = ckpt_io.load_checkpoint(str(tmp_path / CHECKPOINT))
    assert (saved.meta["epoch"], saved.meta["step"]) == (1, 0)
    assert all(np.isfinite(v).all() for v in saved.model_state.values())
    assert len(json.loads((tmp_path / METRICS).read_text())["epochs"]) == 1


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    before = (tmp_path / CHECKPOINT).read_bytes()
    trainer.model[4].bias.data[0] = np.inf
    with pytest.raises(TrainingDiverged, match="not overwriting"):
        trainer.save_checkpoint(1, 0, {}, md.get_rng_state())
    assert (tmp_path / CHECKPOINT).read_bytes() == before


class FakeClock:
    """The trainer's time-budget clock; the test moves it."""

    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def test_time_budget_stops_mid_epoch_and_the_schedule_follows_the_clock_once_the_run_would_overrun(tmp_path):
    clock, lrs = FakeClock(), []

    def tick(trainer, epoch, step):      # steps 0-1 take 0.01 s each, later ones 15 s of the 100 s budget
        lrs.append(trainer.schedule.lr)
        clock.now += 15.0 if (epoch, step) >= (0, 2) else 0.01
    trainer = make_trainer(tmp_path, epochs=2, callback=tick)
    trainer.clock, trainer.time_budget = clock, 100.0
    s = trainer.schedule
    metrics = trainer.fit()
    # step 3 is the first whose projection (15 s a step for the 9 steps left) passes the budget
    assert metrics["schedule_followed_clock_from"] == "epoch 1, step 3"
    for step in range(3):                 # lrs[k + 1] is the rate step k used
        assert lrs[step + 1] == 0.1 * s.factor(step / 12)
    assert lrs[4] != pytest.approx(0.1 * s.factor(3 / 12), rel=1e-3)   # step 3: by the clock, ahead
    assert lrs[5] < 0.1 * s.factor(4 / 12)                              # step 4: further down the cycle
    # the budget then ends the run mid-epoch, the schedule near its end
    assert "time budget" in metrics["stopped"]
    last = metrics["epochs"][-1]
    assert 0 < last["partial_epoch_steps"] < 6 and last["epoch_fraction"] == pytest.approx(last["partial_epoch_steps"] / 6)
    assert lrs[-1] < 0.1 * s.factor(0.8)
    assert ckpt_io.load_checkpoint(str(tmp_path / CHECKPOINT)).meta["epoch"] == len(metrics["epochs"])


def test_a_run_that_fits_its_budget_is_bit_identical_to_one_without(tmp_path):
    """Start-up (data loading, a cold Numba cache) puts the clock ahead of the steps at first; a
    schedule that followed max(steps, clock) from the start made every budgeted run depend on the
    clock, even one that ends well inside its budget."""
    plain = make_trainer(tmp_path / "plain", epochs=2)
    plain.fit()
    clock = FakeClock(now=100.0)          # 100 s of a 1000 s budget went to start-up

    def tick(trainer, epoch, step):
        clock.now += 1.0
    budgeted = make_trainer(tmp_path / "budgeted", epochs=2, callback=tick)
    budgeted.clock, budgeted.time_budget, budgeted.start_time = clock, 1000.0, 0.0
    metrics = budgeted.fit()
    assert metrics["stopped"] is None and metrics["schedule_followed_clock_from"] is None
    for name, value in weights(plain).items():
        assert np.array_equal(value.numpy(), weights(budgeted)[name].numpy()), name


def test_a_budget_spent_at_an_epoch_boundary_records_no_empty_epoch(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3)
    trainer.time_budget = 1e6
    finish = trainer._finish_epoch

    def finish_then_age(epoch, running):   # epoch 1's evaluation spends the whole budget
        finish(epoch, running)
        trainer.start_time -= 2 * trainer.time_budget
    trainer._finish_epoch = finish_then_age
    metrics = trainer.fit()
    assert "time budget" in metrics["stopped"]
    assert [r["epoch"] for r in metrics["epochs"]] == [1]          # no zero-step epoch 2 with loss 0
    assert "partial_epoch_steps" not in metrics["epochs"][0]
    assert ckpt_io.load_checkpoint(str(tmp_path / CHECKPOINT)).meta["epoch"] == 1


def test_a_slow_first_step_does_not_spend_the_time_budget(tmp_path):
    """A cold Numba cache makes the first step ~20 s.  The time reserved for the final evaluation
    used to be estimated from that step's rate, which on a fresh machine exceeded the whole budget
    and ended the main job after one step; the rate now starts after the first step."""
    def compile_once(trainer, epoch, step):
        if (epoch, step) == (0, 0):
            time.sleep(1.0)   # counted in the first step's time
    trainer = make_trainer(tmp_path, epochs=1, callback=compile_once)
    trainer.test_loader = DataLoader(TinyDataset(3000, seed=1), batch_size=16)
    trainer.time_budget = 10.0    # the old estimate: 3000 images / (3 x 16 img/s) = 62 s > 10 s
    metrics = trainer.fit()
    assert metrics["stopped"] is None and metrics["epochs"][0]["epoch"] == 1
    assert "partial_epoch_steps" not in metrics["epochs"][0]


def test_label_smoothing_reaches_the_training_loss(tmp_path, monkeypatch):
    """The trainer's loss is F.cross_entropy with the given label_smoothing (held to the formula
    (1 - eps) * nll + eps * mean over classes of -log p)."""
    seen = []
    real = trainer_module.F.cross_entropy

    def recording(logits, target, **kwargs):
        loss = real(logits, target, **kwargs)
        seen.append((logits.data.copy(), np.asarray(target).copy(), kwargs.get("label_smoothing", 0.0), loss.item()))
        return loss
    monkeypatch.setattr(trainer_module.F, "cross_entropy", recording)
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.label_smoothing = 0.2
    trainer.fit()
    assert seen and all(eps == 0.2 for *_, eps, _ in seen)
    logits, target, eps, loss = seen[0]
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    expected = np.mean((1 - eps) * -log_p[np.arange(len(target)), target] + eps * -log_p.mean(axis=1))
    assert abs(loss - expected) < 1e-5 * abs(expected)
    with pytest.raises(ValueError, match="label_smoothing must be a probability"):
        Trainer(trainer.model, trainer.optimizer, trainer.train_loader, trainer.test_loader, epochs=1,
                num_classes=3, label_smoothing=1.5)


def test_labels_outside_the_models_classes(tmp_path):
    md.manual_seed(0)
    model = tiny_model(classes=3)
    train = DataLoader(TinyDataset(32, classes=5), batch_size=8)
    with pytest.raises(ValueError, match=r"labels in \[0, 4\].*num_classes=3"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), train, train, epochs=1, num_classes=3, progress=False)
    with pytest.raises(ValueError, match="5 classes"):
        ds = TinyDataset(8, classes=3)
        ds.classes = ["a", "b", "c", "d", "e"]
        check_labels(ds, 3, "the training set")


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="cannot write to the output directory"):
        prepare_out_dir(str(blocker / "run"))
    trainer = make_trainer(blocker / "run", epochs=1)
    with pytest.raises(ValueError, match="cannot write"):
        trainer.fit()


def test_resume_checks_the_checkpoint_fits(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    other = make_trainer(tmp_path, epochs=1)
    other.meta["model"] = "other"
    with pytest.raises(ckpt_io.CheckpointError, match="written for model 'tiny'"):
        other.fit(resume=True)
    bigger = make_trainer(tmp_path, epochs=1, n=128)
    with pytest.raises(ckpt_io.CheckpointError, match="6 steps per epoch"):
        bigger.fit(resume=True)


def test_schedules_follow_their_formulas():
    model = tiny_model()
    opt = optim.SGD(model.parameters(), lr=1.0)
    s = Schedule("onecycle", opt, epochs=1, steps_per_epoch=10)
    assert s.factor(0) == pytest.approx(1 / 25) and s.factor(0.3) == pytest.approx(1.0)
    assert s.factor(1) == pytest.approx(1 / 25 / 1e4)
    c = Schedule("cosine", opt, warmup=0.1)
    assert c.factor(0.05) == pytest.approx(0.5) and c.factor(0.1) == pytest.approx(1.0)
    assert c.factor(0.55) == pytest.approx(0.5) and c.factor(1.0) == pytest.approx(0.0)
    c.before_step(0.55)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    p = Schedule("plateau", optim.SGD(model.parameters(), lr=1.0), patience=0, times=2)
    for acc in (0.5, 0.4, 0.3, 0.2, 0.1):
        p.after_epoch(acc)
    assert p.lr == pytest.approx(0.01)      # reduced twice, then held
    st = Schedule("step", optim.SGD(model.parameters(), lr=1.0), step_size=2, gamma=0.5)
    for _ in range(4):
        st.after_epoch(0.0)
    assert st.lr == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown kind"):
        Schedule("linear", opt)


def test_evaluate_matches_a_direct_computation():
    md.manual_seed(3)
    model = tiny_model()
    ds = TinyDataset(37, seed=4)
    result = evaluate(model, DataLoader(ds, batch_size=10), 3)
    assert model.training                    # evaluate() restores the training mode
    with md.no_grad():
        model.eval()
        logits = model(md.tensor(ds.images.astype(np.float32) / 255)).numpy().astype(np.float64)
    pred = logits.argmax(1)
    assert result.count == 37
    assert result.top1 == pytest.approx(np.mean(pred == ds.targets))
    expected = np.zeros((3, 3), int)
    for t, p_ in zip(ds.targets, pred):
        expected[t, p_] += 1
    assert np.array_equal(result.confusion, expected)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert result.loss == pytest.approx(-logp[np.arange(37), ds.targets].mean())
    assert result.top5 == 1.0                # 3 classes: always in the top 5


def test_topk_correct():
    scores = np.array([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3, 0.4]] * 2)
    assert topk_correct(scores, np.array([1, 4]), 5).tolist() == [True, False]
    assert topk_correct(scores, np.array([3, 0]), 1).tolist() == [True, False]


def test_filter_grid_tiles_and_scales_each_filter():
    w = np.random.default_rng(0).normal(size=(10, 1, 5, 5))
    grid = plots.filter_grid(w)
    assert grid.shape == (3 * 6 + 1, 4 * 6 + 1, 1)      # 10 filters: 4 columns, 3 rows, 1-pixel gaps
    for i in range(10):                                    # each tile is its filter scaled to [0, 1]
        r, c = divmod(i, 4)
        tile = grid[1 + 6 * r:6 + 6 * r, 1 + 6 * c:6 + 6 * c, 0]
        assert np.allclose(tile, (w[i, 0] - w[i].min()) / (w[i].max() - w[i].min()))
    rgb = plots.filter_grid(np.random.default_rng(1).normal(size=(4, 3, 3, 3)))
    assert rgb.shape == (9, 9, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # the PNGs themselves are checked by the command-line smoke runs below


# ------------------------------------------------------------------------------ command line
import subprocess  # noqa: E402
import sys  # noqa: E402

from alexnet.__main__ import main  # noqa: E402
import signal
from PIL import Image
from alexnet.__main__ import make_parser
from alexnet.commands import train as train_cmd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"
PNGS = ("curves.png", "conv1_filters.png", "confusion.png")
# --time-budget 0: the main job's recipe has a clock budget, which makes the per-step schedule follow
# the clock; bit-identical resumption needs a run whose schedule depends on the step alone.
TINY = ["--width", "0.125", "--batch-size", "16", "--epochs", "1", "--no-progress", "--prefetch", "1",
        "--time-budget", "0"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 classes x 12 RGB PNGs of 20x24 pixels, one colour per class plus noise."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"class{c}").mkdir()
        base = rng.integers(0, 256, 3)
        for i in range(12):
            pixels = np.clip(base + rng.integers(-40, 40, (20, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "alexnet", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": REPO, "OPENBLAS_THREAD_TIMEOUT": "1"})


def check_run_outputs(out, epochs):
    metrics = json.loads((out / METRICS).read_text())
    assert set(metrics) >= {"model", "dataset", "epochs", "best_test_acc"}
    assert len(metrics["epochs"]) == epochs
    for e in metrics["epochs"]:
        assert set(e) >= {"epoch", "train_loss", "train_acc", "test_acc", "test_top5", "lr", "seconds", "images_per_s"}
        assert 0 <= e["test_acc"] <= e["test_top5"] <= 1 and 0 <= e["train_acc"] <= 1
    for name in PNGS:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    return metrics


def test_cli_smoke_on_an_image_folder_then_evaluate(tmp_path, image_folder, capsys):
    """In-process, to keep the tests fast; the Fashion-MNIST smoke run below uses a subprocess."""
    out = tmp_path / "run"
    assert main(["train", "--dataset", "folder", "--data-dir", str(image_folder), "--out", str(out), *TINY]) == 0
    metrics = check_run_outputs(out, 1)
    assert metrics["model"] == "mini" and metrics["dataset"] == "folder"
    assert "test top-1" in capsys.readouterr().out
    # evaluate rebuilds the model from the checkpoint: same top-1 as the training run's last evaluation
    assert main(["evaluate", str(out / CHECKPOINT), "--json", "--no-progress"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["top1"] == metrics["epochs"][-1]["test_acc"]
    assert evaluated["top5"] == metrics["epochs"][-1]["test_top5"]
    assert main(["evaluate", str(out / CHECKPOINT), "--ten-crop", "--no-progress"]) == 0
    assert "top-1" in capsys.readouterr().out


def test_cli_interrupt_and_resume_is_bit_identical(tmp_path, image_folder, capsys):
    common = ["train", "--dataset", "folder", "--data-dir", str(image_folder), *TINY, "--limit-train", "24",
              "--batch-size", "8"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0

    def stop(trainer, epoch, step):
        if (epoch, step) == (0, 1):
            raise KeyboardInterrupt
    args = make_parser().parse_args(common + ["--out", str(tmp_path / "b")])
    assert train_cmd.run(args, callback=stop) == 130
    assert "--resume" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "b")]) == 2               # refuses to overwrite
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "b"), "--lr", "0.5", "--resume"]) == 2
    assert "--lr 0.5 (the checkpoint has" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "b"), "--resume", "--no-progress"]) == 0
    a = ckpt_io.load_checkpoint(str(tmp_path / "a" / CHECKPOINT)).model_state
    b = ckpt_io.load_checkpoint(str(tmp_path / "b" / CHECKPOINT)).model_state
    assert_same_weights(a, b)


def test_cli_bad_input(tmp_path, image_folder, capsys):
    base = ["train", "--dataset", "folder", *TINY]
    # missing data: the dataset's own message passes through
    assert main(base + ["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o1")]) == 2
    assert "nowhere is not a directory" in capsys.readouterr().err
    # an unwritable output directory (a path through a file) fails before the data is read
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(base + ["--data-dir", str(image_folder), "--out", str(blocker / "out")]) == 2
    assert "cannot write to the output directory" in capsys.readouterr().err
    # labels outside the model's classes
    assert main(base + ["--data-dir", str(image_folder), "--num-classes", "2", "--out", str(tmp_path / "o2")]) == 2
    assert "labels in [0, 2], outside the model's classes 0..1" in capsys.readouterr().err
    assert not (tmp_path / "o2" / CHECKPOINT).exists() and not (tmp_path / "o2" / METRICS).exists()
    # a label smoothing outside [0, 1) is refused where it is parsed
    with pytest.raises(SystemExit):
        main(base + ["--data-dir", str(image_folder), "--label-smoothing", "1", "--out", str(tmp_path / "o4")])
    assert "--label-smoothing" in capsys.readouterr().err
    # resume without a checkpoint; evaluate a corrupt checkpoint
    assert main(["train", "--out", str(tmp_path / "o3"), "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert main(["evaluate", str(bad)]) == 2
    assert "bad.npz' is truncated or corrupt" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir(FASHION) and not os.environ.get("CI"),
                    reason=f"the real Fashion-MNIST is not installed in {FASHION} (apt-get install dataset-fashion-mnist)")
def test_cli_smoke_on_real_fashion_mnist(tmp_path, capsys):
    out = tmp_path / "fm"
    result = run_cli("train", "--limit-train", "256", "--limit-test", "128", "--epochs", "1", "--width", "0.25",
                     "--out", out, "--no-progress")
    assert result.returncode == 0, result.stderr
    metrics = check_run_outputs(out, 1)
    assert metrics["dataset"] == "fashion-mnist" and metrics["epochs"][0]["images_per_s"] > 0
    assert metrics["config"]["label_smoothing"] == alexnet.recipe("mini")["label_smoothing"]   # the recipe's key
    assert main(["evaluate", str(out / CHECKPOINT), "--limit-test", "128", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == metrics["epochs"][-1]["test_acc"]
