"""Samplers that split a dataset between the ranks of a distributed run (as torch.utils.data's).

``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False)``:
rank r of R serves every R-th index of the epoch's order, starting at r. The order of epoch e is
``np.random.default_rng([seed, 0, e]).permutation(n)`` -- the DataLoader's own formula, so with one
replica the sampler serves exactly what ``DataLoader(shuffle=True)`` would for the same seed, and
the union of batch b over all ranks is batch b of a single process with R times the batch size.
As torch's, the order is padded by repeating its start up to a multiple of R (``drop_last=False``)
or cut to one (``drop_last=True``), so every rank runs the same number of steps (a rank with one
step fewer would wait forever in the others' all-reduce). Call ``set_epoch(e)`` before each epoch.

``ShardSampler(dataset, num_replicas=None, rank=None)``: every index exactly once, rank r taking
r, r+R, ...; shares may differ by one. For evaluation, where no collective runs per batch and
padding would count some images twice.
"""
from __future__ import annotations

import math

import numpy as np

from .. import distributed as dist

__all__ = ["DistributedSampler", "ShardSampler"]


def _replicas_and_rank(who, num_replicas, rank):
    if num_replicas is None or rank is None:
        if not dist.is_initialized():
            raise RuntimeError(f"{who}: num_replicas and rank default to the process group's, which is not "
                               "initialised; call minidl.distributed.init_process_group() or pass both")
        num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
        rank = dist.get_rank() if rank is None else rank
    for name, value in (("num_replicas", num_replicas), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{who}: {name} must be an integer, got {value!r}")
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"{who}: need num_replicas >= 1 and 0 <= rank < num_replicas, got num_replicas="
                         f"{num_replicas}, rank={rank}")
    return int(num_replicas), int(rank)


class DistributedSampler:
    """This rank's share of each epoch's order, padded so that all ranks have the same length."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        self.num_replicas, self.rank = _replicas_and_rank("DistributedSampler", num_replicas, rank)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be a non-negative integer, got {seed!r}")
        self.dataset, self.shuffle, self.seed, self.drop_last = dataset, bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        if self.num_samples == 0:
            raise ValueError(f"DistributedSampler: a dataset of {n} samples gives nothing to each of "
                             f"{self.num_replicas} replicas with drop_last=True")

    def set_epoch(self, epoch: int) -> None:
        """Shuffle differently in each epoch (the same way on every rank)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch (int64)."""
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, 0, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        if self.total_size > n:     # pad with the order's start, repeated if the padding is longer than n
            order = np.concatenate([order, np.resize(order, self.total_size - n)])
        order = order[:self.total_size]
        return order[self.rank::self.num_replicas].astype(np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(rank {self.rank} of {self.num_replicas}, {self.num_samples} of "
                f"{len(self.dataset)} samples, shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")


class ShardSampler:
    """Indices rank, rank + R, rank + 2R, ... in order: each index on exactly one rank, no padding."""

    def __init__(self, dataset, num_replicas=None, rank=None):
        self.num_replicas, self.rank = _replicas_and_rank("ShardSampler", num_replicas, rank)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:   # the shards do not depend on the epoch
        pass

    def indices(self) -> np.ndarray:
        return np.arange(self.rank, len(self.dataset), self.num_replicas, dtype=np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))
