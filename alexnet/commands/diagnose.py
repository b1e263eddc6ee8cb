"""``alexnet diagnose --model NAME``: one batch forward and backward, per-layer statistics.

For each initialisation given (``--init paper kaiming`` compares two side by side) it builds the
model, runs one batch of real data (or random inputs) forward and backward through the
cross-entropy loss, prints a per-layer table (output shape, activation mean/std, fraction of
zero outputs and of dead units, output-gradient norm, parameter-gradient norm) and writes

    OUT/diagnose.json              every record, per initialisation
    OUT/histograms-<init>.png      a histogram of each layer's outputs on the batch

and, with two or more initialisations, a compact comparison of the weighted layers. Nothing is
trained; the point is to see, before a long run, whether activations and gradients survive the
trip through the layers. See docs/diagnostics.md.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

import minidl as md
import minidl.functional as F
from minidl import backend, data
from minidl.train.diagnostic_plots import plot_histograms
from minidl.train.monitor import LayerMonitor, format_table, leaf_modules

from .. import args as V, models

DATASETS = ("fashion-mnist", "cifar10", "random")
HISTOGRAM_SKIP = ("Flatten", "Dropout", "Identity")


def register(subparsers) -> None:
    p = subparsers.add_parser("diagnose", help="one batch forward/backward: per-layer activation and "
                              "gradient statistics, histograms", description=__doc__,
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=models.names(), help="the variant")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="where the batch comes from (default: the variant's recipe dataset, "
                        "or random inputs for image-folder variants)")
    p.add_argument("--init", nargs="+", choices=models.INITS, default=None,
                   help="initialisation(s); two or more are compared side by side (default: the variant's own)")
    p.add_argument("--batch-size", type=V.POSITIVE_INT, default=64, help="examples in the batch (default 64)")
    p.add_argument("--width", type=V.WIDTH, default=1.0, help="width multiplier of the model (default 1)")
    p.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                   help="only these layers (dotted names, e.g. features.0); default: every layer")
    p.add_argument("--no-normalize", action="store_true",
                   help="feed raw [0, 1] pixels instead of per-channel standardised ones")
    p.add_argument("--seed", type=V.NONNEG_INT, default=0, help="seed of the initialisation and the batch")
    p.add_argument("--data-dir", default=None, help="directory with the dataset files")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--out", default=None, help="output directory (default runs/diagnose-MODEL)")
    p.set_defaults(func=run)


def load_batch(dataset: str, batch_size: int, seed: int, input_shape, data_dir=None, normalize=True):
    """(x float32 (B, C, H, W), y int64 (B,), num_classes or None): a seeded batch of the dataset,
    standardised per channel with the statistics of (up to) 10,000 training images."""
    rng = np.random.default_rng(seed)
    if dataset == "random":
        x = rng.standard_normal((batch_size,) + tuple(input_shape)).astype(np.float32)
        return x, None, None
    ds = data.FashionMNIST(root=data_dir, train=True) if dataset == "fashion-mnist" else \
        data.CIFAR10(root=data_dir, train=True)
    images, targets = ds.images, ds.targets
    pick = rng.choice(len(targets), size=min(batch_size, len(targets)), replace=False)
    x = images[pick].astype(np.float32) / 255.0
    if normalize:
        sample = images[: 10000].astype(np.float32) / 255.0
        mean = sample.mean(axis=(0, 2, 3), keepdims=True)
        std = sample.std(axis=(0, 2, 3), keepdims=True)
        x = (x - mean[0]) / std[0]
    return np.ascontiguousarray(x, dtype=np.float32), targets[pick].astype(np.int64), len(ds.classes)


def diagnose_one(model, x, y, layers=None, device="cpu"):
    """Forward and backward of one batch with a LayerMonitor; returns (loss, records, activations)."""
    monitor = LayerMonitor(model, every=1, layers=layers)
    activations, handles = {}, []
    sample = np.random.default_rng(0)
    for name, module in monitor.layers:
        if type(module).__name__ in HISTOGRAM_SKIP:
            continue

        def keep(module, inputs, output, name=name):
            values = backend.asnumpy(output.data).ravel()
            if values.size > 200_000:
                values = sample.choice(values, 200_000, replace=False)
            activations[f"{name} {type(module).__name__}"] = values

        handles.append(module.register_forward_hook(keep))
    model.train()
    xt = md.tensor(x, device=device)
    logits = model(xt)
    loss = F.cross_entropy(logits, md.tensor(y, device=device))
    model.zero_grad()
    loss.backward()
    monitor.end_step()
    for h in handles:
        h.remove()
    monitor.remove()
    return float(loss.item()), monitor.history, activations


def run(args) -> int:
    def fail(message):
        print(f"alexnet diagnose: {message}", file=sys.stderr)
        return 2

    if args.batch_size < 1:
        return fail(f"--batch-size must be >= 1, got {args.batch_size}")
    spec = models.VARIANTS[args.model]
    recipe = models.recipe(args.model)
    dataset = args.dataset or (recipe["dataset"] if recipe["dataset"] in DATASETS else "random")
    inits = args.init or [spec.init]
    out = args.out or os.path.join("runs", f"diagnose-{args.model}")
    try:
        x, y, num_classes = load_batch(dataset, args.batch_size, args.seed, recipe["input_shape"],
                                       args.data_dir, normalize=not args.no_normalize)
    except Exception as exc:  # DatasetNotFoundError and friends: say so, suggest --dataset random
        return fail(f"{exc}\n(use --dataset random to diagnose on random inputs)")
    if y is None:
        num_classes = spec.num_classes
        y = np.random.default_rng(args.seed + 1).integers(0, num_classes, len(x))
    options = dict(in_channels=int(x.shape[1]), input_size=tuple(int(s) for s in x.shape[2:]), width=args.width)

    os.makedirs(out, exist_ok=True)
    results, chance = {}, float(np.log(num_classes))
    for init in inits:
        md.manual_seed(args.seed)
        try:
            model = models.build(args.model, num_classes=num_classes, init=init, **options)
        except ValueError as exc:
            return fail(str(exc))
        if args.device != "cpu":
            model.to(args.device)
        if args.layers:
            valid = [n for n, _ in leaf_modules(model)]
            unknown = [n for n in args.layers if n not in valid]
            if unknown:
                return fail(f"unknown layer name(s) {unknown}; valid layer names: {', '.join(valid)}")
        loss, records, activations = diagnose_one(model, x, y, args.layers, args.device)
        results[init] = dict(loss=loss, records=records)
        print(f"\n== {args.model}, init {init}, {dataset} batch of {len(x)} "
              f"{'x'.join(map(str, x.shape[1:]))}: loss {loss:.4f} (chance ln({num_classes}) = {chance:.4f})")
        print(format_table(records))
        path = os.path.join(out, f"histograms-{init}.png")
        plot_histograms(activations, path, title=f"{args.model}, init {init}: layer outputs on one batch")
        print(f"histograms: {path}")

    if len(inits) > 1:
        print("\n== side by side (weighted layers): output std / output-gradient norm per element")
        first = results[inits[0]]["records"]
        names = [r["layer"] for r in first if r["type"] in ("Conv2d", "Linear")]
        header = ["layer"] + [f"{i}: act std" for i in inits] + [f"{i}: grad rms" for i in inits]
        rows = []
        for name in names:
            row = [name]
            for key in ("act_std", "grad_rms"):
                for init in inits:
                    rec = next(r for r in results[init]["records"] if r["layer"] == name)
                    row.append("-" if rec[key] is None else f"{rec[key]:.3g}")
            rows.append(row)
        widths = [max(len(c) for c in col) for col in zip(header, *rows)]
        for row in [header] + rows:
            print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    with open(os.path.join(out, "diagnose.json"), "w") as f:
        json.dump(dict(model=args.model, dataset=dataset, batch_size=len(x), width=args.width,
                       normalized=not args.no_normalize, chance_loss=chance, results=results), f, indent=1)
    print(f"\nrecords: {os.path.join(out, 'diagnose.json')}")
    return 0
