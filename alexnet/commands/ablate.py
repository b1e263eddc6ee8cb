"""``alexnet ablate``: re-run the paper's design choices at small scale, each switched off in turn.

For ``mini`` on Fashion-MNIST (and ``cifar`` on CIFAR-10 where its files are present) it
trains one model per (setting, seed) and reports the test top-1 error, mean and spread over
seeds. The settings (``--settings`` picks some; the default is all):

    baseline          the variant as built: LRN, overlapping 3/2 pooling, dropout 0.5, augmentation
    no-lrn            LRN removed (norm="none")                  paper: LRN lowers top-1 error 1.4 points
    batchnorm         batch norm in LRN's place (norm="bn")
    nonoverlap-pool   2/2 pooling instead of 3/2                 paper: overlap lowers top-1 error 0.4 points
    no-dropout        dropout 0 instead of 0.5
    no-augment        no random crops / flips

Each run is set up exactly as ``alexnet train`` sets one up (its ``setup``: the variant's recipe
for optimizer, momentum, weight decay and schedule unless ``--lr``, ``--epochs``, ``--batch-size``
override them; the training images' per-channel normalisation; ``--limit-train``/``--limit-test``
take a fixed class-balanced subset), with the setting's model options, ``--seed`` 0, 1, ... and
augmentation (random crops with 2 px padding at 28x28, 4 px at 32x32, and flips) ON in every
setting but ``no-augment`` -- the paper's choice, although ``alexnet train`` leaves it off for
Fashion-MNIST by default. Each run's metrics.json and checkpoint go to OUT/runs/. Writes

    OUT/ablation.json   every run (model, setting, seed, test error) and the per-setting summary
    OUT/ablation.md     the summary as a Markdown table
    OUT/ablation.png    the errors per setting (bars: mean, whiskers: std, dots: seeds)

A setting that does not apply to a variant (``cifar`` has no LRN and no dropout) is skipped
for it. See docs/ablation.md for what was run and how it compares with the paper.
"""
from __future__ import annotations

import os
import sys
import time

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
    from .. import models  # noqa: PLC0415
    spec = models.VARIANTS[model_name]
    if setting == "no-lrn":
        return spec.norm == "lrn"
    if setting == "batchnorm":
        return any(c.norm for c in spec.convs)
    if setting == "no-dropout":
        return spec.dropout > 0
    return True


def register(subparsers) -> None:
    import argparse  # noqa: PLC0415
    from .. import args as V  # noqa: PLC0415
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
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def data_present(model_name: str, data_dir=None) -> bool:
    """Whether the dataset of ``model_name`` is on disk (nothing is downloaded)."""
    from minidl import data  # noqa: PLC0415
    cls = data.FashionMNIST if MODELS[model_name] == "fashion-mnist" else data.CIFAR10
    try:
        cls(root=data_dir, train=False, download=False)
        cls(root=data_dir, train=True, download=False)
    except Exception:  # DatasetNotFoundError, a broken file: either way, not usable here
        return False
    return True


def train_one(model_name, setting, seed, *, out, epochs=None, batch_size=None, lr=None, width=None,
              limit_train=None, limit_test=None, data_dir=None, device="cpu", progress=False):
    """Train one (model, setting, seed) exactly as ``alexnet train`` would with the setting's options
    (its ``setup``: recipe, datasets, normalisation, augmentation, optimizer, schedule) and return the
    test top-1 error (a fraction) after the last epoch."""
    from minidl.train import trainer as trainer_module  # noqa: PLC0415
    from .train import setup  # noqa: PLC0415
    options, augment = SETTINGS[setting]
    given = dict(model=model_name, dataset=MODELS[model_name], epochs=epochs, batch_size=batch_size, lr=lr,
                 width=width, seed=seed, out=out, limit_train=limit_train, limit_test=limit_test,
                 data_dir=data_dir, device=device, augment=augment, **options)
    cfg, parts = setup(given, overwrite=True, log=lambda *a: None)

    def log(*parts_):  # only the health check's warnings, labelled with the run
        message = " ".join(map(str, parts_))
        if message.startswith("health check"):
            print(f"[{model_name} {setting} seed {seed}] {message}", flush=True)

    try:
        trainer = trainer_module.Trainer(parts["model"], parts["optimizer"], parts["train_loader"],
                                         parts["test_loader"], epochs=cfg["epochs"], num_classes=cfg["num_classes"],
                                         out_dir=cfg["out"], schedule=parts["schedule"], device=cfg["device"],
                                         classes=parts["test_ds"].classes, meta=parts["meta"], progress=progress,
                                         plots=False, out_lock=parts["lock"], log=log)
        trainer.fit()
    finally:
        parts["lock"].release()
    return 1.0 - trainer.history[-1]["test_acc"], cfg


