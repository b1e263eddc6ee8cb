"""Per-layer training statistics, collected with minidl's hooks every N steps.

    monitor = LayerMonitor(model, every=50)      # hooks attached on steps 0, 50, 100, ...
    for step, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y)      # forward hooks record activation statistics
        opt.zero_grad(); loss.backward()         # tensor hooks record output-gradient norms
        monitor.before_step()                    # parameter-gradient norms, weights snapshot
        opt.step()
        monitor.after_step()                     # update-to-weight ratios; next step's hooks on/off
    monitor.history                              # one dict per (monitored step, layer)

What is measured, for each monitored layer (a leaf module: Conv2d, ReLU, LRN, MaxPool2d,
Dropout, Linear, ... by default; ``layers=`` picks some), on a monitored step:

    act_mean, act_std   mean and standard deviation of the layer's output over the whole batch
    zero_frac           fraction of output elements that are exactly 0 (for a ReLU: "off" outputs)
    dead_frac           fraction of units (channels of an NCHW output, features of an (N, F)
                        output) that are 0 for every example and position in the batch:
                        units that pass no gradient at all on this batch
    grad_norm           ||dL/d output||_2 (the gradient arriving at the layer's output)
    grad_rms            grad_norm / sqrt(output size): per-element, comparable across layers
    param_norm          ||theta||_2 over the layer's own parameters (weight and bias together)
    param_grad_norm     ||dL/d theta||_2, read just before optimizer.step
    update_ratio        ||theta_after - theta_before||_2 / ||theta_before||_2 around optimizer.step
                        (about 1e-3 in a healthy run; None when the weights are all zero)

Cost: on steps where ``step % every != 0`` no hook is attached at all (they are added before
a monitored step and removed after it), so off-steps run exactly as without a monitor. On a
monitored step each statistic is a few passes over arrays that are already there, plus one
copy of the parameters for the update ratio. Forward calls under ``no_grad`` (evaluation)
are not recorded.
"""
from __future__ import annotations

import math
import time

from minidl import backend
from minidl.grad_mode import is_grad_enabled
from minidl.tensor import Tensor

STATS = ("act_mean", "act_std", "zero_frac", "dead_frac", "grad_norm", "grad_rms",
         "param_norm", "param_grad_norm", "update_ratio")


def _norm(array) -> float:
    """||array||_2 as a Python float (a dot product in the array's own dtype, on its device)."""
    xp = backend.get_array_module(array)
    flat = array.reshape(-1)
    return float(xp.sqrt(xp.dot(flat, flat)))


def activation_stats(array) -> dict:
    """act_mean, act_std, zero_frac, dead_frac and the shape of one output array (N, C, ...)."""
    xp = backend.get_array_module(array)
    zero = array == 0
    size = max(array.size, 1)
    if array.ndim >= 2:
        # a unit is a channel (dim 1): dead when zero for every example and every position
        other_axes = tuple(i for i in range(array.ndim) if i != 1)
        dead_units = zero.all(axis=other_axes)
        dead = int(xp.count_nonzero(dead_units)) / max(dead_units.size, 1)
    else:
        dead = int(xp.count_nonzero(zero)) / size
    return dict(shape=tuple(int(s) for s in array.shape),
                act_mean=float(array.mean()),
                act_std=float(array.std()),
                zero_frac=int(xp.count_nonzero(zero)) / size,
                dead_frac=dead)


def leaf_modules(model):
    """(dotted name, module) for every module without children, in registration order."""
    return [(name, m) for name, m in model.named_modules() if name and not m._modules] or [("", model)]


