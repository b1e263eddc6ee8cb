"""The training health check: plain-words warnings about a network that is not learning.

    health = HealthCheck(num_classes=10)
    for step ...:
        ...                                              # forward, backward, monitor, optimizer
        for message in health.check(step, loss.item(), monitor):
            tqdm.write(message)

``check`` looks at the loss of every step and at the newest records of a ``LayerMonitor``
(minidl/train/monitor.py) and returns the warnings that became true on this step. Each
warning fires once per (kind, layer) for the whole run, so a long run is not flooded.

The warnings, and what they measure:

stuck at chance   the mean loss of each half of the last ``chance_steps`` steps is within
                  ``chance_margin`` nats of ln(num_classes) -- what a network that outputs the
                  same scores for every class gets.
non-finite loss   the loss is NaN or infinite.
dead units        a ReLU layer has at least ``dead_threshold`` of its units (channels /
                  features) at zero for every example of the batch, on ``patience``
                  consecutive monitored steps.
vanishing /       the per-element gradient (``grad_rms``) at the output of one weighted layer
exploding grads   is ``grad_factor`` times smaller / larger than at the next weighted layer
                  (gradients flow backwards, from the later layer to the earlier one), or
                  ``total_factor`` times from the last hidden weighted layer to the first (a
                  steady shrinking by a few times per layer adds up: PyTorch's default init on
                  ``mini`` loses ~2000x, the paper's N(0, 0.01) ~75000x, He init ~30x), on
                  ``patience`` consecutive monitored steps; an exactly-zero or non-finite
                  gradient warns at once.
update ratio      ||lr * update|| / ||w|| is below ``ratio_low`` or above ``ratio_high`` (the
                  rule of thumb is ~1e-3) on ``patience`` consecutive monitored steps.
zero weights      a weighted layer's parameters are all exactly zero (no symmetry breaking).
"""
from __future__ import annotations

import math
from collections import deque

CAUSES = {
    "init": "the initialisation (weights too small make activations and gradients shrink layer by layer, "
            "e.g. N(0, 0.01) in a deep net: try --init kaiming; too large make them blow up)",
    "lr": "the learning rate (too low or zero and nothing moves; too high and units die or the loss diverges)",
    "input": "input normalisation (inputs should have mean ~0 and std ~1 per channel; raw 0..255 pixels "
             "or a missing Normalize make the first layer saturate or starve)",
}

WEIGHTED = ("Conv2d", "Linear")


def _causes(*keys) -> str:
    return "Likely causes: " + "; ".join(CAUSES[k] for k in keys) + "."


