"""Run by tests/test_split.py under ``mpiexec -n 2``: the paper's two halves on two ranks against the same
network in one process (alexnet.split.twin), float64. Each rank writes its findings as JSON to
$SPLIT_RESULTS/rank<r>.json.

    mpiexec -n 2 python tests/split_worker.py
    mpiexec -n 2 python tests/split_worker.py kill     # rank 1 is killed between two forwards
"""
import json
import os
import signal
import sys

import numpy as np

import minidl as md
import minidl.distributed as dist
import minidl.functional as F
from minidl import optim
from minidl.nn import model_parallel
from alexnet import split

OPTIONS = dict(width=1 / 16, input_size=99, dropout=0.0)   # 2x2 maps before fc6: the flatten order matters
BATCH, CLASSES = 3, 10


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-300))


def twin64():
    md.manual_seed(11)                  # the same seed on both ranks: the same whole model
    model = split.twin(CLASSES, **OPTIONS)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def gradcheck_all_gather(grad, eps=1e-6):
    """A two-rank gradcheck: L = sum over ranks of sum(w_r * all_gather(x_r)) ("sum": every rank's next step differs)
    or L = sum(w * all_gather(x_r)) with the same w everywhere ("slice": the same computation on both ranks).
    Central differences perturb one entry of one rank's x at a time, both ranks stepping together."""
    rank = dist.get_rank()
    rng = np.random.default_rng(100 + (rank if grad == "sum" else 0))
    w = rng.standard_normal((2, 6, 3)) + 1.0
    x = md.tensor(np.random.default_rng(rank).standard_normal((2, 3, 3)), requires_grad=True)

    def loss(xv):
        with md.no_grad():
            value = np.array([float((model_parallel.all_gather(md.tensor(xv), dim=1, grad=grad) * md.tensor(w)).sum())])
        if grad == "sum":
            dist.all_reduce(value)
        return value[0]
    (model_parallel.all_gather(x, dim=1, grad=grad) * md.tensor(w)).sum().backward()
    analytic = x.grad.numpy()
    worst = 0.0
    for owner in range(2):
        for i in range(x.numel()):
            xv = x.numpy().copy()
            step = np.zeros(xv.size)
            step[i] = eps if owner == rank else 0.0
            plus, minus = loss(xv + step.reshape(xv.shape)), loss(xv - step.reshape(xv.shape))
            if owner == rank:
                numeric = (plus - minus) / (2 * eps)
                worst = max(worst, abs(numeric - analytic.ravel()[i]) / max(abs(numeric), 1e-8))
    return worst


def collectives():
    """dist.all_gather_into_tensor and dist.reduce_scatter_tensor on small arrays, and a shape error."""
    rank = dist.get_rank()
    out = np.empty((4, 2))
    dist.all_gather_into_tensor(out, np.full((2, 2), rank + 1.0))
    scattered = np.empty(3)
    dist.reduce_scatter_tensor(scattered, np.arange(6.0) * (rank + 1))   # rows [3r, 3r+3) summed: 3x
    try:
        dist.all_gather_into_tensor(np.empty((3, 2)), np.ones((2, 2)))
        error = None
    except ValueError as exc:
        error = str(exc)
    try:    # rank 1's piece is larger: both ranks raise, naming every rank's shape, instead of mixing data
        model_parallel.all_gather(md.tensor(np.ones((2, 3 + rank))), name="mismatch")
        mismatch = None
    except ValueError as exc:
        mismatch = str(exc)
    return {"gathered": out.tolist(), "scattered": scattered.tolist(), "shape_error": error, "mismatch": mismatch}


def main():
    dist.init_process_group(backend="mpi", timeout=60)
    rank = dist.get_rank()
    rng = np.random.default_rng(5)      # the SAME batch on both ranks
    x = md.tensor(rng.standard_normal((BATCH, 3, 99, 99)) * 50)
    y = md.tensor(rng.integers(0, CLASSES, size=BATCH))

    full, half = twin64(), None
    half = split.Half(full, rank)
    out = {"rank": rank, "gradcheck_sum": gradcheck_all_gather("sum"), "gradcheck_slice": gradcheck_all_gather("slice"),
           **collectives()}

    # one forward and backward: logits and every gradient
    model_parallel.reset_bytes_sent()
    logits = half(x)
    F.cross_entropy(logits, y).backward()
    ref = full(x)
    F.cross_entropy(ref, y).backward()
    out["logits_rel_error"] = rel(logits.numpy(), ref.numpy())
    grads = {name: p.grad.numpy() for name, p in full.named_parameters()}
    mine = split.split_state_dict(grads, rank, half)
    out["grad_rel_error"] = max(rel(p.grad.numpy(), mine[name]) for name, p in half.named_parameters())
    out["grad_names"] = len(mine)
    out["bytes_sent"] = model_parallel.bytes_sent()
    out["sizes"] = split.exchange_sizes(CLASSES, **OPTIONS)

    # two SGD steps, each rank on its own half: the gathered whole equals the one-process model's
    for model in (half, full):
        model.zero_grad()
    opt_half = optim.SGD(half.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt_full = optim.SGD(full.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    start = {k: np.asarray(v).copy() for k, v in full.state_dict().items()}
    for model, opt in ((half, opt_half), (full, opt_full)):
        for _ in range(2):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    whole = split.gather_state_dict(half)
    after = full.state_dict()
    out["keys_match"] = sorted(whole) == sorted(after)
    out["weights_rel_error"] = max(rel(whole[k], after[k]) for k in after)
    out["max_weight_change"] = max(float(np.abs(np.asarray(after[k]) - start[k]).max()) for k in after)
    with open(os.path.join(os.environ["SPLIT_RESULTS"], f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    dist.destroy_process_group()


def kill():
    """Rank 1 is killed (SIGKILL) after one forward together: rank 0's next forward waits in the conv3-input
    gather for a rank that is gone, and the job must end (mpiexec stops it, or the 20 s timeout aborts it)."""
    dist.init_process_group(backend="mpi", timeout=20)
    rank = dist.get_rank()
    half = split.Half(split.twin(CLASSES, **OPTIONS), rank)
    x = md.tensor(np.random.default_rng(5).standard_normal((BATCH, 3, 99, 99)).astype(np.float32))
    half(x)
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    half(x)
    with open(os.path.join(os.environ["SPLIT_RESULTS"], f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "returned": True}, f)


if __name__ == "__main__":
    kill() if sys.argv[1:] == ["kill"] else main()
