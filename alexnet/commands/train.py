"""``alexnet train``: train a variant; with no arguments, the main job (``mini`` on Fashion-MNIST).

Every option left out comes from the model's recipe (``alexnet.recipe(NAME)``), see
docs/training.md.  Writes OUT/metrics.json, OUT/checkpoint.npz (every epoch and on Ctrl-C),
OUT/curves.png, OUT/conv1_filters.png and OUT/confusion.png; ``--resume`` continues an
interrupted run bit-identically.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import alexnet
import minidl as md
from minidl import backend
from minidl.data import DataLoader
from minidl.train import checkpoint as ckpt_io
from minidl.train.checkpoint import CheckpointError, describe
from minidl.train.lock import OutDirBusy, OutDirLock
from minidl.train.trainer import (CHECKPOINT, SCHEDULES, Trainer, TrainingDiverged, TrainingInterrupted, check_labels,
                                  prepare_out_dir)

from .. import args as V
from .. import models, runs, split
from .. import workers as _dist
from ..runs import DATASETS, OPTIMIZERS

# options that may differ from the checkpoint's configuration when resuming
RESUME_OVERRIDES = ("epochs", "device", "time_budget", "prefetch", "data_dir", "eval_batch_size")


def register(subparsers) -> None:

    p = subparsers.add_parser("train", help="train a variant (default: the main job, mini on Fashion-MNIST)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", choices=models.names(), default=None, help="the variant (default: mini)")
    a("--dataset", choices=DATASETS, default=None, help="default: the recipe's")
    a("--data-dir", default=None, help="where the dataset's files are (folder: one sub-folder per class, "
                                       "or train/ and val/ sub-folders)")
    a("--epochs", type=V.POSITIVE_INT, default=None)
    a("--batch-size", type=V.POSITIVE_INT, default=None)
    a("--lr", type=V.POSITIVE_FLOAT, default=None, help="(peak) learning rate")
    a("--optimizer", choices=OPTIMIZERS, default=None,
      help="sgd: PyTorch's rule; sgd-paper: the paper's rule; adam")
    a("--momentum", type=V.MOMENTUM, default=None)
    a("--weight-decay", type=V.NONNEG_FLOAT, default=None)
    a("--label-smoothing", type=V.PROBABILITY, default=None,
      help="training loss: the targets mixed with a uniform distribution by this weight (default 0)")
    a("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    a("--schedule", choices=SCHEDULES, default=None,
      help="none | step | plateau (per epoch) | cosine | onecycle (per step)")
    a("--step-size", type=V.POSITIVE_INT, default=None, help="step schedule: epochs between reductions")
    a("--gamma", type=V.GAMMA, default=None, help="step schedule: factor per reduction")
    a("--patience", type=V.NONNEG_INT, default=None, help="plateau schedule: epochs without improvement")
    a("--factor", type=V.FACTOR, default=None, help="plateau schedule: factor per reduction")
    a("--warmup", type=V.FRACTION, default=None, help="cosine schedule: warm-up fraction of all steps")
    a("--device", choices=("cpu", "gpu"), default=None)
    a("--seed", type=V.NONNEG_INT, default=None)
    a("--out", default=None, help="output directory (default: runs/MODEL-DATASET)")
    a("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    a("--overwrite", action="store_true", help="start afresh even if OUT already holds a checkpoint")
    a("--limit-train", type=V.POSITIVE_INT, default=None, help="use only N training images")
    a("--limit-test", type=V.POSITIVE_INT, default=None, help="use only N test images")
    a("--num-classes", type=V.POSITIVE_INT, default=None, help="model outputs (default: the dataset's classes)")
    a("--width", type=V.WIDTH, default=None, help="width multiplier of the model")
    a("--norm", choices=("lrn", "bn", "none"), default=None, help="model option: normalisation layers")
    a("--dropout", type=V.PROBABILITY, default=None, help="model option: dropout probability")
    a("--init", choices=("paper", "xavier", "kaiming", "torch"), default=None, help="model option")
    a("--augment", action=argparse.BooleanOptionalAction, default=None,
      help="random crops (padding for small images) and horizontal flips")
    a("--crop-padding", type=V.NONNEG_INT, default=None, help="padding of the random crops of small images")
    a("--pca-lighting", action=argparse.BooleanOptionalAction, default=None, help="the paper's colour noise")
    a("--prefetch", type=V.NONNEG_INT, default=None, help="batches prepared ahead by the loader thread (0: none)")
    a("--eval-batch-size", type=V.POSITIVE_INT, default=None)
    a("--time-budget", type=V.TIME_BUDGET, default=None, metavar="SECONDS",
      help="stop training when the budget (counted from the start, data loading included) would be "
           "exceeded, keeping time for the final evaluation; per-step schedules are stretched to end with it")
    a("--progress", action=argparse.BooleanOptionalAction, default=None,
      help="tqdm progress bars (default: when stderr is a terminal)")
    a("--workers", type=V.POSITIVE_INT, default=None, metavar="N",
      help="data-parallel training on N processes (re-launches itself with mpiexec -n N; needs the dist "
           "extra); --batch-size stays the global batch, each rank takes batch/N (docs/distributed.md)")
    a("--split", choices=("paper",), default=None,
      help="model parallelism: the paper's two-GPU split of --model paper on 2 processes (re-launches itself "
           "with mpiexec -n 2; needs the dist extra); both read the same batches (docs/distributed.md)")
    p.set_defaults(func=run)


def _given(args) -> dict:
    skip = {"func", "command", "resume", "overwrite", "progress", "workers"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def setup(given: dict, *, resume: bool = False, overwrite: bool = False, log=print, writer: bool = True):
    """Configuration, data, model, optimizer, schedule and loaders of a run -> (cfg, parts dict).

    parts["lock"] is the output directory's lock (taken before anything there is read or
    written; the caller releases it); a second writer gets OutDirBusy naming the first.
    ``writer=False`` (the ranks other than 0 of a distributed run, which write nothing) takes no lock."""
    if resume:
        model = given.get("model") or "mini"
        out = given.get("out") or runs.resolve_config({"model": model, "dataset": given.get("dataset")})["out"]
    else:
        out = runs.resolve_config(given)["out"]
    lock = OutDirLock(out, log=log)
    if writer and (os.path.isdir(out) or not resume):
        prepare_out_dir(out)           # a clear message for an unwritable --out, before the lock
        lock.acquire()
    try:
        cfg, parts = _setup(given, resume=resume, overwrite=overwrite, log=log)
    except BaseException:
        lock.release()
        raise
    parts["lock"] = lock
    return cfg, parts


def _setup(given: dict, *, resume: bool, overwrite: bool, log):


    if resume:
        model = given.get("model") or "mini"
        out = given.get("out") or runs.resolve_config({"model": model, "dataset": given.get("dataset")})["out"]
        path = os.path.join(out, CHECKPOINT)
        if not os.path.exists(path):
            raise ValueError(f"train --resume: no checkpoint at {path}; start without --resume")
        saved = ckpt_io.read_meta(path)
        if "config" not in saved:
            raise ckpt_io.CheckpointError(f"checkpoint {path!r} holds no run configuration; it was not written "
                                          "by alexnet train")
        cfg = dict(runs.check_config(saved["config"], f"checkpoint {path!r}"))
        conflicts = []
        for key, value in given.items():
            if value is None or key in RESUME_OVERRIDES or key == "out":
                continue
            old = cfg["schedule_args"].get(key) if key in ("step_size", "gamma", "patience", "factor", "warmup") \
                else cfg.get(key)
            if old != value:
                conflicts.append(f"--{key.replace('_', '-')} {value} (the checkpoint has {old})")
        if conflicts:
            raise ValueError(f"train --resume: these options differ from the run being resumed ({path}): "
                             + ", ".join(conflicts) + "; drop them, or start a new run with another --out")
        cfg.update({k: given[k] for k in RESUME_OVERRIDES if given.get(k) is not None})
        cfg["out"] = out
    else:
        cfg = runs.resolve_config(given)
        path = os.path.join(cfg["out"], CHECKPOINT)
        if os.path.exists(path) and not overwrite:
            raise ValueError(f"train: {cfg['out']} already holds a run ({path}); continue it with --resume, "
                             "start afresh with --overwrite, or choose another --out")
    if cfg["device"] == "gpu" and not md.gpu_available():
        raise ValueError(f"train: --device gpu is not available: {backend._cupy_problem}")
    prepare_out_dir(cfg["out"])        # fail before the (slow) data loading

    recipe_shape = tuple(alexnet.recipe(cfg["model"])["input_shape"])
    train_ds, test_ds = runs.load_datasets(cfg, recipe_shape[1:])
    if cfg["num_classes"] is None:
        cfg["num_classes"] = len(train_ds.classes)
    channels = runs.dataset_channels(train_ds)
    if channels != recipe_shape[0]:
        cfg["in_channels"] = channels
        log(f"note: the {cfg['dataset']} images have {channels} channels; building {cfg['model']} with "
            f"in_channels={channels} (its recipe has {recipe_shape[0]})")
    check_labels(train_ds, cfg["num_classes"], f"the training set of {cfg['dataset']}")
    check_labels(test_ds, cfg["num_classes"], f"the test set of {cfg['dataset']}")
    if "normalize" not in cfg:
        cfg["normalize"] = runs.normalization(cfg, train_ds)
    if cfg["pca_lighting"] and "pca" not in cfg:
        cfg["pca"] = runs.pca_basis(cfg, train_ds)

    md.manual_seed(cfg["seed"])
    options = runs.model_options(cfg)
    if cfg.get("split"):     # the split network in one process; train --split gives each rank half of it
        model = split.twin(cfg["num_classes"], **options)
    else:
        model = alexnet.build(cfg["model"], cfg["num_classes"], **options)
    if cfg["device"] != "cpu":
        model.to(cfg["device"])
    image_hw = tuple(train_ds.images.shape[2:]) if getattr(train_ds, "images", None) is not None else None
    train_tf, test_tf = runs.make_transforms(cfg, image_hw, model.input_shape)
    train_loader = DataLoader(train_ds, batch_size=cfg["batch_size"], shuffle=True, drop_last=False,
                              transform=train_tf, prefetch=cfg["prefetch"])
    test_loader = DataLoader(test_ds, batch_size=cfg["eval_batch_size"], shuffle=False, transform=test_tf,
                             prefetch=cfg["prefetch"])
    optimizer = runs.make_optimizer(cfg, model.parameters())
    schedule = runs.make_schedule(cfg, optimizer, len(train_loader))
    meta = {"model": cfg["model"], "options": options, "dataset": cfg["dataset"], "config": cfg}
    return cfg, dict(model=model, optimizer=optimizer, schedule=schedule, train_loader=train_loader,
                     test_loader=test_loader, train_ds=train_ds, test_ds=test_ds, meta=meta)


def _kept(args) -> str:
    """What an interrupt before training leaves: the checkpoint already in --out, if any."""
    try:
        out = args.out or runs.resolve_config({"model": args.model, "dataset": args.dataset})["out"]
    except ValueError:
        return "nothing new was saved"
    kept = describe(os.path.join(out, CHECKPOINT))
    return f"nothing new was saved; {kept} is kept" if kept else "nothing was saved"


def run(args, callback=None) -> int:
    start = time.perf_counter()

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    parts = {}
    try:
        if args.split and not args.resume:   # a bad option stops here, not on both ranks after mpiexec started
            runs.resolve_config(_given(args))
        world = _dist.start(args.workers, args.split)
        if isinstance(world, int):          # the exit status of the mpiexec that ran the ranks
            return world
        cfg, parts = setup(_given(args), resume=args.resume, overwrite=args.overwrite, writer=world.main)
        n_params = sum(p.numel() for p in parts["model"].parameters())   # --split: the whole model's
        _dist.distribute(cfg, parts, world)
        model = parts["model"]
        print(f"{cfg['model']} ({n_params:,} parameters, input {'x'.join(map(str, model.input_shape))}) on "
              f"{cfg['dataset']}: {len(parts['train_ds'])} training / {len(parts['test_ds'])} test images, "
              f"{cfg['epochs']} epochs of {len(parts['train_loader'])} steps (batch {cfg['batch_size']}), "
              f"{cfg['optimizer']} lr {cfg['lr']:g}, schedule {cfg['schedule']}, augment {cfg['augment']}, "
              f"device {cfg['device']}, seed {cfg['seed']}" +
              (f", time budget {cfg['time_budget']:g} s" if cfg["time_budget"] else ""), flush=True)
        trainer = Trainer(parts.get("parallel_model", model), parts["optimizer"], parts["train_loader"], parts["test_loader"],
                          epochs=cfg["epochs"], num_classes=cfg["num_classes"], out_dir=cfg["out"],
                          schedule=parts["schedule"], device=cfg["device"], classes=parts["test_ds"].classes,
                          meta=parts["meta"], callback=callback, progress=progress,
                          time_budget=cfg["time_budget"], start_time=start, out_lock=parts["lock"],
                          world=world, label_smoothing=cfg.get("label_smoothing") or 0.0,
                          log=lambda *a: print(*a, flush=True))
        metrics = trainer.fit(resume=args.resume)
    except TrainingInterrupted as exc:
        print(f"alexnet train: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except TrainingDiverged as exc:
        print(f"alexnet train: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"alexnet train: interrupted before training started; {_kept(args)}", file=sys.stderr)
        return 130
    except (ValueError, OSError, CheckpointError, OutDirBusy, _dist.Unavailable) as exc:   # the message says what is wrong
        print(f"alexnet train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if parts.get("lock") is not None:
            parts["lock"].release()
    best = metrics["best_test_acc"]
    total = time.perf_counter() - start
    if trainer.stopped:
        print(f"stopped early: {trainer.stopped}")
    print(f"done in {total:.1f} s: best test top-1 {best if best is None else f'{best:.4f}'}; "
          f"outputs in {cfg['out']} (metrics.json, checkpoint.npz, curves.png, conv1_filters.png, confusion.png)")
    return 0