class HealthCheck:
    """Warnings about a run (see the module docstring for the exact conditions).

    num_classes      for the chance-level loss ln(num_classes)
    chance_margin    nats around ln(num_classes) that count as "at chance" (default 0.05)
    chance_steps     the window of steps whose losses must sit at chance (default 100)
    dead_threshold   fraction of dead units that counts as "nearly all dead" (default 0.9)
    grad_factor      layer-to-layer gradient change that counts as vanishing/exploding (default 100)
    total_factor     change from the last hidden weighted layer to the first that counts (default 300)
    ratio_low/high   acceptable update-to-weight ratios (default 1e-5 and 1e-1: 100x off 1e-3)
    patience         consecutive monitored steps a layer condition must hold (default 2)
    """

    def __init__(self, num_classes: int, chance_margin: float = 0.05, chance_steps: int = 100,
                 dead_threshold: float = 0.9, grad_factor: float = 100.0, total_factor: float = 300.0,
                 ratio_low: float = 1e-5,
                 ratio_high: float = 1e-1, patience: int = 2):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"HealthCheck: num_classes must be an integer >= 2, got {num_classes!r}")
        if chance_steps < 1 or patience < 1:
            raise ValueError(f"HealthCheck: chance_steps and patience must be >= 1 "
                             f"(got chance_steps={chance_steps}, patience={patience})")
        self.num_classes = num_classes
        self.chance = math.log(num_classes)
        self.chance_margin, self.chance_steps = chance_margin, chance_steps
        self.dead_threshold, self.grad_factor, self.total_factor = dead_threshold, grad_factor, total_factor
        self.ratio_low, self.ratio_high, self.patience = ratio_low, ratio_high, patience
        self.fired: set = set()          # (kind, layer) already warned about
        self.warnings: list = []         # every warning given, in order
        self._losses = deque(maxlen=chance_steps)   # the last chance_steps losses
        self._streaks: dict = {}         # (kind, layer) -> consecutive monitored steps it held
        self._seen_step = None           # the newest monitored step already looked at
        self._annealing = False          # the schedule has lowered lr below 10% of its peak

    # ----------------------------------------------------------------- public
    def check(self, step: int, loss: float, monitor=None, lr_scale: float = 1.0) -> list:
        """Feed one step's loss (a float) and the monitor; returns the new warnings (strings).

        ``lr_scale``: the learning rate now over its peak. Below 0.1 a schedule is annealing on
        purpose, so tiny update-to-weight ratios are expected and not reported."""
        self._annealing = lr_scale < 0.1
        out = []
        loss = float(loss)
        if not math.isfinite(loss):
            self._fire(out, ("nonfinite", ""), f"step {step}: the loss is {loss}: training has diverged. "
                       + _causes("lr", "input", "init"))
            self._losses.clear()
        else:
            self._losses.append(loss)
        records = []
        if monitor is not None:
            records = monitor.latest()
            if records and records[0]["step"] == self._seen_step:
                records = []  # already looked at
            elif records:
                self._seen_step = records[0]["step"]
                out += self.check_records(step, records)
        if self.at_chance():
            detail = ""
            latest = records or (monitor.latest() if monitor is not None else [])
            weighted = [r for r in latest if r["type"] in WEIGHTED and r["act_std"] is not None]
            if weighted:
                low = min(weighted, key=lambda r: r["act_std"])
                detail = (f" The smallest activations are at layer '{low['layer']}' ({low['type']}, "
                          f"output std {low['act_std']:.3g}).")
            self._fire(out, ("chance", ""), (
                f"step {step}: the loss has stayed within {self.chance_margin:g} of ln({self.num_classes}) = "
                f"{self.chance:.3f} -- the loss of a network that gives every class the same score -- over "
                f"the last {self.chance_steps} steps: the network is stuck at chance and is not learning.{detail} "
                + _causes("init", "lr", "input")))
        return out

    def at_chance(self) -> bool:
        """Whether the mean loss of each half of the last ``chance_steps`` steps is within
        ``chance_margin`` of ln(num_classes). Means, not single steps, so that a stuck network
        whose per-batch loss wobbles (dropout, small batches) is still caught; both halves, so
        that a loss passing through ln(C) on its way down (mean 2.3 of 3.0 ... 1.6) is not."""
        if len(self._losses) < self.chance_steps:
            return False
        losses = list(self._losses)
        half = len(losses) // 2
        return all(abs(sum(part) / len(part) - self.chance) <= self.chance_margin
                   for part in (losses[:half] or losses, losses[half:]))

    def check_records(self, step: int, records) -> list:
        """Layer warnings from one monitored step's records (LayerMonitor.latest()): each rule of
        ``RULES`` looks at the records and fires its warnings through ``self._fire``."""
        out, holding = [], set()

        def sustained(key):
            """The condition ``key`` holds now; True once it has held on ``patience`` monitored steps."""
            holding.add(key)
            return self._streaks.get(key, 0) + 1 >= self.patience

        for rule in RULES:
            rule(self, step, records, out, sustained)
        self._streaks = {key: self._streaks.get(key, 0) + 1 for key in holding}
        return out

    # --------------------------------------------------------------- internal
    def _fire(self, out, key, message):
        if key in self.fired:
            return
        self.fired.add(key)
        message = "health check: " + message
        self.warnings.append(message)
        out.append(message)



# ------------------------------------------------------------------ the layer rules
# Each rule(health, step, records, out, sustained) appends the warnings that became true; a
# condition that could be noise goes through sustained(key), one that cannot fires at once.
def _weighted_with_grad(records):
    return [r for r in records if r["type"] in WEIGHTED and r["grad_rms"] is not None]


def dead_units(h, step, records, out, sustained):
    for r in records:
        name, kind = r["layer"], r["type"]
        if "ReLU" in kind and r["dead_frac"] is not None and r["dead_frac"] >= h.dead_threshold:
            if sustained(("dead", name)):
                h._fire(out, ("dead", name), (
                    f"step {step}: layer '{name}' ({kind}) has {100 * r['dead_frac']:.0f}% dead units "
                    f"(zero for every example in the batch; {100 * r['zero_frac']:.0f}% of its outputs are "
                    f"zero): no gradient flows through them. " + _causes("lr", "init", "input")))


def zero_weights(h, step, records, out, sustained):
    for r in records:
        name, kind = r["layer"], r["type"]
        if kind in WEIGHTED and r["param_norm"] == 0:
            h._fire(out, ("zeros", name), (
                f"step {step}: the weights of layer '{name}' ({kind}) are all zero: every unit computes "
                f"the same thing and receives the same gradient, so they can never differ. " + _causes("init")))


