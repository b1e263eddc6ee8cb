"""Argument checks shared by minidl's functions and layers, so the same bad input gets the same error.

Each check takes ``where`` (the function or layer, e.g. "conv2d" or "Conv2d(3, 4, kernel_size=(3, 3))"),
the argument's name and its value, and returns the value normalised (an int, a float, a pair). A value of
the wrong type raises TypeError, a value of the right type but out of range raises ValueError; both
messages name ``where``, the argument and the value. bool is rejected where a number is expected
(True is an int to Python, but ``stride=True`` is a bug).
"""
from __future__ import annotations

import numbers


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(where: str, name: str, value, minimum: int | None = None) -> int:
    """An int, >= minimum when one is given."""
    if not _is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def positive_int(where: str, name: str, value) -> int:
    """An int >= 1 (sizes, channel counts, groups)."""
    if not _is_int(value):
        raise TypeError(f"{where}: {name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{where}: {name} must be a positive int (>= 1), got {value!r}")
    return int(value)


def int_pair(where: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (PyTorch's kernel_size/stride/padding), each >= minimum, as an (h, w) tuple."""
    pair = (value, value) if _is_int(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(_is_int(v) for v in pair):
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {tuple(pair)}")
    return int(pair[0]), int(pair[1])


def number(where: str, name: str, value) -> float:
    """Any real number (an int or a float), as a float."""
    if not _is_real(value):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    return float(value)


def non_negative_float(where: str, name: str, value) -> float:
    """A real number >= 0, as a float."""
    value = number(where, name, value)
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{where}: {name} must be >= 0, got {value!r}")
    return value


def probability(where: str, name: str, value) -> float:
    """A real number in [0, 1], as a float."""
    value = number(where, name, value)
    if not 0 <= value <= 1:  # also rejects NaN
        raise ValueError(f"{where}: {name} must be a probability in [0, 1], got {value!r}")
    return value


def one_of(where: str, name: str, value, choices: tuple):
    """One of a few allowed values (a mode, a reduction)."""
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
