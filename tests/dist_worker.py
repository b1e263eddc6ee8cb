"""Run by tests/test_distributed.py under ``mpiexec -n 2``: one scenario per call, each rank's result as
JSON in $DIST_RESULTS/rank<r>.json.

    mpiexec -n 2 python tests/dist_worker.py exact float64
    mpiexec -n 2 python tests/dist_worker.py collectives
    mpiexec -n 2 python tests/dist_worker.py hang          # rank 1 stops answering: rank 0 must abort
"""
import json
import os
import signal
import sys
import time

import numpy as np

import minidl as md
import minidl.distributed as dist
import minidl.functional as F
from minidl import nn, optim
from minidl.data import DataLoader, DistributedSampler
from alexnet import workers


class Tiny:
    """A dataset of N random 1x8x8 uint8 images with labels in 0..3."""

    def __init__(self, n=24):
        rng = np.random.default_rng(123)
        self.images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
        self.targets = rng.integers(0, 4, size=n).astype(np.int64)

    def __len__(self):
        return len(self.images)


def build(dtype):
    """conv (groups 2) -> ReLU -> LRN -> max-pool -> linear: the paper's ingredients, no dropout."""
    md.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=2),
                          nn.ReLU(), nn.LocalResponseNorm(3), nn.MaxPool2d(3, 2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 16), nn.ReLU(), nn.Linear(16, 4))
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    return model


def train(model, loader, dtype, epochs=2):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for e in range(epochs):
        for x, y in loader.epoch(e):
            loss = F.cross_entropy(model(md.tensor(x.astype(dtype))), y)
            opt.zero_grad()
            loss.backward()
            opt.step()


def exact(dtype_name):
    """2 ranks with local batch B against one process with batch 2B: the same final weights."""
    dtype = np.dtype(dtype_name)
    rank, world = dist.get_rank(), dist.get_world_size()
    data, local_batch = Tiny(), 3
    ddp = nn.parallel.DistributedDataParallel(build(dtype), bucket_cap_mb=0.0005)   # several buckets
    md.manual_seed(7)
    sampler = DistributedSampler(data, shuffle=True, seed=7)
    train(ddp, DataLoader(data, batch_size=local_batch, sampler=sampler, prefetch=0), dtype)
    result = {"buckets": len(ddp._buckets)}
    if rank == 0:
        single = build(dtype)
        md.manual_seed(7)
        train(single, DataLoader(data, batch_size=local_batch * world, shuffle=True, prefetch=0), dtype)
        errors = [float(np.abs(a.numpy() - b.numpy()).max() / np.abs(b.numpy()).max())
                  for a, b in zip(ddp.module.parameters(), single.parameters())]
        moved = [float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(single.parameters(), build(dtype).parameters())]
        result.update(max_rel_error=max(errors), min_weight_change=min(moved))
    # every rank's weights equal rank 0's, bit for bit
    flat = np.concatenate([p.numpy().ravel().astype(np.float64) for p in ddp.module.parameters()])
    other = flat.copy()
    dist.broadcast(other, src=0)
    result["same_as_rank0"] = bool((flat == other).all())
    return result


def collectives():
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {}
    for op in ("sum", "avg", "max", "min", "product"):
        t = md.tensor(np.array([rank + 1.0, -2.0 * rank], dtype=np.float64))
        dist.all_reduce(t, op=op)
        out[op] = t.numpy().tolist()
    t = md.tensor(np.arange(4, dtype=np.float32) + 10 * rank)
    work = dist.broadcast(t, src=1, async_op=True)
    work.wait()
    out["broadcast_from_1"] = t.numpy().tolist()
    base = np.full((3, 4), rank + 1.0)
    dist.all_reduce(base[:, ::2])          # a non-contiguous view: reduced through a copy, written back
    out["strided"] = base.tolist()
    # wrap-time broadcast: rank 1 starts from different weights, ends with rank 0's
    md.manual_seed(rank)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    model[1].running_mean[...] = rank
    ddp = nn.parallel.DistributedDataParallel(model)
    w = model[0].weight.numpy()
    w0 = w.copy()
    dist.broadcast(w0, src=0)
    out["weights_equal_after_wrap"] = bool((w == w0).all())
    out["buffer_after_wrap"] = float(model[1].running_mean[0])
    out["state_dict_keys"] = list(ddp.state_dict())[:2]
    # no_sync accumulates locally; the next synced backward reduces the accumulated sum
    x = md.tensor(np.full((4, 3), rank + 1.0, dtype=np.float32))
    with ddp.no_sync():
        ddp(x).sum().backward()
    local = model[0].bias.grad.numpy().copy()
    ddp(x).sum().backward()
    synced = model[0].bias.grad.numpy()
    both = np.stack([local * 2])
    dist.all_reduce(both, op="avg")
    out["no_sync_then_sync_ok"] = bool(np.allclose(synced, both[0], rtol=1e-6))
    # a parameter without a gradient: the next forward says which
    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.lonely = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)
    twin = Twin()
    lonely = twin.lonely
    ddp2 = nn.parallel.DistributedDataParallel(twin)
    ddp2(x).sum().backward()
    try:
        ddp2(x)
        out["unused_error"] = None
    except RuntimeError as exc:
        out["unused_error"] = str(exc)
    ddp3 = nn.parallel.DistributedDataParallel(twin, find_unused_parameters=True)
    ddp3(x).sum().backward()
    out["unused_found_grad_zero"] = bool((lonely.weight.grad.numpy() == 0).all())
    return out


def hang():
    """Rank 1 goes silent; rank 0's all_reduce must abort the job after the timeout."""
    if dist.get_rank() == 1:
        time.sleep(60)
    t = md.tensor(np.ones(3))
    dist.all_reduce(t)
    return {"returned": True}


def kill():
    """Rank 1 is killed (SIGKILL) before the all-reduce: the job must end, not hang."""
    if dist.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    t = md.tensor(np.ones(3))
    dist.all_reduce(t)
    return {"returned": True}


def config():
    """Rank 1 built a different configuration: both ranks stop, rank 1 naming the key."""
    cfg = {"model": "mini", "lr": 0.1 if dist.get_rank() == 0 else 0.2}
    try:
        workers.distribute(cfg, {}, dist.World())
        return {"error": None}
    except ValueError as exc:
        return {"error": str(exc)}


def main():
    scenario = sys.argv[1]
    dist.init_process_group(backend="mpi", timeout=float(sys.argv[2]) if len(sys.argv) > 2 and scenario != "exact" else 30)
    result = {"exact": lambda: exact(sys.argv[2]), "collectives": collectives, "hang": hang,
              "kill": kill, "config": config}[scenario]()
    result.update(rank=dist.get_rank(), world=dist.get_world_size())
    # one file per rank: mpiexec may interleave the ranks' stdout lines
    with open(os.path.join(os.environ["DIST_RESULTS"], f"rank{dist.get_rank()}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