def summarise(runs: list) -> list:
    """Per (model, setting): mean and std (population, over seeds) of the test error."""
    import numpy as np  # noqa: PLC0415
    rows = []
    for key in dict.fromkeys((r["model"], r["setting"]) for r in runs):
        errors = [r["test_error"] for r in runs if (r["model"], r["setting"]) == key]
        rows.append(dict(model=key[0], setting=key[1], seeds=len(errors), errors=errors,
                         mean_error=float(np.mean(errors)), std_error=float(np.std(errors)),
                         min_error=float(np.min(errors)), max_error=float(np.max(errors))))
    for row in rows:
        base = next((r for r in rows if r["model"] == row["model"] and r["setting"] == "baseline"), None)
        row["delta_vs_baseline"] = None if base is None else row["mean_error"] - base["mean_error"]
    return rows


def markdown(rows: list, config: dict) -> str:
    lines = [f"Test top-1 error, mean ± std over seeds ({config['seeds']} seeds, {config['epochs']} epochs, "
             f"{config['train_images']} training / {config['test_images']} test images, width {config['width']}).",
             "", "| model | setting | error (%) | ± std | min – max | vs baseline (points) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        delta = "" if r["delta_vs_baseline"] is None or r["setting"] == "baseline" else \
            f"{100 * r['delta_vs_baseline']:+.2f}"
        lines.append(f"| {r['model']} | {r['setting']} | {100 * r['mean_error']:.2f} | {100 * r['std_error']:.2f} | "
                     f"{100 * r['min_error']:.2f} – {100 * r['max_error']:.2f} | {delta} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from minidl.train.checkpoint import write_json_atomic  # noqa: PLC0415
    from minidl.train.diagnostic_plots import plot_ablation  # noqa: PLC0415

    def fail(message):
        print(f"alexnet ablate: {message}", file=sys.stderr)
        return 2

    try:
        settings = parse_settings(args.settings) if args.settings else list(SETTINGS)
    except ValueError as exc:
        return fail(str(exc))
    for name, value in (("--seeds", args.seeds), ("--epochs", args.epochs), ("--limit-train", args.limit_train),
                        ("--limit-test", args.limit_test), ("--batch-size", args.batch_size)):
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
                start = time.perf_counter()
                try:
                    error, cfg = train_one(name, setting, seed, out=os.path.join(args.out, "runs",
                                                                                 f"{name}-{setting}-seed{seed}"),
                                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                           width=args.width, limit_train=args.limit_train,
                                           limit_test=args.limit_test, data_dir=args.data_dir,
                                           device=args.device, progress=not args.quiet)
                except ValueError as exc:
                    return fail(f"{name} {setting} seed {seed}: {exc}")
                sizes[name] = dict(epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                                   limit_train=cfg["limit_train"], limit_test=cfg["limit_test"])
                runs.append(dict(model=name, setting=setting, seed=seed, test_error=error,
                                 seconds=time.perf_counter() - start))
                print(f"{name} {setting} seed {seed}: test error {100 * error:.2f}% "
                      f"({runs[-1]['seconds']:.0f} s)", flush=True)
    if not runs:
        return fail(f"none of the settings {settings} applies to {present}")
    rows = summarise(runs)
    first = sizes[next(iter(sizes))]
    config = dict(seeds=args.seeds, epochs=first["epochs"], width=args.width or 1.0, lr=first["lr"],
                  batch_size=first["batch_size"], train_images=first["limit_train"] or "all",
                  test_images=first["limit_test"] or "all", settings=settings, models=list(sizes),
                  per_model=sizes)
    write_json_atomic(os.path.join(args.out, "ablation.json"), dict(config=config, summary=rows, runs=runs))
    table = markdown(rows, config)
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(table)
    plot_ablation(rows, os.path.join(args.out, "ablation.png"),
                  title=f"ablation: {args.seeds} seeds, {config['epochs']} epochs, {config['train_images']} images")
    print("\n" + table)
    print(f"written: {os.path.join(args.out, 'ablation.json')}, ablation.md, ablation.png")
    return 0
