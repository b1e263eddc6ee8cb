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

Everything else is the variant's recipe (optimizer, momentum, weight decay, schedule) unless
overridden by ``--lr``, ``--epochs``, ``--batch-size``. Writes

    OUT/ablation.json   every run (model, setting, seed, test error) and the per-setting summary
    OUT/ablation.md     the summary as a Markdown table
    OUT/ablation.png    the errors per setting (bars: mean, whiskers: std, dots: seeds)

A setting that does not apply to a variant (``cifar`` has no LRN and no dropout) is skipped
for it. See docs/ablation.md for what was run and how it compares with the paper.
"""
from __future__ import annotations

import json
import os
import sys
import time

# setting -> (build options, augment); None means "the variant's own".
SETTINGS = {
    "baseline": ({}, True),
    "no-lrn": ({"norm": "none"}, True),
    "batchnorm": ({"norm": "bn"}, True),
    "nonoverlap-pool": ({"pool": "nonoverlap"}, True),
    "no-dropout": ({"dropout": 0.0}, True),
    "no-augment": ({}, False),
}
MODELS = {"mini": "fashion-mnist", "cifar": "cifar10"}
# per-channel mean / std of the training images in [0, 1] are computed from the data;
# augmentation: random crops with zero padding (2 px at 28, 4 px at 32) and horizontal flips.
PADDING = {"fashion-mnist": 2, "cifar10": 4}


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
    options, augment = SETTINGS[setting]
    if setting == "no-lrn":
        return spec.norm == "lrn"
    if setting == "batchnorm":
        return any(c.norm for c in spec.convs)
    if setting == "no-dropout":
        return spec.dropout > 0
    return True


def register(subparsers) -> None:
    import argparse  # noqa: PLC0415
    p = subparsers.add_parser("ablate", help="train mini (and cifar) with each of the paper's choices switched "
                              "off in turn, over several seeds", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                   help="variants to ablate (default: mini, and cifar when CIFAR-10 is present)")
    p.add_argument("--settings", nargs="+", default=None, metavar="SETTING",
                   help=f"settings to run (default: all): {', '.join(SETTINGS)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the recipe's)")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--limit-test", type=int, default=None, help="use only the first N test images")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    p.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of the models (default 1)")
    p.add_argument("--data-dir", default=None, help="directory with the dataset files")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--out", default=os.path.join("runs", "ablation"), help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _subset(ds, limit):
    """The first ``limit`` examples of a dataset, as a light object the DataLoader accepts."""
    class Subset:
        pass
    sub = Subset()
    n = len(ds.targets) if limit is None else min(int(limit), len(ds.targets))
    sub.images, sub.targets, sub.classes = ds.images[:n], ds.targets[:n], list(ds.classes)
    sub.__class__.__len__ = lambda self: len(self.targets)
    return sub


def load_data(dataset: str, data_dir=None, limit_train=None, limit_test=None):
    from minidl import data  # noqa: PLC0415
    cls = data.FashionMNIST if dataset == "fashion-mnist" else data.CIFAR10
    train = cls(root=data_dir, train=True, download=False)
    test = cls(root=data_dir, train=False, download=False)
    return _subset(train, limit_train), _subset(test, limit_test)


def train_one(model_name, setting, seed, train_set, test_set, *, epochs, batch_size, lr, width=1.0,
              device="cpu", progress=False, log=None):
    """Train one (model, setting, seed) and return its test top-1 error (a fraction)."""
    import numpy as np  # noqa: PLC0415

    import minidl as md  # noqa: PLC0415
    from minidl import optim  # noqa: PLC0415
    from minidl.data import DataLoader, transforms as T  # noqa: PLC0415

    from .. import models, train as trainer_module  # noqa: PLC0415
    options, augment = SETTINGS[setting]
    recipe = models.recipe(model_name)
    dataset = MODELS[model_name]
    md.manual_seed(seed)
    c, h, w = train_set.images.shape[1:]
    model = models.build(model_name, num_classes=len(train_set.classes), width=width, in_channels=int(c),
                         input_size=(int(h), int(w)), **options)
    if device != "cpu":
        model.to(device)
    sample = train_set.images[:10000].astype(np.float32) / 255.0
    normalize = T.Normalize(sample.mean(axis=(0, 2, 3)), sample.std(axis=(0, 2, 3)))
    train_tf = T.Compose([T.RandomCrop((h, w), padding=PADDING[dataset]), T.RandomHorizontalFlip(), normalize]) \
        if augment else normalize
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, transform=train_tf)
    test_loader = DataLoader(test_set, batch_size=256, transform=normalize)
    if recipe["optimizer"] == "adam":
        optimizer = optim.Adam(model.parameters(), lr=lr)
    else:
        optimizer = optim.SGD(model.parameters(), lr=lr, momentum=recipe["momentum"],
                              weight_decay=recipe["weight_decay"],
                              rule="paper" if recipe["optimizer"] == "sgd-paper" else "pytorch")
    kind = recipe["schedule"] if recipe["schedule"] in trainer_module.SCHEDULES else "none"
    schedule = trainer_module.Schedule(kind, optimizer, epochs=epochs, steps_per_epoch=len(train_loader),
                                       **{k: v for k, v in recipe["schedule_args"].items() if k != "times"})
    trainer = trainer_module.Trainer(model, optimizer, train_loader, test_loader, epochs=epochs,
                                     num_classes=len(train_set.classes), schedule=schedule, device=device,
                                     progress=progress, plots=False, log=log or (lambda *a: None))
    trainer.fit()
    return 1.0 - trainer.history[-1]["test_acc"]


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
    from .. import models  # noqa: PLC0415
    from ..checkpoint import write_json_atomic  # noqa: PLC0415
    from ..diagnostic_plots import plot_ablation  # noqa: PLC0415

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
    datasets = {}
    for name in wanted:
        try:
            datasets[name] = load_data(MODELS[name], args.data_dir, args.limit_train, args.limit_test)
        except Exception as exc:  # DatasetNotFoundError: skip cifar quietly unless asked for
            if args.models:
                return fail(f"{name}: {exc}")
            print(f"alexnet ablate: skipping {name}: {MODELS[name]} not found", file=sys.stderr)
    if not datasets:
        return fail("no dataset found for any model")

    os.makedirs(args.out, exist_ok=True)
    runs = []
    for name, (train_set, test_set) in datasets.items():
        recipe = models.recipe(name)
        epochs = args.epochs or recipe["epochs"]
        batch_size = args.batch_size or recipe["batch_size"]
        lr = args.lr or recipe["lr"]
        for setting in settings:
            if not applies(name, setting):
                print(f"{name}: '{setting}' does not apply (the variant lacks that choice); skipped")
                continue
            for seed in range(args.seeds):
                start = time.perf_counter()
                error = train_one(name, setting, seed, train_set, test_set, epochs=epochs, batch_size=batch_size,
                                  lr=lr, width=args.width, device=args.device, progress=not args.quiet)
                runs.append(dict(model=name, setting=setting, seed=seed, test_error=error,
                                 seconds=time.perf_counter() - start))
                print(f"{name} {setting} seed {seed}: test error {100 * error:.2f}% "
                      f"({runs[-1]['seconds']:.0f} s)", flush=True)
    rows = summarise(runs)
    first_train, first_test = next(iter(datasets.values()))
    config = dict(seeds=args.seeds, epochs=args.epochs or "recipe", width=args.width, lr=args.lr or "recipe",
                  batch_size=args.batch_size or "recipe", train_images=len(first_train.targets),
                  test_images=len(first_test.targets), settings=settings, models=list(datasets))
    write_json_atomic(os.path.join(args.out, "ablation.json"), dict(config=config, summary=rows, runs=runs))
    table = markdown(rows, config)
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(table)
    plot_ablation(rows, os.path.join(args.out, "ablation.png"),
                  title=f"ablation: {args.seeds} seeds, {config['epochs']} epochs, {config['train_images']} images")
    print("\n" + table)
    print(f"written: {os.path.join(args.out, 'ablation.json')}, ablation.md, ablation.png")
    return 0
