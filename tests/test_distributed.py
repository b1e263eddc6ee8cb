"""minidl.distributed, DistributedDataParallel and DistributedSampler.

The sampler, the engine hook and the error paths run in this process. Everything that needs two
processes runs tests/dist_worker.py under ``mpiexec -n 2`` (one thread per rank), skipped with the
reason when mpi4py or mpiexec is missing (install them with ``pip install -e '.[dist]'``).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import minidl as md
import minidl.distributed as dist
from minidl import nn
from minidl.data import DataLoader, DistributedSampler, ShardSampler
from alexnet.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("dist_worker.py")


def mpiexec():
    """Path of mpiexec (next to this Python first: the mpich wheel installs it there), or None."""
    local = Path(sys.executable).with_name("mpiexec")
    return str(local) if local.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(not dist.is_available() or mpiexec() is None,
                               reason="needs mpi4py and mpiexec: pip install -e '.[dist]'")


def run_ranks(*args, n=2, timeout=120, expect_ok=True):
    """Run the worker under mpiexec -n; returns (completed process, [rank 0's result, rank 1's, ...])."""
    with tempfile.TemporaryDirectory() as results_dir:
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", DIST_RESULTS=results_dir)
        proc = subprocess.run([mpiexec(), "-n", str(n), sys.executable, str(WORKER), *args], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=ROOT)
        if expect_ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        results = [json.loads(path.read_text()) for path in sorted(Path(results_dir).glob("rank*.json"))]
    return proc, sorted(results, key=lambda r: r["rank"])


# ------------------------------------------------------------------------------- in one process
class Items:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (2, 5, False), (12, 4, False)])
def test_sampler_matches_torch_without_shuffle(n, replicas, drop_last):
    torch_data = pytest.importorskip("torch.utils.data")
    for rank in range(replicas):
        ours = list(DistributedSampler(Items(n), replicas, rank, shuffle=False, drop_last=drop_last))
        theirs = list(torch_data.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last))
        assert ours == theirs


def test_sampler_shards_the_loader_order():
    n, replicas, seed = 11, 3, 5
    md.manual_seed(seed)
    order = DataLoader(Items(n), shuffle=True).order(2)      # the single-process order of epoch 2
    shares = []
    for rank in range(replicas):
        s = DistributedSampler(Items(n), replicas, rank, seed=seed)
        s.set_epoch(2)
        shares.append(s.indices())
    assert {len(s) for s in shares} == {4}                   # padded: every rank the same length
    padded = np.concatenate([order, order[:1]])
    for rank in range(replicas):
        np.testing.assert_array_equal(shares[rank], padded[rank::replicas])
    one = DistributedSampler(Items(n), 1, 0, seed=seed)
    one.set_epoch(2)
    np.testing.assert_array_equal(one.indices(), order)
    again = DistributedSampler(Items(n), replicas, 0, seed=seed)
    again.set_epoch(3)
    assert not np.array_equal(again.indices(), shares[0])    # another epoch, another order


def test_loader_with_sampler_batches_the_share():
    data = type("D", (), {"images": np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1),
                          "targets": np.arange(10), "__len__": lambda self: 10})()
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, 2, 1, shuffle=False), prefetch=0)
    assert len(loader) == 3
    assert [y.tolist() for _, y in loader.epoch(0)] == [[1, 3], [5, 7], [9]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(data, shuffle=True, sampler=ShardSampler(data, 2, 0))


def test_shard_sampler_covers_each_index_once():
    shares = [list(ShardSampler(Items(7), 3, r)) for r in range(3)]
    assert sorted(sum(shares, [])) == list(range(7)) and [len(s) for s in shares] == [3, 2, 2]


def test_sampler_bad_arguments():
    with pytest.raises(RuntimeError, match="not initialised"):
        DistributedSampler(Items(4))
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(Items(4), num_replicas=2, rank=2)
    with pytest.raises(TypeError, match="num_replicas"):
        DistributedSampler(Items(4), num_replicas=2.0, rank=0)


def test_post_accumulate_hook_sees_the_final_grad():
    w = md.tensor(np.array([1.0, 2.0]), requires_grad=True)
    w.grad = md.tensor(np.array([10.0, 10.0]))               # an earlier backward's gradient
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    ((w * w).sum() + (w * 3).sum()).backward()                # w used twice: d = 2w + 3
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [15.0, 17.0])      # 10 + (2w + 3)
    handle.remove()
    (w * w).sum().backward()
    assert len(seen) == 1
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)


def test_missing_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)          # as if it were not installed
    with pytest.raises(dist.DistributedUnavailable, match=r"pip install -e '\.\[dist\]'"):
        dist.init_process_group(backend="mpi")
    assert not dist.is_initialized()


def test_uninitialised_errors_and_world_of_one():
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="init_process_group"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="backend"):
        dist.init_process_group(backend="gloo")
    world = dist.World()
    assert (world.rank, world.size, world.main) == (0, 1, True)
    np.testing.assert_array_equal(world.sum([1.5, 2.0]), [1.5, 2.0])
    state = md.get_rng_state()
    assert world.rank_rng_state(state) == state


# ------------------------------------------------------------------------------- two processes
@needs_mpi
def test_collectives_on_two_ranks():
    _, results = run_ranks("collectives")
    assert len(results) == 2
    for r in results:
        assert r["sum"] == [3.0, -2.0] and r["avg"] == [1.5, -1.0] and r["max"] == [2.0, 0.0]
        assert r["min"] == [1.0, -2.0] and r["product"] == [2.0, 0.0]
        assert r["broadcast_from_1"] == [10.0, 11.0, 12.0, 13.0]
        assert r["strided"] == [[3.0, r["rank"] + 1.0] * 2] * 3
        assert r["weights_equal_after_wrap"] and r["buffer_after_wrap"] == 0.0
        assert r["state_dict_keys"] == ["module.0.weight", "module.0.bias"]
        assert r["no_sync_then_sync_ok"]
        assert "lonely.weight" in r["unused_error"] and "lonely.bias" in r["unused_error"]
        assert r["unused_found_grad_zero"]


@needs_mpi
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 1e-5)])
def test_two_ranks_equal_one_process_with_twice_the_batch(dtype, tolerance):
    # float32 measured: 1.4e-7 relative (summation order of the two half-batch means)
    _, results = run_ranks("exact", dtype)
    assert len(results) == 2 and results[0]["buckets"] > 1
    assert results[0]["min_weight_change"] > 1e-3              # the weights did move
    assert results[0]["max_rel_error"] < tolerance
    assert all(r["same_as_rank0"] for r in results)


@needs_mpi
def test_a_silent_rank_aborts_the_job_after_the_timeout():
    proc, results = run_ranks("hang", "2", timeout=50, expect_ok=False)
    assert proc.returncode != 0 and not results
    assert "all_reduce did not complete within 2 s" in proc.stderr


@needs_mpi
def test_a_killed_rank_ends_the_job():
    # mpiexec stops the others as soon as one rank dies; the 20 s timeout is the fallback
    proc, results = run_ranks("kill", "20", timeout=60, expect_ok=False)
    assert proc.returncode != 0 and not any(r.get("returned") for r in results)
    assert "signal 9" in proc.stdout + proc.stderr or "did not complete" in proc.stderr


@needs_mpi
def test_a_rank_with_another_configuration_stops_all_naming_the_key():
    _, results = run_ranks("config")
    assert "rank 1's configuration differs from rank 0's in lr (0.2 here, 0.1 on rank 0)" in results[1]["error"]
    assert "another rank's configuration differs" in results[0]["error"]


# ------------------------------------------------------------------------------ the command line
FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason=f"the real Fashion-MNIST is not in {FASHION}")
RUN = ["--limit-train", "192", "--limit-test", "64", "--width", "0.25", "--batch-size", "32", "--dropout", "0",
       "--no-augment", "--no-progress", "--time-budget", "0", "--optimizer", "sgd", "--lr", "0.05"]


def alexnet_cli(*argv, threads="1"):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_THREAD_TIMEOUT="1", OMP_NUM_THREADS=threads,
               NUMBA_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    return subprocess.run([sys.executable, "-m", "alexnet", *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=400, env=env)


def weights(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k.startswith("model/")}


@needs_mpi
@needs_fashion
@pytest.mark.slow
def test_cli_workers_2_matches_one_process_resumes_and_loads_in_one_process(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    r = alexnet_cli("train", *RUN, "--epochs", "1", "--workers", "2", "--out", two)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("epoch 1/1:") == 1                  # rank 0 alone reports
    r = alexnet_cli("train", *RUN, "--epochs", "1", "--out", one, threads="2")
    assert r.returncode == 0, r.stderr
    a, b = weights(two / "checkpoint.npz"), weights(one / "checkpoint.npz")
    assert a.keys() == b.keys() and not any(".module" in k or "/module." in k for k in a)
    worst = max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in a)
    assert worst < 1e-4, worst                                # float32, 6 SGD steps
    m2, m1 = (json.loads((d / "metrics.json").read_text())["epochs"][0] for d in (two, one))
    assert abs(m2["test_acc"] - m1["test_acc"]) <= 1 / 64 and abs(m2["train_loss"] - m1["train_loss"]) < 1e-4
    r = alexnet_cli("train", "--out", two, "--resume", "--epochs", "2", "--workers", "2", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(json.loads((two / "metrics.json").read_text())["epochs"]) == 2
    r = alexnet_cli("evaluate", two / "checkpoint.npz", "--limit-test", "64", "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["top1"] == json.loads((two / "metrics.json").read_text())["epochs"][-1]["test_acc"]


def test_cli_workers_without_mpi_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(dist, "is_available", lambda: False)
    assert main(["train", "--workers", "2", "--out", str(tmp_path / "x")]) == 2
    assert "pip install -e '.[dist]'" in capsys.readouterr().err