class LayerMonitor:
    """Per-layer statistics every ``every`` steps (see the module docstring).

    model   the minidl Module to watch
    every   record on steps where step % every == 0 (default 50)
    layers  names of leaf modules to watch (default: all leaf modules); an unknown name raises
            a ValueError listing the valid ones
    start   the number of the first step (default 0)
    """

    def __init__(self, model, every: int = 50, layers=None, start: int = 0):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"LayerMonitor: every must be a positive integer, got {every!r}")
        available = leaf_modules(model)
        names = [n for n, _ in available]
        if layers is None:
            chosen = available
        else:
            layers = [layers] if isinstance(layers, str) else list(layers)
            unknown = [n for n in layers if n not in names]
            if unknown:
                raise ValueError(f"LayerMonitor: unknown layer name(s) {unknown}; valid layer names: "
                                 f"{', '.join(names)}")
            chosen = [(n, m) for n, m in available if n in layers]
        self.model = model
        self.every = every
        self.layers = chosen
        self.step = start
        self.history: list[dict] = []   # one dict per (monitored step, layer), in forward order
        self._handles = []
        self._current: dict = {}        # layer name -> record of the step being monitored
        self._snapshots: dict = {}      # layer name -> list of parameter copies
        self.seconds = 0.0              # time spent in the monitor's own work (hooks, before/after_step)
        self._sync_hooks()

    # ---------------------------------------------------------------- stepping
    @property
    def active(self) -> bool:
        """Whether the current step is recorded."""
        return self.step % self.every == 0

    def begin_step(self, step: int) -> None:
        """Optional: say which step comes next (attaches or removes the hooks to match)."""
        self.step = int(step)
        self._current, self._snapshots = {}, {}
        self._sync_hooks()

    def before_step(self) -> None:
        """Call after backward, just before optimizer.step: parameter-gradient norms and copies."""
        if not self.active or not self._current:  # nothing recorded: no (grad-enabled) forward ran
            return
        start = time.perf_counter()
        for name, module in self.layers:
            params = list(module._parameters.values())
            params = [p for p in params if p is not None]
            if not params:
                continue
            rec = self._record(name, module)
            grads = [p.grad.data for p in params if p.grad is not None]
            rec["param_grad_norm"] = math.sqrt(sum(_norm(g) ** 2 for g in grads)) if grads else None
            rec["param_norm"] = math.sqrt(sum(_norm(p.data) ** 2 for p in params))
            self._snapshots[name] = [p.data.copy() for p in params]
        self.seconds += time.perf_counter() - start

    def after_step(self) -> None:
        """Call just after optimizer.step: update-to-weight ratios; the step's records go to
        ``history``; the hooks are attached or removed for the next step."""
        start = time.perf_counter()
        if self.active:
            for name, module in self.layers:
                saved = self._snapshots.get(name)
                if saved is None:
                    continue
                params = [p for p in module._parameters.values() if p is not None]
                update = math.sqrt(sum(_norm(p.data - old) ** 2 for p, old in zip(params, saved)))
                before = self._current[name]["param_norm"]
                self._current[name]["update_ratio"] = update / before if before > 0 else None
            self.history.extend(self._current.values())
        self.step += 1
        self._current, self._snapshots = {}, {}
        self._sync_hooks()
        self.seconds += time.perf_counter() - start

    def end_step(self) -> None:
        """Finish a step without an optimizer (as ``diagnose`` does): records go to ``history``."""
        self.before_step()
        self._snapshots = {}
        self.after_step()

    # ----------------------------------------------------------------- reading
    def latest(self) -> list:
        """The records of the last monitored step, in forward order (empty before the first)."""
        if not self.history:
            return []
        last = self.history[-1]["step"]
        return [r for r in self.history if r["step"] == last]

    def steps(self) -> list:
        """The monitored steps so far."""
        return sorted({r["step"] for r in self.history})

    def series(self, layer: str, stat: str) -> tuple:
        """(steps, values) of one statistic of one layer over training."""
        if stat not in STATS:
            raise ValueError(f"LayerMonitor.series: unknown statistic {stat!r}; valid ones: {', '.join(STATS)}")
        names = [n for n, _ in self.layers]
        if layer not in names and not any(r["layer"] == layer for r in self.history):
            raise ValueError(f"LayerMonitor.series: unknown layer name {layer!r}; valid layer names: "
                             f"{', '.join(names)}")
        rows = [r for r in self.history if r["layer"] == layer]
        return [r["step"] for r in rows], [r.get(stat) for r in rows]

    def remove(self) -> None:
        """Detach every hook (the monitor then records nothing)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.every = 1 << 62  # never active again

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    # --------------------------------------------------------------- internals
    def _sync_hooks(self) -> None:
        if self.active and not self._handles:
            self._handles = [m.register_forward_hook(self._make_hook(name)) for name, m in self.layers]
        elif not self.active and self._handles:
            for handle in self._handles:
                handle.remove()
            self._handles = []

    def _record(self, name, module) -> dict:
        rec = self._current.get(name)
        if rec is None:
            rec = dict(step=self.step, layer=name, type=type(module).__name__, shape=None,
                       act_mean=None, act_std=None, zero_frac=None, dead_frac=None, grad_norm=None,
                       grad_rms=None, param_norm=None, param_grad_norm=None, update_ratio=None)
            self._current[name] = rec
        return rec

    def _make_hook(self, name):
        def hook(module, inputs, output):
            if not isinstance(output, Tensor) or not is_grad_enabled():
                return None
            start = time.perf_counter()
            rec = self._record(name, module)
            rec.update(activation_stats(output.data))
            if output.requires_grad:
                size = max(output.numel(), 1)

                def grad_hook(grad):
                    t0 = time.perf_counter()
                    norm = _norm(grad.data)
                    rec["grad_norm"] = norm
                    rec["grad_rms"] = norm / math.sqrt(size)
                    self.seconds += time.perf_counter() - t0

                output.register_hook(grad_hook)
            self.seconds += time.perf_counter() - start
            return None
        return hook


def format_table(records) -> str:
    """A fixed-width text table of one step's records (what ``diagnose`` prints)."""
    def num(v, fmt="{:.3g}"):
        return "-" if v is None else fmt.format(v)

    header = ("layer", "type", "output shape", "act mean", "act std", "zero %", "dead %",
              "grad norm", "grad rms", "param grad")
    rows = [(r["layer"], r["type"], "x".join(map(str, r["shape"] or ())), num(r["act_mean"]),
             num(r["act_std"]), num(None if r["zero_frac"] is None else 100 * r["zero_frac"], "{:.1f}"),
             num(None if r["dead_frac"] is None else 100 * r["dead_frac"], "{:.1f}"),
             num(r["grad_norm"]), num(r["grad_rms"]), num(r["param_grad_norm"])) for r in records]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
