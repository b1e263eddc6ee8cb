"""``alexnet ablate``: re-run the paper's design choices at small scale, each switched off in turn.

For ``mini`` on Fashion-MNIST (and ``cifar`` on CIFAR-10 where its files are present) it
trains one model per (setting, seed) and reports the test top-1 error, mean and spread over
seeds. The settings (``--settings`` picks some; the default is all):

    baseline          the variant as built: LRN, overlapping 3/2 pooling, the recipe's dropout
                      (mini: 0.1), augmentation
    no-lrn            LRN removed (norm="none")                  paper: LRN lowers top-1 error 1.4 points
    batchnorm         batch norm in LRN's place (norm="bn")
    nonoverlap-pool   2/2 pooling instead of 3/2                 paper: overlap lowers top-1 error 0.4 points
    no-dropout        dropout 0 instead of the recipe's rate
    no-augment        no random crops / flips

Each run is set up exactly as ``alexnet train`` sets one up (its ``setup``: the variant's recipe
for optimizer, momentum, weight decay and schedule unless ``--lr``, ``--epochs``, ``--batch-size``
override them; the training images' per-channel normalisation; ``--limit-train``/``--limit-test``
take a fixed class-balanced subset), with the setting's model options, ``--seed`` 0, 1, ... and
augmentation (random crops with 2 px padding at 28x28, 4 px at 32x32, and flips) ON in every
setting but ``no-augment`` -- the paper's choice, although ``alexnet train`` leaves it off for
Fashion-MNIST by default -- and no label smoothing (not one of the paper's choices; the main job's
recipe uses 0.1). Each run's checkpoint, metrics.json and result.json go to
OUT/runs/<model>-<setting>-seed<k>/; a rerun of the same command reads finished runs back,
continues an interrupted one from its checkpoint and refuses a run directory of another
configuration. Writes

    OUT/ablation.json   every run (with its per-epoch history), the per-setting summary, the verdicts
    OUT/ablation.md     per setting: seeds, test error mean ± sample std, the difference from the
                        baseline with a 95 % Welch interval, the train-test gap; then each of the
                        paper's claims with its verdict (holds / not visible at this scale / reversed)
    OUT/ablation.png    the training curves: train and test error by epoch, seeds thin, mean thick

A setting that does not apply to a variant (``cifar`` has no LRN and no dropout) is skipped
for it. See docs/ablation.md for what was run and how it compares with the paper.
"""
from __future__ import annotations

import os
import sys
import time

import argparse
import json

from minidl import data
from minidl.data import DataLoader, Subset
from minidl.train import trainer as trainer_module
from minidl.train.checkpoint import write_json_atomic
from minidl.train.diagnostic_plots import plot_ablation
from minidl.train.trainer import CHECKPOINT, TrainingInterrupted

from .. import args as V, models, runs
from ..ablation_stats import mean_sd, verdict, welch
from .train import setup

# setting -> (alexnet.build options, augment)
SETTINGS = {
    "baseline": ({}, True),
    "no-lrn": ({"norm": "none"}, True),
    "batchnorm": ({"norm": "bn"}, True),
    "nonoverlap-pool": ({"pool": "nonoverlap"}, True),
    "no-dropout": ({"dropout": 0.0}, True),
    "no-augment": ({}, False),
}
MODELS = {"mini": "fashion-mnist", "cifar": "cifar10"}