def update_ratio(h, step, records, out, sustained):
    for r in records:
        name, kind, ratio = r["layer"], r["type"], r.get("update_ratio")
        if kind not in WEIGHTED or ratio is None or not math.isfinite(ratio):
            continue
        if ratio < h.ratio_low and not h._annealing and sustained(("ratio-low", name)):
            h._fire(out, ("ratio", name), (
                f"step {step}: layer '{name}' ({kind}) changes by only {ratio:.2g} of its size per step "
                f"(update-to-weight ratio; ~1e-3 is healthy): it is barely learning. " + _causes("lr", "init")))
        if ratio > h.ratio_high and sustained(("ratio-high", name)):
            h._fire(out, ("ratio", name), (
                f"step {step}: layer '{name}' ({kind}) changes by {ratio:.2g} of its size per step "
                f"(update-to-weight ratio; ~1e-3 is healthy): the steps are far too large. "
                + _causes("lr", "init", "input")))


def nonfinite_gradient(h, step, records, out, sustained):
    for r in _weighted_with_grad(records):
        g = r["grad_rms"]
        if not math.isfinite(g):
            h._fire(out, ("grad", r["layer"]), (
                f"step {step}: the gradient at the output of layer '{r['layer']}' is {g}: gradients "
                f"have exploded. " + _causes("lr", "init", "input")))


def layer_to_layer_gradient(h, step, records, out, sustained):
    """Gradient flow between consecutive weighted layers (backwards: from later to earlier)."""
    weighted = _weighted_with_grad(records)
    for earlier, later in zip(weighted, weighted[1:]):
        g0, g1 = earlier["grad_rms"], later["grad_rms"]
        if not (math.isfinite(g0) and math.isfinite(g1)):
            continue
        if g0 == 0 and g1 > 0:
            h._fire(out, ("grad", earlier["layer"]), (
                f"step {step}: the gradient vanishes completely between layer '{later['layer']}' and layer "
                f"'{earlier['layer']}' (exactly zero at '{earlier['layer']}'s output): the layers before it "
                f"cannot learn. " + _causes("init", "lr", "input")))
        elif g1 > 0 and g0 < g1 / h.grad_factor and sustained(("vanish", earlier["layer"])):
            h._fire(out, ("grad", earlier["layer"]), (
                f"step {step}: the gradient vanishes from layer '{later['layer']}' to layer "
                f"'{earlier['layer']}': {g1:.2g} -> {g0:.2g} per element ({g1 / max(g0, 1e-300):.0f}x "
                f"smaller), so the earlier layers barely learn. " + _causes("init", "input")))
        elif g1 > 0 and g0 > g1 * h.grad_factor and sustained(("explode", earlier["layer"])):
            h._fire(out, ("grad", earlier["layer"]), (
                f"step {step}: the gradient explodes from layer '{later['layer']}' to layer "
                f"'{earlier['layer']}': {g1:.2g} -> {g0:.2g} per element ({g0 / g1:.0f}x larger). "
                + _causes("init", "lr", "input")))


def whole_stack_gradient(h, step, records, out, sustained):
    """Gradual vanishing/explosion: the first weighted layer against the last hidden one (the output
    layer is left out: its per-element gradient, (softmax - onehot) / N over a handful of classes, is
    large by construction)."""
    finite = [r for r in _weighted_with_grad(records)[:-1] if math.isfinite(r["grad_rms"]) and r["grad_rms"] > 0]
    if len(finite) < 2:
        return
    first, last = finite[0], finite[-1]
    g0, g1 = first["grad_rms"], last["grad_rms"]
    pairs = list(zip(finite, finite[1:]))
    if g0 < g1 / h.total_factor and sustained(("vanish-total", first["layer"])):
        a, b = max(pairs, key=lambda p: p[1]["grad_rms"] / p[0]["grad_rms"])
        h._fire(out, ("grad", first["layer"]), (
            f"step {step}: the gradient vanishes on its way back through the network: {g1:.2g} per "
            f"element at layer '{last['layer']}' but {g0:.2g} at layer '{first['layer']}' "
            f"({g1 / g0:.0f}x smaller; the steepest drop is from '{b['layer']}' to '{a['layer']}'), "
            f"so the first layers barely learn. " + _causes("init", "input")))
    elif g0 > g1 * h.total_factor and sustained(("explode-total", first["layer"])):
        a, b = max(pairs, key=lambda p: p[0]["grad_rms"] / p[1]["grad_rms"])
        h._fire(out, ("grad", first["layer"]), (
            f"step {step}: the gradient grows on its way back through the network: {g1:.2g} per "
            f"element at layer '{last['layer']}' but {g0:.2g} at layer '{first['layer']}' "
            f"({g0 / g1:.0f}x larger; the steepest rise is from '{b['layer']}' to '{a['layer']}'). "
            + _causes("init", "lr", "input")))


RULES = [dead_units, zero_weights, update_ratio, nonfinite_gradient, layer_to_layer_gradient, whole_stack_gradient]

def check(health: HealthCheck, step: int, loss: float, monitor=None) -> list:
    """Function form of HealthCheck.check, for a trainer that keeps the objects apart."""
    return health.check(step, loss, monitor)
