"""``alexnet train --split paper``: the paper's two-GPU split trained on 2 MPI ranks through the CLI and Trainer.

The 2-rank runs go through the real command line (it re-launches itself under mpiexec -n 2), skipped
with the reason without mpi4py/mpiexec or the real Fashion-MNIST; the error paths run in this process.
A tiny paper (width 1/16, 227x227 Fashion-MNIST, 32 training images in batches of 16, dropout 0, float32).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl.distributed as dist
from alexnet import workers
from alexnet.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("split_worker.py")
FASHION = "/usr/share/datasets/fashion-mnist"
needs_mpi = pytest.mark.skipif(not dist.is_available() or workers.find_mpiexec() is None,
                               reason="needs mpi4py and mpiexec: pip install -e '.[dist]'")
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason=f"the real Fashion-MNIST is not in {FASHION}")
RUN = ["--model", "paper", "--dataset", "fashion-mnist", "--data-dir", FASHION, "--width", "0.0625",
       "--limit-train", "32", "--limit-test", "32", "--batch-size", "16", "--dropout", "0", "--no-augment",
       "--no-pca-lighting", "--no-progress", "--optimizer", "sgd", "--lr", "0.02"]
PAPER = ["--model", "paper", "--split", "paper", "--dataset", "fashion-mnist"]
THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def alexnet_cli(*argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_THREAD_TIMEOUT="1", **THREADS)
    r = subprocess.run([sys.executable, "-m", "alexnet", *map(str, argv)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def checkpoint(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k.startswith(("model/", "optim/"))}


def worst_rel(a, b, prefix=""):
    """The largest difference of a tensor relative to its largest value (at least 1e-3: some biases stay ~1e-9)."""
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-3)) for k in a if k.startswith(prefix))


def accuracies(out):
    return [e["test_acc"] for e in json.loads((out / "metrics.json").read_text())["epochs"]]


@needs_mpi
@needs_fashion
def test_split_paper_equals_the_twin_resumes_exactly_and_evaluates_in_one_process(tmp_path, monkeypatch):
    split2, twin, first, one = (tmp_path / name for name in ("split2", "twin", "first", "one"))
    r = alexnet_cli("train", *RUN, "--epochs", "2", "--split", "paper", "--out", split2)
    assert "launching 2 ranks" in r.stdout and r.stdout.count("epoch 2/2:") == 1   # rank 0 alone reports
    held = checkpoint(split2 / "checkpoint.npz")
    assert "model/features.0.weight" in held and held["model/features.0.weight"].shape[0] == 6   # the whole conv1
    assert "optim/0/momentum_buffer" in held                                                    # gathered too

    # (a) the same command in one process (start() gives a world of one): the twin, trained alone
    monkeypatch.setattr(workers, "start", lambda n, split=None: dist.World())
    for key, value in THREADS.items():
        monkeypatch.setenv(key, value)
    assert main(["train", *RUN, "--epochs", "2", "--split", "paper", "--out", str(twin)]) == 0
    monkeypatch.undo()
    # float32, 4 SGD steps: the halves and the twin add the same products in other orders; the weights
    # measured 1e-7 and 4e-7 apart in two runs (the momentum buffers 1e-5 to 2e-5: the low layers' gradients
    # are ~5e-5, and the split sums them over both ranks)
    assert worst_rel(held, checkpoint(twin / "checkpoint.npz"), "model/") < 1e-5
    assert accuracies(split2) == accuracies(twin)

    # (b) evaluate in one process rebuilds the twin from the checkpoint's configuration
    r = alexnet_cli("evaluate", split2 / "checkpoint.npz", "--json", "--no-progress")
    assert json.loads(r.stdout)["top1"] == accuracies(split2)[-1]

    # (c) one epoch, then --resume on 2 ranks: bit for bit the uninterrupted run (weights and momentum)
    alexnet_cli("train", *RUN, "--epochs", "1", "--split", "paper", "--out", first)
    one.mkdir()
    shutil.copy(first / "checkpoint.npz", one / "checkpoint.npz")
    alexnet_cli("train", "--out", first, "--resume", "--epochs", "2", "--split", "paper", "--no-progress")
    assert worst_rel(checkpoint(first / "checkpoint.npz"), held) == 0.0
    assert accuracies(first) == accuracies(split2)

    # (d) the same checkpoint resumed in one process without --split continues as the twin
    alexnet_cli("train", "--out", one, "--resume", "--epochs", "2", "--no-progress")
    assert worst_rel(checkpoint(one / "checkpoint.npz"), held, "model/") < 1e-5


@needs_mpi
def test_a_killed_rank_ends_a_split_job(tmp_path):
    # mpiexec stops rank 0 as soon as rank 1 dies; the 20 s timeout of its gather is the fallback
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPLIT_RESULTS=str(results), **THREADS)
    proc = subprocess.run([workers.find_mpiexec(), "-n", "2", sys.executable, str(WORKER), "kill"],
                          capture_output=True, text=True, timeout=90, env=env, cwd=ROOT)
    assert proc.returncode != 0 and not results.exists()       # neither rank got past the second forward
    assert "signal 9" in proc.stdout + proc.stderr or "did not complete" in proc.stderr


@pytest.mark.parametrize("argv,message", [
    (["--model", "paper", "--workers", "2"], "--split paper runs on 2 ranks of its own and --workers 2 is data parallelism"),
    (["--model", "mini"], "splits the paper variant only (alexnet.split.twin builds it); use --model paper"),
    (["--model", "paper", "--norm", "bn"], "--split paper needs --norm lrn or none"),
])
def test_split_refuses_what_it_cannot_do(argv, message, capsys, tmp_path):
    argv = ["train", "--split", "paper", "--dataset", "fashion-mnist", *argv, "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_split_only_knows_the_paper_split(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["train", "--model", "paper", "--split", "columns", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert "--split: invalid choice: 'columns'" in err and "paper" in err


def test_split_under_another_number_of_ranks_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(dist, "launcher_world_size", lambda: 3)
    assert main(["train", *PAPER, "--out", str(tmp_path / "x")]) == 2
    assert "--split paper runs on exactly 2 ranks (the paper's two GPUs), but mpiexec started 3" in capsys.readouterr().err


def test_split_without_mpi_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(dist, "is_available", lambda: False)
    assert main(["train", *PAPER, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "train --split paper: needs mpi4py" in err and "pip install -e '.[dist]'" in err
