"""``alexnet train --workers N``: data-parallel training over MPI; ``--split paper``: the paper's
model parallelism on 2 ranks (docs/distributed.md).

``start(workers, split)`` decides where this process stands: a plain run (a world of one), the parent
that re-launches itself as ``mpiexec -n N python -m alexnet ...`` (it returns mpiexec's exit
status), or one rank of such a launch (it joins the process group; ranks other than 0 print
nothing). ``distribute(cfg, parts, world)`` then turns one rank's single-process run into its
share of the distributed one:

- every rank must have built the same configuration: rank 0 sends its own, and a rank whose
  configuration differs stops with an error naming the keys (all ranks stop);
- ``--batch-size`` stays the global batch: each rank takes batch/N of it, from a
  DistributedSampler over the same per-epoch permutation as a single process's, so the union of
  the ranks' batch b is the single-process batch b (and the step count, schedule and checkpoints'
  positions are the same, which lets a run resume on another number of ranks);
- the test set is split in disjoint shards (ShardSampler) and the counts summed;
- the model is wrapped in DistributedDataParallel (rank 0's initial weights copied to all).

Under ``--split paper`` (a SplitWorld) the loaders stay as they are (both ranks read the same
batches), and each rank trains its alexnet.split.Half of the twin, with its own optimizer.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import minidl.distributed as dist
from minidl import nn
from minidl.data import DataLoader, DistributedSampler, ShardSampler

from . import runs, split as model_split

Unavailable = dist.DistributedUnavailable


def find_mpiexec() -> str | None:
    """mpiexec next to this Python (the mpich wheel installs it there), else the one on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.path.exists(local) else shutil.which("mpiexec")


def start(workers, split=None):
    """A minidl.distributed.World to train in (a SplitWorld for ``split``), or the exit status of the
    mpiexec this call ran."""
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"train: --workers must be a positive integer, got {workers}")
    if split is not None and workers is not None:
        raise ValueError(f"train: --split {split} runs on {model_split.WORLD} ranks of its own and --workers {workers} "
                         "is data parallelism; give one of them")
    launched = dist.launcher_world_size()
    if launched == 1:
        if split is not None:
            return relaunch(model_split.WORLD, f"--split {split}")
        if workers in (None, 1):
            return dist.World()
        return relaunch(workers)
    if split is not None and launched != model_split.WORLD:
        raise ValueError(f"train: --split {split} runs on exactly {model_split.WORLD} ranks (the paper's two GPUs), "
                         f"but mpiexec started {launched}; use mpiexec -n {model_split.WORLD}, or no mpiexec at all")
    if workers is not None and workers != launched:
        raise ValueError(f"train: --workers {workers}, but mpiexec started {launched} processes; "
                         "drop --workers or make the two agree")
    dist.init_process_group(backend="mpi")
    world = model_split.SplitWorld() if split is not None else dist.World()
    if not world.main:     # one report, from rank 0; errors still reach stderr from every rank
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    return world


def relaunch(n: int, what: str | None = None) -> int:
    """Run this same command line as ``mpiexec -n n``; returns its exit status. ``what``: the option that
    asked for it, for the messages (default ``--workers n``)."""
    what = what or f"--workers {n}"
    if not dist.is_available():
        raise Unavailable(f"train {what}: needs mpi4py and an MPI library; install them with "
                          f"{dist.INSTALL_HINT}")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise Unavailable(f"train {what}: no mpiexec found next to {sys.executable} or on PATH; install "
                          f"one with {dist.INSTALL_HINT}")
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // n))   # share the cores: N ranks x (cores / N) threads
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, threads)
    command = [mpiexec, "-n", str(n), sys.executable, "-m", "alexnet", *sys.argv[1:]]
    print(f"launching {n} ranks: {' '.join(command)}", flush=True)
    process = subprocess.Popen(command, env=env)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:   # Ctrl-C reached the ranks too: let them stop at a step and save
            continue


def distribute(cfg: dict, parts: dict, world) -> None:
    """Make ``parts`` (from train.setup) this rank's share of a run over ``world``; nothing for a world of one."""
    if world.size == 1:
        return
    _check_same_config(cfg, world)
    if not world.shards_data:   # --split: the same batches on both ranks, each its half of the model
        half = model_split.Half(parts["model"], world.rank)
        parts["model"], parts["optimizer"] = half, runs.make_optimizer(cfg, half.parameters())
        parts["schedule"] = runs.make_schedule(cfg, parts["optimizer"], len(parts["train_loader"]))
        print(f"model-parallel on {world.size} ranks (the paper's split): each rank holds "
              f"{sum(p.numel() for p in half.parameters()):,} parameters and reads every batch", flush=True)
        return
    batch, n = cfg["batch_size"], world.size
    if batch % n:
        raise ValueError(f"train: --batch-size {batch} is the global batch; it must be a multiple of --workers {n}")
    train, test = parts["train_loader"], parts["test_loader"]
    sampler = DistributedSampler(train.dataset, n, world.rank, shuffle=True, seed=cfg["seed"])
    parts["train_loader"] = DataLoader(train.dataset, batch_size=batch // n, transform=train.transform,
                                       prefetch=train.prefetch, sampler=sampler)
    if len(parts["train_loader"]) != len(train):   # the schedule was made for len(train) steps per epoch
        raise RuntimeError(f"train: {len(parts['train_loader'])} steps per epoch on each rank, {len(train)} in one "
                           "process; the schedule would not fit")
    parts["test_loader"] = DataLoader(test.dataset, batch_size=test.batch_size, transform=test.transform,
                                      prefetch=test.prefetch, sampler=ShardSampler(test.dataset, n, world.rank))
    parts["parallel_model"] = nn.parallel.DistributedDataParallel(parts["model"])   # what the Trainer trains
    parts["meta"]["world_size"] = n
    print(f"data-parallel on {n} ranks: batch {batch} = {n} x {batch // n} per rank", flush=True)


def _check_same_config(cfg: dict, world) -> None:
    """Every rank must have built rank 0's configuration; else all ranks stop, naming the keys."""
    mine = json.loads(json.dumps(cfg))
    rank0 = dist.broadcast_object(mine, src=0)
    differ = sorted(k for k in set(mine) | set(rank0) if mine.get(k) != rank0.get(k))
    anyone = world.max([1 if differ else 0], "the configuration check")[0]
    if differ:
        raise ValueError(f"train: rank {world.rank}'s configuration differs from rank 0's in "
                         + ", ".join(f"{k} ({mine.get(k)!r} here, {rank0.get(k)!r} on rank 0)" for k in differ))
    if anyone:
        raise ValueError("train: another rank's configuration differs from rank 0's (its message names the keys)")
