"""Figures of the per-layer diagnostics (matplotlib, Agg backend, written atomically).

- ``plot_layers``: OUT/layers.png, the LayerMonitor's statistics per layer over training:
  activation std, fraction of zero outputs (ReLU layers), output-gradient norm per element and
  update-to-weight ratio (weighted layers), one line per layer, log scales where they span decades;
- ``plot_histograms``: one panel per layer, the histogram of its output values on one batch
  (what ``alexnet diagnose`` writes, to compare two initialisations side by side);
- ``plot_ablation``: the ablation's training curves: train and test error by epoch, one colour
  per setting, each seed a thin line, the mean over seeds a thick one.
"""
from __future__ import annotations

import math

import numpy as np

from .plots import _pyplot, _save, epoch_positions

WEIGHTED = ("Conv2d", "Linear")


def _series(history, layer, stat):
    rows = [r for r in history if r["layer"] == layer and r.get(stat) is not None]
    return [r["step"] for r in rows], [r[stat] for r in rows]


def plot_layers(history: list, path: str, title: str = "") -> None:
    """history: LayerMonitor.history (one dict per monitored step and layer)."""
    plt = _pyplot()
    layers, kinds = [], {}
    for r in history:
        if r["layer"] not in kinds:
            layers.append(r["layer"])
            kinds[r["layer"]] = r["type"]
    weighted = [n for n in layers if kinds[n] in WEIGHTED]
    relus = [n for n in layers if "ReLU" in kinds[n]]
    panels = [("act_std", "activation std (output of weighted layers)", weighted, True),
              ("zero_frac", "fraction of zero outputs (ReLU layers)", relus, False),
              ("grad_rms", "output-gradient norm per element", weighted, True),
              ("update_ratio", "update-to-weight ratio per step", weighted, True)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    cmap = plt.get_cmap("viridis")
    for ax, (stat, label, names, log) in zip(axes.flat, panels):
        drawn = False
        for i, name in enumerate(names):
            steps, values = _series(history, name, stat)
            values = [v for v in values]
            if log:
                pairs = [(s, v) for s, v in zip(steps, values) if v > 0 and math.isfinite(v)]
                steps, values = [p[0] for p in pairs], [p[1] for p in pairs]
            if not steps:
                continue
            color = cmap(i / max(len(names) - 1, 1))
            ax.plot(steps, values, ".-", color=color, label=f"{name} ({kinds[name]})")
            drawn = True
        if stat == "update_ratio":
            ax.axhline(1e-3, color="grey", linestyle="--", linewidth=1, label="1e-3 rule of thumb")
        if log and drawn:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if drawn and len(names) <= 12:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_histograms(activations: dict, path: str, title: str = "", bins: int = 60) -> None:
    """activations: {layer label: NumPy array of its outputs}; one histogram panel per layer."""
    plt = _pyplot()
    n = max(len(activations), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, (label, values) in zip(axes.flat, activations.items()):
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        zero = float(np.mean(values == 0)) if values.size else 0.0
        nonzero = values[values != 0] if zero > 0.2 else values  # a ReLU's spike at 0 hides the rest
        if nonzero.size:  # one filled step artist per panel: much faster to draw than hist's bars
            counts, edges = np.histogram(nonzero, bins=bins)
            ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.8)
        std = float(values.std()) if values.size else 0.0
        note = f"std {std:.3g}" + (f", {zero:.0%} zeros (not drawn)" if zero > 0.2 else "")
        ax.set_title(f"{label}\n{note}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(activations):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_ablation(runs: list, path: str, title: str = "") -> None:
    """runs: ablate's run results (dicts with model, setting, seed and history: per-epoch train_acc,
    test_acc and, for an epoch cut short, epoch_fraction)."""
    plt = _pyplot()
    models = list(dict.fromkeys(r["model"] for r in runs))
    keys = list(dict.fromkeys((r["model"], r["setting"]) for r in runs))
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for i, key in enumerate(keys):
        mine = [r for r in runs if (r["model"], r["setting"]) == key]
        label = key[1] if len(models) == 1 else f"{key[0]}: {key[1]}"
        for ax, metric in zip(axes, ("train_acc", "test_acc")):
            curves = []
            for r in mine:
                x = epoch_positions(r["history"])
                y = [100 * (1 - h[metric]) for h in r["history"]]
                ax.plot(x, y, "-", color=colors(i % 10), linewidth=0.8, alpha=0.45)
                curves.append((x, y))
            n = min(len(c[0]) for c in curves)   # the epochs every seed has
            mean = np.mean([c[1][:n] for c in curves], axis=0)
            ax.plot(curves[0][0][:n], mean, "o-", color=colors(i % 10), linewidth=2.2, markersize=3,
                    label=f"{label} ({len(mine)} seeds)")
    for ax, what in zip(axes, ("train error (running, as trained: with augmentation and dropout)",
                               "test error")):
        ax.set_title(what, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("top-1 error (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(f"{title} -- thin: seeds, thick: mean")
    fig.tight_layout()
    _save(fig, path)
