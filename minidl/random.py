"""Seeded randomness: one seed (``manual_seed``) drives every random stream in minidl.

- ``generator(name)``: a NumPy Generator per named stream ("init" for parameter
  initialisation, "data" for shuffling, "augment" for transforms), each derived
  from the seed and the stream's name, so adding draws to one stream does not
  shift the others.
- ``dropout_key()``: (seed, call counter) for the counter-based dropout kernel,
  which makes the same mask from the same key on CPU and GPU.

``get_rng_state``/``set_rng_state`` save and restore all of it as a JSON-able
dict (checkpoints use them for bit-identical resumption).
"""
from __future__ import annotations

import zlib

import numpy as np

_seed: int = 0
_generators: dict = {}
_dropout_calls: int = 0


def manual_seed(seed: int) -> None:
    """Seed parameter initialisation, dropout masks and data shuffling (as torch.manual_seed)."""
    global _seed, _dropout_calls
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _seed = int(seed) % 2**64
    _generators.clear()
    _dropout_calls = 0


def initial_seed() -> int:
    return _seed


def generator(stream: str) -> np.random.Generator:
    """The NumPy Generator of a named stream, created from the seed on first use."""
    gen = _generators.get(stream)
    if gen is None:
        sequence = np.random.SeedSequence(_seed, spawn_key=(zlib.crc32(stream.encode()),))
        gen = _generators[stream] = np.random.Generator(np.random.PCG64(sequence))
    return gen


def dropout_key() -> tuple[int, int]:
    """(seed, counter) for the next dropout mask; each call advances the counter."""
    global _dropout_calls
    key = (_seed, _dropout_calls)
    _dropout_calls += 1
    return key


def get_rng_state() -> dict:
    return {"seed": _seed, "dropout_calls": _dropout_calls,
            "streams": {name: gen.bit_generator.state for name, gen in _generators.items()}}


def set_rng_state(state: dict) -> None:
    global _seed, _dropout_calls
    _seed, _dropout_calls = int(state["seed"]), int(state["dropout_calls"])
    _generators.clear()
    for name, bit_state in state["streams"].items():
        generator(name).bit_generator.state = bit_state


manual_seed(0)
