"""The trainer: the training loop, evaluation, metrics, checkpoints and resumption.

    trainer = Trainer(model, optimizer, train_loader, test_loader, epochs=5, num_classes=10,
                      out_dir="runs/x", schedule=Schedule("onecycle", optimizer, epochs=5,
                                                          steps_per_epoch=len(train_loader)))
    metrics = trainer.fit()            # or fit(resume=True) to continue from out_dir/checkpoint.npz

One training step: forward, ``F.cross_entropy``, a finiteness check of the loss, ``zero_grad``,
backward, ``optimizer.step()``.  After every epoch: top-1/top-5 on the test set (batches under
``md.no_grad()``, ``model.eval()``), ``metrics.json`` and ``checkpoint.npz``, each rewritten
atomically; the figures (curves, first-layer filters, confusion matrix) when training ends.

Bit-identical resumption.  Everything random is a function of saved state: the loader's order
and augmentation depend only on (seed, epoch, batch) (minidl.data.DataLoader), dropout masks on
minidl's RNG counter (saved with ``md.get_rng_state()``), and the learning rate on the schedule's
saved state and the global step.  A checkpoint records the position (epoch, batches done in it),
the running loss/accuracy sums of the epoch, and the RNG state *at the start of* that step, so
``fit(resume=True)`` replays exactly the remaining steps.

Interrupts.  Ctrl-C (SIGINT) and SIGTERM (what a batch scheduler sends) do not cut a step in half:
the first one asks the loop to stop at the next step boundary (then it saves and raises
``TrainingInterrupted``); a second one stops at once.  The position saved with the weights is
committed in the same signal-atomic section as the update (``_DeferredInterrupt.atomic``: a
signal there is held until the section ends), so a checkpoint never pairs new weights with an
old position; a second signal in the middle of a step (the forward pass already moved batch-norm
statistics and the RNG) saves nothing, and the message names the checkpoint that is kept.  The
output directory is locked for the run (minidl.train.lock: a second writer is refused), and the
temporary files of a write killed half-way are removed when the next run starts there.
``--time-budget`` makes the run depend on the clock, so it is not reproducible.

Non-finite loss.  A NaN/inf loss raises ``TrainingDiverged`` naming the epoch and step; the
update is not applied, and checkpoints are never written with non-finite weights, so the last
good checkpoint stays on disk.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

import minidl as md
import minidl.functional as F
from minidl import _validate as V
from minidl import backend
from minidl.distributed import World
from minidl.optim.lr_scheduler import anneal_cos, anneal_linear, cosine_annealing, piecewise_anneal

from . import checkpoint as ckpt_io
from .checkpoint import CheckpointError  # noqa: F401  (re-exported for callers)
from . import plots
from .diagnostic_plots import plot_layers
from .health import HealthCheck
from .lock import OutDirLock
from .monitor import LayerMonitor

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.json"
SCHEDULES = ("none", "step", "plateau", "cosine", "onecycle")


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM (``signum``); ``saved`` tells whether a checkpoint was
    written at ``epoch``/``step``."""

    def __init__(self, message, saved: bool, epoch: int, step: int, signum: int = signal.SIGINT):
        super().__init__(message)
        self.saved, self.epoch, self.step, self.signum = saved, epoch, step, int(signum)


