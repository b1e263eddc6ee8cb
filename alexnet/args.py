"""Validators for the numbers the command line and a run's configuration accept.

Each validator is an argparse ``type=``: ``a("--epochs", type=POSITIVE_INT)`` refuses ``0``,
``-5``, ``1.5``, ``nan`` and ``inf`` where they are parsed, with a message naming the option
and the accepted range, so no command goes on to train zero steps, swap a value for its default
or fail deep inside.  ``check(value, name)`` applies the same rule to a value already parsed
(a configuration read back from a checkpoint), raising ValueError.  Every numeric option of every
``alexnet`` subcommand uses one of these (tests/test_cli_args.py walks all of them).
"""
from __future__ import annotations

import argparse
import math


class Number:
    """An int or a finite float in [low, high], either end optionally open (None: unbounded)."""

    def __init__(self, kind, low=None, high=None, *, low_open=False, high_open=False, what=None):
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.what = what or self._describe()
        self.__name__ = self.what      # argparse names the type in some of its messages

    def _describe(self) -> str:
        noun = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is not None:
            lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {lo}{self.low}, {self.high}{hi}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {self.high}"
        return noun

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    def check(self, value, name: str):
        """``value`` if it is accepted, else ValueError naming ``name``."""
        if not self.accepts(value):
            raise ValueError(f"{name} must be {self.what}, got {value!r}")
        return value

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {text!r}") from None
        if not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {text!r}")
        return value

    def __repr__(self):
        return self.what


POSITIVE_INT = Number(int, 1)
NONNEG_INT = Number(int, 0)
POSITIVE_FLOAT = Number(float, 0, low_open=True)
NONNEG_FLOAT = Number(float, 0)
PROBABILITY = Number(float, 0, 1, high_open=True)         # dropout: [0, 1)
MOMENTUM = Number(float, 0, 1, high_open=True)
FACTOR = Number(float, 0, 1, low_open=True, high_open=True)   # a reduction factor: (0, 1)
GAMMA = Number(float, 0, 1, low_open=True)                # StepLR's factor: (0, 1]
FRACTION = Number(float, 0, 1, high_open=True)            # warm-up fraction: [0, 1)
WIDTH = Number(float, 0, 64, low_open=True)               # width multiplier: (0, 64]
TIME_BUDGET = Number(float, 0, what="a finite number of seconds >= 0 (0: no budget)")
