"""Learning-rate schedules (torch.optim.lr_scheduler): StepLR, MultiStepLR, LambdaLR,
CosineAnnealingLR, OneCycleLR and ReduceLROnPlateau, with torch's formulas.

The paper divided the learning rate by 10 whenever the validation error stopped
improving: ReduceLROnPlateau(optimizer, mode="min", factor=0.1).

The annealing curves are plain functions (``cosine_annealing``, ``anneal_cos``,
``anneal_linear``, ``piecewise_anneal``) so that schedules driven by a fraction of
training rather than a step count (minidl.train's Schedule) share the same maths.
"""
from __future__ import annotations

import bisect
import math
import numbers
from collections import Counter


# ------------------------------------------------------------------ the curves
def anneal_cos(start: float, end: float, pct: float) -> float:
    """Half a cosine from start (pct 0) to end (pct 1)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def anneal_linear(start: float, end: float, pct: float) -> float:
    """A straight line from start (pct 0) to end (pct 1)."""
    return (end - start) * pct + start


def cosine_annealing(base: float, eta_min: float, t: float, t_max: float) -> float:
    """eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2 (SGDR's curve, without restarts)."""
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def piecewise_anneal(position: float, phases, anneal=anneal_cos) -> float:
    """The value at ``position`` of consecutive phases [(end_position, start_value, end_value), ...],
    the first starting at 0; positions past the last phase's end extrapolate it (as torch's OneCycleLR)."""
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        if position <= end or i == len(phases) - 1:
            return anneal(a, b, (position - start) / (end - start))
        start = end
    raise ValueError("piecewise_anneal: no phases")


# ------------------------------------------------------------ the scheduler base
class LRScheduler:
    """Base of the epoch/step-counting schedulers (torch.optim.lr_scheduler.LRScheduler).

    On construction each group's ``initial_lr`` is recorded (base_lrs) and the schedule's value
    at step 0 is applied; each ``step()`` advances ``last_epoch`` by one and sets every group's lr.
    Subclasses define ``get_lr()`` (the new lrs, from the groups' current ones where torch's
    formula is recursive) and may define ``_closed_form(epoch)`` for ``step(epoch)``.
    """

    def __init__(self, optimizer, last_epoch: int = -1):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: param 'initial_lr' is not specified in param_groups[{i}] "
                               f"when resuming (last_epoch={last_epoch})")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> list:
        raise NotImplementedError

    def step(self, epoch=None):
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:  # torch's deprecated form: jump to an epoch, through the closed form where there is one
            self.last_epoch = epoch
            values = self._closed_form(epoch) if hasattr(self, "_closed_form") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (and functions, which cannot be saved), as torch."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v) and k != "lr_lambdas"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class MultiStepLR(LRScheduler):
    """lr = initial_lr * gamma ** (number of milestones <= epoch)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        milestones = list(milestones)
        if not all(isinstance(m, numbers.Integral) and not isinstance(m, bool) for m in milestones):
            raise TypeError(f"MultiStepLR: milestones must be ints, got {milestones!r}")
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):  # torch's recursive form: multiply by gamma at each milestone (twice if listed twice)
        count = Counter(self.milestones)[self.last_epoch]
        return [g["lr"] * self.gamma ** count if count else g["lr"] for g in self.optimizer.param_groups]

    def _closed_form(self, epoch):
        return [base * self.gamma ** bisect.bisect_right(self.milestones, epoch) for base in self.base_lrs]


class LambdaLR(LRScheduler):
    """lr = initial_lr * lr_lambda(epoch); lr_lambda a function or one per parameter group."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        n = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(lambdas) != n or not all(callable(f) for f in lambdas):
            raise ValueError(f"LambdaLR: expected one function or {n} functions (one per parameter group), "
                             f"got {lr_lambda!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2, stepped recursively from
    the current lr as torch does (so an lr changed by hand is followed); past T_max it rises again."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):  # noqa: N803
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Real) or not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be > 0, got {T_max!r}")
        self.T_max, self.eta_min = T_max, float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, t_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if t == 0:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and t > 0:  # resumed with last_epoch given
            return [cosine_annealing(base, eta_min, t, t_max) for base in self.base_lrs]
        if (t - 1 - t_max) % (2 * t_max) == 0:  # at the bottom the ratio below would divide by zero
            return [g["lr"] + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                    for base, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
                * (g["lr"] - eta_min) + eta_min for g in groups]

    def _closed_form(self, epoch):
        return [cosine_annealing(base, self.eta_min, epoch, self.T_max) for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2018), step by step over ``total_steps`` (torch's formulas):

    lr rises from max_lr / div_factor to max_lr over the first pct_start * total_steps - 1 steps,
    then falls to max_lr / (div_factor * final_div_factor) at step total_steps - 1 (three_phase:
    back down to the start first, then to the minimum).  With cycle_momentum (the default) the
    momentum (SGD) or beta1 (Adam) moves the other way, between max_momentum and base_momentum.
    Call step() after every batch; stepping more than total_steps times raises.
    """

    def __init__(self, optimizer, max_lr, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1):
        def positive_int(name, v):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"OneCycleLR: expected a positive integer {name}, got {v!r}")
            return int(v)

        if total_steps is not None:
            self.total_steps = positive_int("total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = positive_int("epochs", epochs) * positive_int("steps_per_epoch", steps_per_epoch)
        else:
            raise ValueError("OneCycleLR: give either total_steps or both epochs and steps_per_epoch")
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be a number in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        up = float(pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        # (end step, lr key at the start, lr key at the end, momentum key at the start, at the end)
        self.phases = ([(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                        (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr", "base_momentum",
                         "max_momentum"),
                        (last, "initial_lr", "min_lr", "max_momentum", "max_momentum")] if three_phase else
                       [(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                        (last, "max_lr", "min_lr", "base_momentum", "max_momentum")])
        groups = optimizer.param_groups
        max_lrs = _per_group("max_lr", max_lr, groups)
        if last_epoch == -1:
            for group, top in zip(groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"OneCycleLR: cycle_momentum=True needs an optimizer with momentum or betas; "
                                 f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)")
            self.use_beta1 = "betas" in optimizer.defaults
            tops, bases = _per_group("max_momentum", max_momentum, groups), _per_group("base_momentum",
                                                                                      base_momentum, groups)
            if last_epoch == -1:
                for group, top, base in zip(groups, tops, bases):
                    self._set_momentum(group, top)
                    group["max_momentum"], group["base_momentum"] = top, base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; total_steps is {self.total_steps}")
        anneal = anneal_cos if self.anneal_strategy == "cos" else anneal_linear
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(piecewise_anneal(step, [(end, group[a], group[b]) for end, a, b, _, _ in self.phases], anneal))
            if self.cycle_momentum:
                self._set_momentum(group, piecewise_anneal(
                    step, [(end, group[a], group[b]) for end, _, _, a, b in self.phases], anneal))
        return lrs


def _per_group(name, value, groups):
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(f"OneCycleLR: expected {len(groups)} values for {name} (one per group), got {len(value)}")
        return [float(v) for v in value]
    return [float(value)] * len(groups)


class StepLR:
    """lr = initial_lr * gamma ** (epoch // step_size); call step() once per epoch."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1
        factor = self.gamma ** (self.last_epoch // self.step_size)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_epoch, self.base_lrs = int(state["last_epoch"]), [float(x) for x in state["base_lrs"]]


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` after ``patience`` epochs without improvement of the metric."""

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8):
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min'/'max' and threshold_mode 'rel'/'abs', "
                             f"got {mode!r}, {threshold_mode!r}")
        if not 0 <= factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in [0, 1), got {factor}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown = threshold, threshold_mode, cooldown
        self.min_lr, self.eps = min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.last_epoch = 0

    def _better(self, value):
        if self.mode == "min":
            edge = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < edge
        edge = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > edge

    def step(self, metric: float):
        metric = float(metric)
        self.last_epoch += 1
        if self._better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group in self.optimizer.param_groups:
                new = max(group["lr"] * self.factor, self.min_lr)
                if group["lr"] - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {k: getattr(self, k) for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")}

    def load_state_dict(self, state):
        for k, v in state.items():
            setattr(self, k, v)