# ------------------------------------------------------------------------------ schedules
class Schedule:
    """A learning-rate schedule, per epoch or per step.

    kind:
      "none"      constant lr;
      "step"      lr * gamma ** (epoch // step_size)  (StepLR, stepped after each epoch);
      "plateau"   lr * factor after ``patience`` epochs without a better test top-1
                  (ReduceLROnPlateau, mode "max"); at most ``times`` reductions;
      "cosine"    per step: linear warm-up over the first ``warmup`` fraction of all steps from
                  0 to lr, then half a cosine down to lr * ``final``;
      "onecycle"  per step, OneCycleLR's curve with cosine annealing: lr / div_factor up to lr
                  over ``pct_start`` of training, then down to lr / (div_factor * final_div_factor);
                  the phases end at fractions pct_start and 1 of training (torch's OneCycleLR ends
                  them at steps pct_start * total - 1 and total - 1), and momentum is not cycled.
    Per-step schedules are a pure function of the progress p in [0, 1] (the global step over
    all steps, or the fraction of a time budget used, whichever is larger), so their saved state
    is just the base learning rates.
    """

    def __init__(self, kind: str, optimizer, *, epochs: int = 1, steps_per_epoch: int = 1, step_size: int | None = None,
                 gamma: float = 0.1, factor: float = 0.1, patience: int = 2, times: int | None = None,
                 warmup: float = 0.0, final: float = 0.0, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4):
        kind = {"constant": "none", None: "none"}.get(kind, kind)
        if kind not in SCHEDULES:
            raise ValueError(f"schedule: unknown kind {kind!r}; choose one of {SCHEDULES}")
        if not 0 <= warmup < 1 or not 0 < pct_start < 1:
            raise ValueError(f"schedule: warmup must be in [0, 1) and pct_start in (0, 1), got {warmup}, {pct_start}")
        self.kind, self.optimizer = kind, optimizer
        self.epochs, self.steps_per_epoch = int(epochs), int(steps_per_epoch)
        self.warmup, self.final = float(warmup), float(final)
        self.pct_start, self.div_factor, self.final_div_factor = float(pct_start), float(div_factor), float(final_div_factor)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.inner = None
        if kind == "step":
            step_size = max(1, epochs // 3) if step_size is None else step_size
            self.inner = md.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
        elif kind == "plateau":
            min_lr = 0.0 if times is None else min(self.base_lrs) * factor ** int(times) * (1 - 1e-9)
            self.inner = md.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=factor,
                                                                 patience=int(patience), min_lr=min_lr)

    @property
    def per_step(self) -> bool:
        return self.kind in ("cosine", "onecycle")

    def factor(self, p: float) -> float:
        """The lr multiplier at progress p in [0, 1] of a per-step schedule (curves: minidl.optim.lr_scheduler)."""
        p = min(max(p, 0.0), 1.0)
        if self.kind == "cosine":
            if p < self.warmup:
                return anneal_linear(0.0, 1.0, (p + 1e-12) / self.warmup)
            return cosine_annealing(1.0, self.final, (p - self.warmup) / (1 - self.warmup), 1.0)
        if self.kind == "onecycle":  # OneCycleLR's phases, in fractions of training rather than steps
            start, end = 1 / self.div_factor, 1 / (self.div_factor * self.final_div_factor)
            return piecewise_anneal(p, [(self.pct_start, start, 1.0), (1.0, 1.0, end)], anneal_cos)
        return 1.0

    def before_step(self, progress: float) -> None:
        if self.per_step:
            f = self.factor(progress)
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * f

    def after_epoch(self, test_acc: float) -> None:
        if self.kind == "step":
            self.inner.step()
        elif self.kind == "plateau":
            self.inner.step(test_acc)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"kind": self.kind, "base_lrs": list(self.base_lrs),
                "inner": None if self.inner is None else self.inner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"schedule: saved kind {state.get('kind')!r} differs from {self.kind!r}")
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        if self.inner is not None and state.get("inner") is not None:
            self.inner.load_state_dict(state["inner"])


