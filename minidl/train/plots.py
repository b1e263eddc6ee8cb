"""The training run's figures, drawn with matplotlib's Agg backend (no display needed).

- ``plot_curves``: train and test loss, and train/test top-1 (and test top-5) accuracy per epoch;
  an epoch cut short by the time budget is drawn at its true position (``epoch_positions``:
  4.09 when the budget ended the run 9 % into epoch 5) and marked as ended by the budget;
- ``plot_filters``: the first convolution's filters as a grid of small images, each filter
  scaled to [0, 1] on its own (as the paper's figure 3); 1-channel filters in grey, 3-channel
  ones as RGB;
- ``plot_confusion``: the test confusion matrix (rows: true class, columns: predicted), with
  the class names.

Each figure is written atomically (temporary file, then rename), like the checkpoints.
"""
from __future__ import annotations

import math

import numpy as np

from .checkpoint import atomic_write


def _pyplot():
    import matplotlib  # noqa: PLC0415 - only imported when a figure is drawn
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415 - optional dependency, loaded only when a figure is drawn
    return plt


def _save(fig, path):
    plt = _pyplot()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def epoch_positions(history: list) -> list:
    """The x position of each history record: its epoch number, or for an epoch the time budget
    cut short (a record with ``epoch_fraction``), epoch - 1 + that fraction (4.09 for 9 % of epoch 5).
    An old record with ``partial_epoch_steps`` but no fraction stays at its epoch number."""
    return [h["epoch"] - 1 + h["epoch_fraction"] if h.get("epoch_fraction") is not None else h["epoch"]
            for h in history]


def plot_curves(history: list, path: str, title: str = "") -> None:
    """history: metrics.json's "epochs" list. Left: train and test loss; right: accuracies."""
    plt = _pyplot()
    x = epoch_positions(history)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(x, [h["train_loss"] for h in history], "o-", label="train loss (running, as trained)")
    test_loss = [h.get("test_loss") for h in history]
    if any(v is not None for v in test_loss):
        ax_loss.plot(x, [math.nan if v is None else v for v in test_loss], "o-", label="test loss")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.plot(x, [h["train_acc"] for h in history], "o-", label="train top-1")
    ax_acc.plot(x, [h["test_acc"] for h in history], "o-", label="test top-1")
    ax_acc.plot(x, [h["test_top5"] for h in history], "o--", label="test top-5", alpha=0.6)
    ax_acc.set_ylabel("accuracy")
    cut = [i for i, h in enumerate(history) if "partial_epoch_steps" in h or h.get("epoch_fraction") is not None]
    for ax in (ax_loss, ax_acc):
        data_lines = list(ax.get_lines())
        for i in cut:   # the last point of a run the time budget ended: an open ring and a dotted line
            ax.axvline(x[i], color="grey", linestyle=":", linewidth=1,
                       label=f"ended by the time budget at epoch {x[i]:.2f}" if i == cut[0] else None)
            for line in data_lines:
                y = line.get_ydata()[i]
                ax.plot([x[i]], [y], "o", markersize=11, markerfacecolor="none", color=line.get_color())
        ax.set_xlabel("epoch")
        ax.set_xticks(range(1, max((h["epoch"] for h in history), default=1) + 1))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if history:
        best = max(h["test_acc"] for h in history)
        ax_acc.set_title(f"best test top-1 {best:.2%}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def first_conv_weight(model):
    """The weight (out, in, kh, kw) of the model's first 4-d parameter (its first convolution), or None."""
    for name, p in model.named_parameters():
        if p.ndim == 4:
            return name, p.numpy()
    return None, None


def filter_grid(weight: np.ndarray, pad: int = 1) -> np.ndarray:
    """Tile filters (out, c, kh, kw) into one image (rows, cols, c) with values in [0, 1].

    Each filter is scaled by its own min and max; the gaps between tiles are white.
    3-channel filters stay RGB; any other channel count shows channel 0.
    """
    out, c, kh, kw = weight.shape
    if c != 3:
        weight = weight[:, :1]
        c = 1
    w = weight.astype(np.float64)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    hi = w.max(axis=(1, 2, 3), keepdims=True)
    w = (w - lo) / np.where(hi > lo, hi - lo, 1.0)
    cols = math.ceil(math.sqrt(out))
    rows = math.ceil(out / cols)
    grid = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, c))
    for i in range(out):
        r, q = divmod(i, cols)
        y, x = pad + r * (kh + pad), pad + q * (kw + pad)
        grid[y:y + kh, x:x + kw] = w[i].transpose(1, 2, 0)
    return grid


def plot_filters(weight: np.ndarray, path: str, title: str = "first convolution's filters") -> None:
    plt = _pyplot()
    grid = filter_grid(weight)
    size = max(3.0, min(12.0, grid.shape[1] / 10))
    fig, ax = plt.subplots(figsize=(size, size * grid.shape[0] / grid.shape[1] + 0.5))
    if grid.shape[2] == 1:
        ax.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{title} {tuple(weight.shape)}")
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(confusion: np.ndarray, classes, path: str, title: str = "test confusion matrix") -> None:
    """confusion[i, j]: test images of class i predicted as class j."""
    plt = _pyplot()
    confusion = np.asarray(confusion)
    n = confusion.shape[0]
    classes = [str(c) for c in (classes if classes is not None and len(classes) == n else range(n))]
    size = max(5.0, min(20.0, 0.45 * n + 2))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = confusion / np.maximum(rows, 1)
    image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 30:
        ticks = np.arange(n)
        ax.set_xticks(ticks, classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(ticks, classes, fontsize=8)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if confusion[i, j]:
                        ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7,
                                color="white" if fraction[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = confusion.sum()
    ax.set_title(f"{title} (top-1 {np.trace(confusion) / max(total, 1):.2%} of {int(total)})")
    fig.tight_layout()
    _save(fig, path)