def parse_settings(text_or_list) -> list:
    """Setting names from a list or comma-separated strings; ValueError listing the valid ones."""
    items = [text_or_list] if isinstance(text_or_list, str) else list(text_or_list)
    names = [s.strip() for item in items for s in item.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown ablation setting(s) {unknown}; valid settings: {', '.join(SETTINGS)}")
    if not names:
        raise ValueError(f"no ablation setting given; valid settings: {', '.join(SETTINGS)}")
    return list(dict.fromkeys(names))


def applies(model_name: str, setting: str) -> bool:
    """Whether switching this choice off changes the variant (cifar has no LRN, no dropout)."""
    spec = models.VARIANTS[model_name]
    if setting == "no-lrn":
        return spec.norm == "lrn"
    if setting == "batchnorm":
        return any(c.norm for c in spec.convs)
    if setting == "no-dropout":
        return spec.dropout > 0
    return True


def register(subparsers) -> None:
    p = subparsers.add_parser("ablate", help="train mini (and cifar) with each of the paper's choices switched "
                              "off in turn, over several seeds", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                   help="variants to ablate (default: mini, and cifar when CIFAR-10 is present)")
    p.add_argument("--settings", nargs="+", default=None, metavar="SETTING",
                   help=f"settings to run (default: all): {', '.join(SETTINGS)}")
    p.add_argument("--seeds", type=V.POSITIVE_INT, default=3, help="seeds per setting (default 3)")
    p.add_argument("--epochs", type=V.POSITIVE_INT, default=None, help="epochs per run (default: the recipe's)")
    p.add_argument("--limit-train", type=V.POSITIVE_INT, default=None, help="use only the first N training images")
    p.add_argument("--limit-test", type=V.POSITIVE_INT, default=None, help="use only the first N test images")
    p.add_argument("--batch-size", type=V.POSITIVE_INT, default=None, help="default: the recipe's")
    p.add_argument("--lr", type=V.POSITIVE_FLOAT, default=None, help="default: the recipe's")
    p.add_argument("--width", type=V.WIDTH, default=None, help="width multiplier of the models (default 1)")
    p.add_argument("--data-dir", default=None, help="directory with the dataset files")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--out", default=os.path.join("runs", "ablation"), help="output directory")
    p.add_argument("--gap-images", type=V.POSITIVE_INT, default=10000,
                   help="training images evaluated (as the test set is) for the train-test gap (default 10000)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def data_present(model_name: str, data_dir=None) -> bool:
    """Whether the dataset of ``model_name`` is on disk (nothing is downloaded)."""
    cls = data.FashionMNIST if MODELS[model_name] == "fashion-mnist" else data.CIFAR10
    try:
        cls(root=data_dir, train=False, download=False)
        cls(root=data_dir, train=True, download=False)
    except Exception:  # DatasetNotFoundError, a broken file: either way, not usable here
        return False
    return True


class ConfigMismatch(ValueError):
    """A run directory holds a run of another configuration (different epochs, recipe, ...)."""


RESULT, SPEC = "result.json", "ablation-run.json"
# configuration keys that may change between an interrupted ablation and its rerun
_VOLATILE = ("out", "data_dir", "device", "prefetch", "eval_batch_size")


def run_given(model_name, setting, seed, *, out, epochs=None, batch_size=None, lr=None, width=None,
              limit_train=None, limit_test=None, data_dir=None, device="cpu") -> dict:
    """The options ``alexnet train`` gets for one (model, setting, seed)."""
    options, augment = SETTINGS[setting]
    # time_budget 0: every run trains all its epochs (the main job's recipe carries a 570 s budget,
    # which would cut a slow run short and make it incomparable with the others)
    # label_smoothing 0: not one of the paper's choices (the main job's recipe uses 0.1)
    return dict(model=model_name, dataset=MODELS[model_name], epochs=epochs, batch_size=batch_size, lr=lr,
                width=width, seed=seed, out=out, limit_train=limit_train, limit_test=limit_test,
                data_dir=data_dir, device=device, augment=augment, time_budget=0, label_smoothing=0.0, **options)


def run_spec(given: dict) -> dict:
    """What makes two runs the same: the full configuration (recipe defaults filled in), less
    where it is written and on what device; JSON round-tripped so it compares with a saved one."""
    cfg = runs.resolve_config(given)
    return json.loads(json.dumps({k: v for k, v in sorted(cfg.items()) if k not in _VOLATILE}))


# Configuration keys added after runs were made, with the value that matches what those runs did
# (label_smoothing None, its first default, also meant none).
_BEFORE_THE_KEY = {"label_smoothing": 0.0}


def _differences(old: dict, new: dict) -> str:
    """The keys whose values differ, as text ("" when none).  A key one side lacks, or holds as None,
    reads as the value the key's behaviour had before it existed (_BEFORE_THE_KEY; None for others)."""
    def value(spec, key):
        return _BEFORE_THE_KEY.get(key) if spec.get(key) is None else spec[key]
    keys = [k for k in sorted(set(old) | set(new)) if value(old, k) != value(new, k)]
    return ", ".join(f"{k}: {value(old, k)!r} there, {value(new, k)!r} now" for k in keys)


def _train(given: dict, *, resume: bool, gap_images: int, progress: bool, label: str) -> dict:
    """Train (or continue) one run as ``alexnet train`` would; returns its per-epoch history and the
    accuracy of the final model on the first ``gap_images`` training images, evaluated as the test
    set is (no augmentation, dropout off): the train side of the train-test gap."""
    def log(*parts_):  # only the health check's warnings, labelled with the run
        message = " ".join(map(str, parts_))
        if message.startswith("health check"):
            print(f"[{label}] {message}", flush=True)

    cfg, parts = setup(given, resume=resume, overwrite=not resume, log=lambda *a: None)
    try:
        trainer = trainer_module.Trainer(parts["model"], parts["optimizer"], parts["train_loader"],
                                         parts["test_loader"], epochs=cfg["epochs"], num_classes=cfg["num_classes"],
                                         out_dir=cfg["out"], schedule=parts["schedule"], device=cfg["device"],
                                         classes=parts["test_ds"].classes, meta=parts["meta"], progress=progress,
                                         plots=False, out_lock=parts["lock"], log=log,
                                         label_smoothing=cfg.get("label_smoothing") or 0.0)
        trainer.fit(resume=resume)
        train_ds = parts["train_ds"]
        subset = Subset(train_ds, list(range(min(gap_images, len(train_ds)))))
        loader = DataLoader(subset, batch_size=parts["test_loader"].batch_size, shuffle=False,
                            transform=parts["test_loader"].transform)
        clean = trainer_module.evaluate(parts["model"], loader, cfg["num_classes"], device=cfg["device"])
    finally:
        parts["lock"].release()
    return dict(history=trainer.history, train_eval_acc=clean.top1, train_eval_images=clean.count,
                epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                limit_train=cfg["limit_train"], limit_test=cfg["limit_test"])


def run_one(given: dict, setting: str, run_dir: str, *, gap_images: int = 10000, progress: bool = False, label: str = "") -> dict:
    """One run's result, from ``run_dir/result.json`` when it finished before (nothing is trained),
    else trained -- continued from its checkpoint when an earlier attempt was interrupted -- and
    then written to result.json atomically. ConfigMismatch when ``run_dir`` holds a run of another
    configuration: results of different set-ups are never mixed."""
    spec = run_spec(given)
    result_path, spec_path = os.path.join(run_dir, RESULT), os.path.join(run_dir, SPEC)
    refuse = (f"; remove {run_dir} to run it again with the new settings, or give another --out")
    if os.path.exists(result_path):
        with open(result_path) as f:
            result = json.load(f)
        if _differences(result.get("spec") or {}, spec):
            raise ConfigMismatch(f"{run_dir} holds a finished run of another configuration "
                                 f"({_differences(result.get('spec') or {}, spec)})" + refuse)
        return dict(result, skipped=True)
    resume = False
    if os.path.exists(spec_path):
        with open(spec_path) as f:
            saved = json.load(f)
        if _differences(saved, spec):
            raise ConfigMismatch(f"{run_dir} holds an unfinished run of another configuration "
                                 f"({_differences(saved, spec)})" + refuse)
        resume = os.path.exists(os.path.join(run_dir, CHECKPOINT))
    elif os.path.exists(os.path.join(run_dir, CHECKPOINT)):
        raise ConfigMismatch(f"{run_dir} holds a checkpoint that ablate did not start (no {SPEC})" + refuse)
    else:
        os.makedirs(run_dir, exist_ok=True)
        write_json_atomic(spec_path, spec)
    start = time.perf_counter()
    out = _train(dict(given, out=run_dir), resume=resume, gap_images=gap_images, progress=progress, label=label)
    history = [{k: h.get(k) for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_fraction")}
               for h in out.pop("history")]
    last = history[-1]
    result = dict(model=given["model"], setting=setting, seed=given["seed"], spec=spec,
                  test_error=1.0 - last["test_acc"], test_acc=last["test_acc"], train_acc=last["train_acc"],
                  gap=out["train_eval_acc"] - last["test_acc"], history=history, resumed=resume,
                  seconds=time.perf_counter() - start, **out)
    write_json_atomic(result_path, result)
    return dict(result, skipped=False)


# the paper's claims: (claim, setting that switches the choice off, metric, paper's change in points or None);
# each says that switching the choice off RAISES the metric (test error, or the train-test gap)
CLAIMS = [
    ("LRN lowers top-1 error", "no-lrn", "test_error", 1.4),
    ("overlapping pooling lowers top-1 error", "nonoverlap-pool", "test_error", 0.4),
    ("dropout reduces overfitting (train-test gap)", "no-dropout", "gap", None),
    ("dropout lowers top-1 error", "no-dropout", "test_error", None),
    ("augmentation reduces overfitting (train-test gap)", "no-augment", "gap", None),
    ("augmentation lowers top-1 error", "no-augment", "test_error", None),
]
METRIC_WORDS = {"test_error": "test top-1 error", "gap": "train-test gap"}


def summarise(runs: list) -> list:
    """Per (model, setting): seeds, mean and sample std of the test error and of the train-test gap,
    and the differences from the baseline with 95 % Welch intervals (fractions, not points)."""
    rows = []
    for key in dict.fromkeys((r["model"], r["setting"]) for r in runs):
        mine = [r for r in runs if (r["model"], r["setting"]) == key]
        row = dict(model=key[0], setting=key[1], seeds=len(mine), errors=[r["test_error"] for r in mine],
                   gaps=[r["gap"] for r in mine])
        row["mean_error"], row["std_error"] = mean_sd(row["errors"])
        row["mean_gap"], row["std_gap"] = mean_sd(row["gaps"])
        rows.append(row)
    for row in rows:
        base = next((r for r in rows if r["model"] == row["model"] and r["setting"] == "baseline"), None)
        for metric, values in (("error", "errors"), ("gap", "gaps")):
            row[f"delta_{metric}"] = None if base is None or row is base else welch(row[values], base[values])
    return rows


def claims(rows: list) -> list:
    """Each claim of the paper with its verdict from the interval of (setting - baseline)."""
    out = []
    for text, setting, metric, paper in CLAIMS:
        for row in rows:
            delta = row.get("delta_error" if metric == "test_error" else "delta_gap")
            if row["setting"] != setting or delta is None:
                continue
            word = verdict(delta["low"], delta["high"], +1)
            size = f"{100 * delta['diff']:+.2f} points"
            if delta["low"] is not None:
                size += (f" (95 % interval {100 * delta['low']:+.2f} to {100 * delta['high']:+.2f}, "
                         f"Welch df {delta['df']:.1f})")
            paper_words = f"paper: +{paper} points" if paper is not None else "paper: no number, same direction"
            sentence = (f"{word}: switching it off ({setting}) changes the {METRIC_WORDS[metric]} by {size}; "
                        f"{paper_words}")
            out.append(dict(model=row["model"], claim=text, setting=setting, metric=metric, paper_points=paper,
                            verdict=word, diff=delta["diff"], low=delta["low"], high=delta["high"], df=delta["df"],
                            text=sentence))
    return out


def _pm(mean, sd):
    return f"{100 * mean:.2f}" + ("" if sd is None else f" ± {100 * sd:.2f}")


def markdown(rows: list, verdicts: list, config: dict) -> str:
    lines = [f"{config['seeds']} seeds, {config['epochs']} epochs, {config['train_images']} training / "
             f"{config['test_images']} test images, width {config['width']}; ± is the sample standard "
             "deviation over seeds; intervals are 95 % by Welch's t; points are percentage points. "
             "Gap: accuracy on the first training images (evaluated as the test set: no augmentation, "
             "dropout off) minus test accuracy.", "",
             "| model | setting | seeds | test error (%) | vs baseline (points, 95 % interval) | "
             "train-test gap (points) | gap vs baseline |", "|---|---|---|---|---|---|---|"]

    def delta(d):
        if d is None:
            return ""
        if d["low"] is None:
            return f"{100 * d['diff']:+.2f}"
        return f"{100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
    for r in rows:
        lines.append(f"| {r['model']} | {r['setting']} | {r['seeds']} | {_pm(r['mean_error'], r['std_error'])} | "
                     f"{delta(r['delta_error'])} | {_pm(r['mean_gap'], r['std_gap'])} | {delta(r['delta_gap'])} |")
    if verdicts:
        lines += ["", "| model | the paper's claim | verdict |", "|---|---|---|"]
        lines += [f"| {v['model']} | {v['claim']} | {v['text']} |" for v in verdicts]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    def fail(message):
        print(f"alexnet ablate: {message}", file=sys.stderr)
        return 2

    try:
        settings = parse_settings(args.settings) if args.settings else list(SETTINGS)
    except ValueError as exc:
        return fail(str(exc))
    for name, value in (("--seeds", args.seeds), ("--epochs", args.epochs), ("--limit-train", args.limit_train),
                        ("--limit-test", args.limit_test), ("--batch-size", args.batch_size),
                        ("--gap-images", args.gap_images)):
        if value is not None and value < 1:
            return fail(f"{name} must be >= 1, got {value}")
    wanted = args.models or list(MODELS)
    present = [name for name in wanted if data_present(name, args.data_dir)]
    for name in wanted:
        if name not in present:
            if args.models:
                return fail(f"{name}: the {MODELS[name]} files were not found (see docs/data.md); "
                            f"nothing is downloaded by ablate")
            print(f"alexnet ablate: skipping {name}: {MODELS[name]} not found", file=sys.stderr)
    if not present:
        return fail("no dataset found for any model")

    os.makedirs(args.out, exist_ok=True)
    runs, sizes = [], {}
    for name in present:
        for setting in settings:
            if not applies(name, setting):
                print(f"{name}: '{setting}' does not apply (the variant lacks that choice); skipped")
                continue
            for seed in range(args.seeds):
                label = f"{name} {setting} seed {seed}"
                run_dir = os.path.join(args.out, "runs", f"{name}-{setting}-seed{seed}")
                given = run_given(name, setting, seed, out=run_dir, epochs=args.epochs, batch_size=args.batch_size,
                                  lr=args.lr, width=args.width, limit_train=args.limit_train,
                                  limit_test=args.limit_test, data_dir=args.data_dir, device=args.device)
                try:
                    result = run_one(given, setting, run_dir, gap_images=args.gap_images, progress=not args.quiet,
                                     label=label)
                except TrainingInterrupted as exc:
                    print(f"alexnet ablate: {label}: {exc}", file=sys.stderr)
                    print("alexnet ablate: rerun the same command to continue: finished runs are kept, this one "
                          "resumes from its checkpoint", file=sys.stderr)
                    return 128 + exc.signum
                except ValueError as exc:
                    return fail(f"{label}: {exc}")
                sizes[name] = {k: result[k] for k in ("epochs", "batch_size", "lr", "limit_train", "limit_test")}
                runs.append(result)
                how = "done before, kept" if result["skipped"] else \
                    ("resumed and finished" if result["resumed"] else "trained")
                print(f"{label}: test error {100 * result['test_error']:.2f}%, train-test gap "
                      f"{100 * result['gap']:.2f} points ({how}, {result['seconds']:.0f} s)", flush=True)
    if not runs:
        return fail(f"none of the settings {settings} applies to {present}")
    rows = summarise(runs)
    verdicts = claims(rows)
    first = sizes[next(iter(sizes))]
    config = dict(seeds=args.seeds, epochs=first["epochs"], width=args.width or 1.0, lr=first["lr"],
                  batch_size=first["batch_size"], train_images=first["limit_train"] or "all",
                  test_images=first["limit_test"] or "all", settings=settings, models=list(sizes),
                  per_model=sizes, gap_images=args.gap_images)
    write_json_atomic(os.path.join(args.out, "ablation.json"),
                      dict(config=config, summary=rows, claims=verdicts,
                           runs=[{k: v for k, v in r.items() if k != "skipped"} for r in runs]))
    table = markdown(rows, verdicts, config)
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(table)
    plot_ablation(runs, os.path.join(args.out, "ablation.png"),
                  title=f"ablation: {args.seeds} seeds, {config['epochs']} epochs, {config['train_images']} images")
    print("\n" + table)
    print(f"written: {os.path.join(args.out, 'ablation.json')}, ablation.md, ablation.png")
    return 0