# ----------------------------------------------------------------------------- evaluation
@dataclass
class EvalResult:
    top1: float
    top5: float
    loss: float
    confusion: np.ndarray   # (C, C): row = true class, column = predicted
    count: int
    seconds: float


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N,): label among the k highest scores (k clipped to the number of classes)."""
    k = min(k, scores.shape[1])
    if k == scores.shape[1]:
        return np.ones(len(labels), dtype=bool)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return (top == labels[:, None]).any(axis=1)


def _host(a):
    """A loader's batch element as a host NumPy array (Tensors and NumPy arrays alike)."""
    return backend.asnumpy(a.data) if isinstance(a, md.Tensor) else a


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    s = scores.astype(np.float64)
    s = s - s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def evaluate(model, loader, num_classes: int, *, device: str = "cpu", predict=None, progress: bool = False,
             desc: str = "test", interrupt=None) -> EvalResult:
    """Top-1, top-5, mean cross-entropy and the confusion matrix of ``model`` over ``loader``.

    Runs in eval mode under ``md.no_grad()`` and puts the model back in its previous mode.
    ``predict(x) -> (N, num_classes) log-probabilities`` replaces the plain forward pass (ten-crop).
    """
    from tqdm.auto import tqdm  # noqa: PLC0415 - optional dependency, loaded only when used

    if len(loader) == 0:
        raise ValueError("evaluate: no test images (the loader yields no batches); an accuracy over none "
                         "would mean nothing")
    was_training = model.training
    model.eval()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    top5 = 0
    loss_sum = 0.0
    count = 0
    start = time.perf_counter()
    iterator = iter(loader)
    try:
        with md.no_grad(), tqdm(total=len(loader), desc=desc, leave=False, disable=not progress,
                                dynamic_ncols=True, unit="batch") as bar:
            for x, y in iterator:
                if interrupt is not None and interrupt.requested:
                    raise KeyboardInterrupt
                x, y = _host(x), _host(y)      # the loader yields Tensors
                if predict is not None:
                    logp = np.asarray(predict(x), dtype=np.float64)
                else:
                    logits = model(md.Tensor(backend.to_device(x, device)))
                    logp = _log_softmax(backend.asnumpy(logits.data))
                y = np.asarray(y)
                pred = logp.argmax(axis=1)
                np.add.at(confusion, (y, pred), 1)
                top5 += int(topk_correct(logp, y, 5).sum())
                loss_sum += float(-logp[np.arange(len(y)), y].sum())
                count += len(y)
                bar.update(1)
    finally:
        if hasattr(iterator, "close"):
            iterator.close()
        model.train(was_training)
    if count == 0:
        raise ValueError(f"evaluate: no {desc} images (the loader yielded no samples); an accuracy over none "
                         "would mean nothing")
    n = count
    return EvalResult(top1=float(np.trace(confusion)) / n, top5=top5 / n, loss=loss_sum / n,
                      confusion=confusion, count=count, seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------------- helpers
def check_labels(dataset, num_classes: int, what: str = "dataset") -> None:
    """ValueError when the dataset's labels do not fit a model with ``num_classes`` outputs."""
    targets = getattr(dataset, "targets", None)
    classes = getattr(dataset, "classes", None)
    if targets is not None and len(targets):
        lo, hi = int(np.min(targets)), int(np.max(targets))
        if lo < 0 or hi >= num_classes:
            names = f" ({len(classes)} classes)" if classes is not None else ""
            raise ValueError(f"{what}{names} has labels in [{lo}, {hi}], outside the model's classes "
                             f"0..{num_classes - 1} (num_classes={num_classes}); build the model with "
                             f"num_classes >= {hi + 1}")
    if classes is not None and len(classes) > num_classes:
        raise ValueError(f"{what} has {len(classes)} classes but the model has num_classes={num_classes}")


def prepare_out_dir(out_dir: str, who: str = "train") -> str:
    """Create ``out_dir`` and prove it writable (a probe file), else a ValueError naming it."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{who}: cannot write to the output directory {out_dir!r} "
                         f"({type(exc).__name__}: {exc.strerror or exc}); choose another --out") from exc
    return out_dir


def all_finite(model) -> bool:
    for p in model.parameters():
        xp = backend.get_array_module(p.data)
        if not bool(xp.isfinite(p.data).all()):
            return False
    return True


class _DeferredInterrupt:
    """While active (main thread only), the first SIGINT (Ctrl-C) or SIGTERM only sets ``requested``
    (the loop stops at the next step boundary); a second one raises KeyboardInterrupt at once,
    except inside an ``atomic()`` section, where it is held until the section ends."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, log):
        self.log = log
        self.requested = False
        self.signum = signal.SIGINT
        self._depth = 0          # nesting of atomic() sections
        self._held = False       # a second signal arrived inside one
        self._previous = {}

    @staticmethod
    def name(signum) -> str:
        return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name

    def _handler(self, signum, frame):
        if self.requested:
            if self._depth:
                self._held = True
                return
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum
        self.log(f"\n{self.name(signum)}: stopping after this step and saving a checkpoint "
                 f"({self.name(signum)} again to stop at once)")

    @contextlib.contextmanager
    def atomic(self, hold: bool = True):
        """A section no second signal cuts: one arriving inside raises KeyboardInterrupt when it
        ends (``hold``), or is dropped (``hold=False``: while saving after an interrupt)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._held:
            self._held = False
            if hold:
                raise KeyboardInterrupt

    def __enter__(self):
        self.requested, self._held, self._depth = False, False, 0
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                try:
                    self._previous[signum] = signal.signal(signum, self._handler)
                except ValueError:
                    pass
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False


# -------------------------------------------------------------------------------- trainer
class Trainer:
    """Train ``model`` on ``train_loader``; evaluate on ``test_loader`` after each epoch.

    train_loader must offer ``epoch(e, start_batch)`` and ``len()`` (minidl.data.DataLoader).
    ``meta`` (JSON-able: model name, build options, config) is stored in checkpoints and
    metrics.json.  The training loss is ``F.cross_entropy(logits, y, label_smoothing=label_smoothing)``;
    the evaluation's is the plain cross-entropy.  ``callback(trainer, epoch, step)`` runs at the start of every step (tests use
    it to simulate Ctrl-C or to poison a weight); ``time_budget`` (seconds, counted from
    ``start_time``, default: when fit starts) stops training when it runs out; a per-step schedule
    follows the steps while the run is projected to end inside the budget (so such a run is
    bit-identical to one without a budget), and the clock from the first step at which it is not
    (so that it anneals when the budget ends).  The figures are drawn when fit ends (also on Ctrl-C or
    divergence), or after every epoch with ``plots="epoch"`` (matplotlib takes a second or two).
    """

    def __init__(self, model, optimizer, train_loader, test_loader, *, epochs: int, num_classes: int,
                 out_dir: str | None = None, schedule: Schedule | None = None, device: str = "cpu",
                 classes=None, meta: dict | None = None, callback=None, progress: bool = True,
                 time_budget: float | None = None, start_time: float | None = None, plots: bool = True,
                 monitor_every: int | None = 50, out_lock=None, world=None,
                 label_smoothing: float = 0.0, log=print):
        self.model, self.optimizer = model, optimizer
        self.train_loader, self.test_loader = train_loader, test_loader
        self.epochs, self.num_classes = int(epochs), int(num_classes)
        self.out_dir = out_dir
        self.schedule = schedule or Schedule("none", optimizer)
        self.device = device
        self.classes = list(classes) if classes is not None else None
        self.meta = dict(meta or {})
        self.callback = callback
        self.progress = progress
        self.time_budget = time_budget
        self.start_time = start_time
        self.clock = time.perf_counter     # the time budget's clock (tests replace it)
        self.clock_schedule_from = None    # "epoch E, step S" where the schedule began to follow the clock
        self.plots = plots
        # the training loss's (F.cross_entropy's label_smoothing); the test loss stays the plain one
        self.label_smoothing = V.probability("Trainer", "label_smoothing", label_smoothing)
        # per-layer statistics every monitor_every steps and the health check (docs/diagnostics.md)
        self.monitor = LayerMonitor(model, every=monitor_every) if monitor_every else None
        self.health = HealthCheck(self.num_classes) if monitor_every and self.num_classes >= 2 else None
        self.log = log
        self.history: list = []
        self.last_eval: EvalResult | None = None
        self.stopped: str | None = None
        self._position = None     # (epoch, step, running sums, rng state) at the last step boundary
        self._dirty = False       # the model, optimizer or RNG moved away from _position (mid-step)
        self.out_lock = out_lock  # an OutDirLock of out_dir the caller already holds, else fit takes one
        self._interrupt = _DeferredInterrupt(log)
        for loader, what in ((train_loader, "the training set"), (test_loader, "the test set")):
            if len(loader) == 0:
                raise ValueError(f"Trainer: {what} has no images (its loader yields no batches)")
            dataset = getattr(loader, "dataset", None)
            if dataset is not None:
                check_labels(dataset, self.num_classes, what)
        # distributed (docs/distributed.md): ``world`` is minidl.distributed.World, a world of one unless a
        # process group is up; ``net`` the plain module (a DistributedDataParallel's .module), which
        # checkpoints, evaluation and figures use, so a checkpoint of N ranks loads into one process
        self.world = world if world is not None else World()
        self.net = self.world.unwrap(model)
        if not self.world.main:    # rank 0 alone reports and writes files
            self.progress, self.log = False, (lambda *args, **kwargs: None)

    # paths
    @property
    def checkpoint_path(self):
        return os.path.join(self.out_dir, CHECKPOINT) if self.out_dir else None

    def _path(self, name):
        return os.path.join(self.out_dir, name)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, epoch: int, step: int, running: dict, rng_state: dict) -> None:
        """Write OUT/checkpoint.npz at position (epoch, step); refuses non-finite weights."""
        if self.out_dir is None:
            return
        if not all_finite(self.model):
            raise TrainingDiverged(f"the weights are not finite at epoch {epoch + 1}, step {step}; "
                                   f"not overwriting the last good checkpoint {self.checkpoint_path}")
        running = self._global_running(running)    # distributed: every rank takes part, rank 0 writes
        model_state, optimizer_state = self.world.checkpoint_state(self.net, self.optimizer)  # model parallel: gathered
        if not self.world.main:
            return
        meta = {**self.meta, "epoch": epoch, "step": step, "epochs": self.epochs, "running": running,
                "history": self.history, "num_classes": self.num_classes, "classes": self.classes,
                "steps_per_epoch": len(self.train_loader), "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        ckpt_io.save_checkpoint(self.checkpoint_path, model_state=model_state, meta=meta,
                                optimizer_state=optimizer_state,
                                scheduler_state=self.schedule.state_dict(), rng_state=rng_state)

    def load_checkpoint(self, path: str | None = None):
        """Restore model, optimizer, schedule, RNG and history; returns (epoch, step, running)."""
        path = path or self.checkpoint_path
        ckpt = ckpt_io.load_checkpoint(path, expected=self.world.checkpoint_shapes(self.net), require=("epoch", "step"))
        ckpt = self.world.local_checkpoint(self.net, ckpt)    # model parallel: this rank's part of the model
        ckpt_io.check_model_state(ckpt, self.net, self.meta.get("model"))
        for key in ("options", "num_classes"):
            mine = self.meta.get(key) if key != "num_classes" else self.num_classes
            if key in ckpt.meta and mine is not None and ckpt.meta[key] != mine:
                raise CheckpointError(f"checkpoint {path!r} was written with {key}={ckpt.meta[key]!r}, "
                                      f"this run has {key}={mine!r}")
        if ckpt.meta.get("steps_per_epoch") not in (None, len(self.train_loader)):
            raise CheckpointError(f"checkpoint {path!r} was written with {ckpt.meta['steps_per_epoch']} steps per "
                                  f"epoch, this run has {len(self.train_loader)} (batch size or dataset differ)")
        self.net.load_state_dict(ckpt.model_state)
        ckpt_io.restore_optimizer(ckpt, self.optimizer)
        if ckpt.scheduler_state is not None:
            try:
                self.schedule.load_state_dict(ckpt.scheduler_state)
            except (ValueError, KeyError) as exc:
                raise CheckpointError(f"checkpoint {path!r}: {exc}") from exc
        if ckpt.rng_state is not None:
            md.set_rng_state(self.world.rank_rng_state(ckpt.rng_state))
        self.history = list(ckpt.meta.get("history", []))
        running = dict(ckpt.meta.get("running") or {})
        if not self.world.main and self.world.shards_data:   # the saved sums are over all ranks: rank 0 carries them on
            running.update({k: 0 for k in ("loss_sum", "correct", "count") if k in running})
        return int(ckpt.meta["epoch"]), int(ckpt.meta["step"]), running

    # --------------------------------------------------------------------- metrics
    def metrics(self) -> dict:
        return {"model": self.meta.get("model"), "dataset": self.meta.get("dataset"), "epochs": self.history,
                "best_test_acc": max((h["test_acc"] for h in self.history), default=None),
                "stopped": self.stopped, "schedule_followed_clock_from": self.clock_schedule_from,
                "config": self.meta.get("config")}

    def write_metrics(self) -> None:
        if self.out_dir is not None and self.world.main:
            ckpt_io.write_json_atomic(self._path(METRICS), self.metrics())

    def write_figures(self) -> None:
        """curves.png, conv1_filters.png (skipped while the weights are not finite) and confusion.png."""
        if self.out_dir is None or not self.plots or not self.world.main:
            return
        title = f"{self.meta.get('model')} on {self.meta.get('dataset')}"
        if self.history:
            plots.plot_curves(self.history, self._path("curves.png"), title=title)
        _, weight = plots.first_conv_weight(self.net)
        if weight is not None and np.isfinite(weight).all():
            plots.plot_filters(weight, self._path("conv1_filters.png"))
        if self.last_eval is not None:
            plots.plot_confusion(self.last_eval.confusion, self.classes, self._path("confusion.png"))
        if self.monitor is not None and self.monitor.history:
            plot_layers(self.monitor.history, self._path("layers.png"), title=title)

    # ------------------------------------------------------------------------ time
    def _time_fraction(self) -> float:
        if not self.time_budget:
            return 0.0
        elapsed = self.clock() - self.start_time
        reserve = self._eval_reserve()
        return elapsed / max(self.time_budget - reserve, 1e-9)

    def _projected_fraction(self, steps_left: int, evaluations_left: int) -> float:
        """The projected end of the run as a fraction of the time budget: the time so far, the steps
        left at this epoch's rate (measured after its first step) and the evaluations left; 0 while
        there is no budget or no rate yet."""
        if not self.time_budget or not getattr(self, "_step_seconds", None):
            return 0.0
        evaluation = self._eval_reserve() - 2.0      # the last evaluation's time, or its estimate
        end = self.clock() - self.start_time + steps_left * self._step_seconds + evaluations_left * evaluation + 2.0
        return end / self.time_budget

    def _eval_reserve(self) -> float:
        """Seconds to keep for the final evaluation and outputs."""
        if self.last_eval is not None:
            return self.last_eval.seconds + 2.0
        if getattr(self, "_train_rate", None):   # evaluation runs ~3x faster than training per image
            n_test = len(getattr(self.test_loader, "dataset", ())) or 0
            return min(n_test / (3 * self._train_rate) + 2.0, 0.25 * self.time_budget)
        return 2.0

    # ------------------------------------------------------------------------- fit
    def fit(self, resume: bool = False) -> dict:
        """Train for the remaining epochs; returns the metrics dict (also OUT/metrics.json)."""
        lock = None
        if self.out_dir is not None and self.world.main:   # distributed: rank 0 alone writes
            prepare_out_dir(self.out_dir)
            if self.out_lock is None or not self.out_lock.held:
                lock = OutDirLock(self.out_dir, log=self.log).acquire()
            removed = ckpt_io.remove_stale_temporaries(self.out_dir)
            if removed:
                self.log(f"note: removed {', '.join(removed)} in {self.out_dir}, left by a write that was killed")
        try:
            return self._fit(resume)
        finally:
            if lock is not None:
                lock.release()

    def _fit(self, resume: bool) -> dict:
        if self.start_time is None:
            self.start_time = self.clock()
        self.stopped = None
        self.clock_schedule_from = None
        self._position, self._dirty = None, False
        with self._interrupt:
            try:
                epoch, step, running = 0, 0, {}
                if not resume:   # distributed: each rank its own dropout masks (rank 0 keeps the seed's)
                    md.set_rng_state(self.world.rank_rng_state(md.get_rng_state()))
                if resume:
                    epoch, step, running = self.load_checkpoint()
                    if epoch >= self.epochs:
                        self.log(f"nothing to do: {self.checkpoint_path} has completed {epoch} of {self.epochs} "
                                 "epochs (raise --epochs to train further)")
                    else:
                        self.log(f"resuming from {self.checkpoint_path}: epoch {epoch + 1}, step {step} "
                                 f"of {len(self.train_loader)}")
                while epoch < self.epochs and self.stopped is None:
                    running = self._train_epoch(epoch, step, running)
                    if self.stopped is not None and not running.get("count", 0):
                        break   # stopped before this epoch's first step: no epoch to evaluate or record
                    self._finish_epoch(epoch, running)
                    epoch, step, running = epoch + 1, 0, {}
            except KeyboardInterrupt:
                with self._interrupt.atomic(hold=False):   # further signals do not cut the save
                    error = self._interrupted()
                try:
                    self.write_figures()
                except KeyboardInterrupt:    # yet another signal: skip the figures, keep the message
                    pass
                raise error from None
            except TrainingDiverged:
                self.write_figures()
                raise
            self.write_figures()
        return self.metrics()

    def _commit(self, epoch: int, step: int, running: dict) -> None:
        """Record the step boundary the model, optimizer and RNG are at now (what a save writes)."""
        self._position = (epoch, step, dict(running), md.get_rng_state())

    def _interrupted(self) -> TrainingInterrupted:
        path = self.checkpoint_path
        signum, n_steps = self._interrupt.signum, len(self.train_loader)
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        if self._position is not None and not self._dirty and path is not None:
            epoch, step, running, rng = self._position
            self.save_checkpoint(epoch, step, running, rng)
            return TrainingInterrupted(f"{how} at epoch {epoch + 1}, step {step} of {n_steps}; "
                                       f"checkpoint saved to {path}; continue with --resume (same --out)",
                                       saved=True, epoch=epoch, step=step, signum=signum)
        kept = ckpt_io.describe(path)
        where = "in the middle of a step" if self._dirty else "before training started"
        keep = (f"nothing new was saved; the last checkpoint {kept} is kept (--resume continues from it)"
                if kept else "nothing was saved (no checkpoint had been written)")
        return TrainingInterrupted(f"{how} {where}; {keep}", saved=False, epoch=-1, step=-1, signum=signum)

    def _train_epoch(self, epoch: int, start_step: int, running: dict) -> dict:
        from tqdm.auto import tqdm  # noqa: PLC0415 - optional dependency, loaded only when used

        n_steps = len(self.train_loader)
        total_steps = max(self.epochs * n_steps, 1)
        running = {"loss_sum": 0.0, "correct": 0, "count": 0, "train_seconds": 0.0, **running}
        iterator = self.train_loader.epoch(epoch, start_batch=start_step)
        step = start_step
        t_start = time.perf_counter()
        seconds_before = running["train_seconds"]
        images = 0
        warm = None   # (time, images, step) after the epoch's first step (the run's includes Numba's compilation)
        self._train_rate = self._step_seconds = None
        bar = tqdm(total=n_steps, initial=start_step, desc=f"epoch {epoch + 1}/{self.epochs}",
                   disable=not self.progress, dynamic_ncols=True, unit="batch", leave=True)
        self._commit(epoch, step, running)     # the state on entry: where a save now resumes
        try:
            for x, y in iterator:
                if self.callback is not None:
                    self.callback(self, epoch, step)
                done = epoch * n_steps + step
                time_fraction, projected = self._step_agreement(total_steps - done, self.epochs - epoch)
                if self._interrupt.requested:
                    raise KeyboardInterrupt
                if time_fraction >= 1.0:
                    self.stopped = (f"time budget of {self.time_budget:g} s used at epoch {epoch + 1}, step {step} "
                                    f"of {n_steps}: {epoch + step / max(n_steps, 1):.2f} of {self.epochs} epochs done")
                    break
                self._dirty = True   # from here the step changes lr, RNG, batch-norm statistics, weights
                if projected > 1.0 and self.clock_schedule_from is None and self.schedule.per_step:
                    self.clock_schedule_from = f"epoch {epoch + 1}, step {step}"
                    self.log(f"time budget: at this rate the run would end {projected * self.time_budget:.0f} s "
                             f"after its start, past the {self.time_budget:g} s budget; from epoch {epoch + 1}, "
                             f"step {step} the learning-rate schedule follows the clock and anneals when it ends")
                progress = done / total_steps
                if self.clock_schedule_from is not None:
                    progress = max(progress, time_fraction)
                self.schedule.before_step(progress)
                if self.monitor is not None:
                    self.monitor.begin_step(epoch * n_steps + step)
                loss_value, correct, n = self._forward_backward(x, y, epoch, step, n_steps)
                # the update and the position it leads to, together: no signal comes between them
                with self._interrupt.atomic():
                    self.optimizer.step()
                    running["loss_sum"] += loss_value * n
                    running["correct"] += correct
                    running["count"] += n
                    running["train_seconds"] = seconds_before + time.perf_counter() - t_start
                    step += 1
                    self._commit(epoch, step, running)
                    self._dirty = False
                self._after_step(epoch * n_steps + step - 1, loss_value, tqdm)
                images += n
                now = self.clock()
                if warm is None:   # a cold Numba cache makes the first step ~20 s: no rate from it
                    warm = (now, images, step)
                elif now > warm[0]:
                    self._train_rate = (images - warm[1]) / (now - warm[0])
                    self._step_seconds = (now - warm[0]) / (step - warm[2])
                bar.update(1)
                bar.set_postfix(loss=f"{running['loss_sum'] / running['count']:.4f}",
                                acc=f"{running['correct'] / running['count']:.4f}",
                                img_s=f"{self._train_rate or 0:.0f}", lr=f"{self.schedule.lr:.3g}", refresh=False)
        finally:
            if hasattr(iterator, "close"):
                iterator.close()
            bar.close()
        running["train_seconds"] = seconds_before + time.perf_counter() - t_start
        running["last_step"] = step
        # at the step boundary after the last step: an interrupt during evaluation resumes here
        self._commit(epoch, step, running)
        return running

    def _forward_backward(self, x, y, epoch: int, step: int, n_steps: int):
        """One step's computation up to the update: forward, the loss (checked finite: a NaN or
        infinite loss raises TrainingDiverged before anything is applied), backward.  Returns
        (loss, correct predictions, batch size); the caller applies the update together with the
        position it leads to."""
        x, y = _host(x), _host(y)      # the loader yields Tensors
        logits = self.model(md.Tensor(backend.to_device(x, self.device)))
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            path = self.checkpoint_path
            kept = (f"the last good checkpoint {path} was kept" if path and os.path.exists(path)
                    else "no checkpoint had been written yet")
            raise TrainingDiverged(f"training diverged: the loss is {loss_value} at epoch {epoch + 1}, "
                                   f"step {step + 1} of {n_steps} (lr {self.schedule.lr:g}); stopped, "
                                   f"{kept}. Lower --lr or check the data.")
        self.optimizer.zero_grad()
        loss.backward()
        if self.monitor is not None:
            self.monitor.before_step()
        pred = backend.asnumpy(logits.data.argmax(axis=1))
        return loss_value, int((pred == np.asarray(y)).sum()), len(pred)

    def _after_step(self, global_step: int, loss_value: float, tqdm) -> None:
        """The bookkeeping after an update: the layer monitor's post-update statistics and the
        health check's warnings."""
        if self.monitor is not None:
            self.monitor.after_step()
        if self.health is not None:
            peak = max(self.schedule.base_lrs) or 1.0
            for message in self.health.check(global_step, loss_value, self.monitor,
                                             lr_scale=self.schedule.lr / peak):
                tqdm.write(message) if self.progress else self.log(message)

    def _finish_epoch(self, epoch: int, running: dict) -> None:
        # distributed: each rank evaluates its shard of the test set (Ctrl-C waits for the next step
        # boundary, where the ranks agree on it), then the counts are summed; model parallel: every
        # rank the whole test set, each forward a collective, and every rank has the same counts
        result = evaluate(self.net, self.test_loader, self.num_classes, device=self.device,
                          progress=self.progress, desc=f"test {epoch + 1}",
                          interrupt=self._interrupt if self.world.size == 1 else None)
        result = self._global_eval(result)
        running = self._global_running(running)
        self.last_eval = result
        count = max(running["count"], 1)
        seconds = running["train_seconds"] + result.seconds
        record = {"epoch": epoch + 1, "train_loss": running["loss_sum"] / count, "train_acc": running["correct"] / count,
                  "test_acc": result.top1, "test_top5": result.top5, "test_loss": result.loss,
                  "lr": self.schedule.lr, "seconds": seconds,
                  "images_per_s": running["count"] / running["train_seconds"] if running["train_seconds"] > 0 else None}
        if self.stopped is not None:
            record["partial_epoch_steps"] = running["last_step"]
            # where the budget cut the epoch: curves.png plots the record at epoch - 1 + this fraction
            record["epoch_fraction"] = running["last_step"] / max(len(self.train_loader), 1)
        # schedule, history and checkpoint move to the next epoch's start together
        with self._interrupt.atomic():
            self._position = None
            self.history.append(record)
            self.schedule.after_epoch(result.top1)
            # a partial epoch ended by the time budget counts as done: --resume starts the next one
            self._commit(epoch + 1, 0, {})
            self.save_checkpoint(*self._position)
            self.write_metrics()
        if self.plots == "epoch":
            self.write_figures()
        self.log(f"epoch {epoch + 1}/{self.epochs}: train loss {record['train_loss']:.4f} "
                 f"acc {record['train_acc']:.4f} | test top-1 {result.top1:.4f} top-5 {result.top5:.4f} | "
                 f"lr {record['lr']:.3g} | {seconds:.1f} s, {record['images_per_s'] or 0:.0f} img/s")

    # ------------------------------------------------------------------ distributed
    def _step_agreement(self, steps_left: int, evaluations_left: int) -> tuple:
        """(time-budget fraction, projected end as a fraction of the budget), the largest over ranks,
        and a Ctrl-C seen by any rank, so that every rank uses the same learning rate and stops at
        the same step (one tiny all-reduce per step)."""
        fraction, projected = self._time_fraction(), self._projected_fraction(steps_left, evaluations_left)
        if self.world.size > 1:
            fraction, asked, projected = self.world.max([fraction, float(self._interrupt.requested), projected],
                                                        "the per-step agreement")
            self._interrupt.requested = bool(asked)
        return float(fraction), float(projected)

    def _global_running(self, running: dict) -> dict:
        """The epoch's running loss/accuracy sums over all ranks (each rank holds its share; model
        parallel: every rank holds them all)."""
        keys = ("loss_sum", "correct", "count")
        if self.world.size == 1 or not self.world.shards_data or not all(k in running for k in keys):
            return running
        loss_sum, correct, count = self.world.sum([float(running[k]) for k in keys], "the training sums")
        return dict(running, loss_sum=float(loss_sum), correct=int(round(correct)), count=int(round(count)))

    def _global_eval(self, result: EvalResult) -> EvalResult:
        """Sum the shards' confusion matrices, top-5 hits and losses (model parallel: every rank has them all)."""
        if self.world.size == 1 or not self.world.shards_data:
            return result
        counts = self.world.sum(np.concatenate([result.confusion.ravel(), [round(result.top5 * result.count),
                                                                          result.count]]).astype(np.int64),
                                "the evaluation counts")
        loss_sum = float(self.world.sum([result.loss * result.count], "the evaluation loss")[0])
        confusion = counts[:-2].reshape(result.confusion.shape)
        n = max(int(counts[-1]), 1)
        return EvalResult(top1=float(np.trace(confusion)) / n, top5=int(counts[-2]) / n, loss=loss_sum / n,
                          confusion=confusion, count=int(counts[-1]),
                          seconds=float(self.world.max([result.seconds], "the evaluation time")[0]))
