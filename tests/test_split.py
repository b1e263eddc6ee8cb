"""alexnet.split (the paper's two-GPU halves on two ranks) and minidl.nn.model_parallel.all_gather.

State-dict splitting, the traffic sizes and the error paths run in this process; the exactness check
runs tests/split_worker.py under ``mpiexec -n 2`` (skipped with the reason without mpi4py/mpiexec).
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

import alexnet
import minidl as md
import minidl.distributed as dist
from alexnet import split
from minidl.nn import model_parallel

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("split_worker.py")
TINY = dict(width=1 / 16, input_size=99, dropout=0.0)


def mpiexec():
    local = Path(sys.executable).with_name("mpiexec")
    return str(local) if local.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(not dist.is_available() or mpiexec() is None,
                               reason="needs mpi4py and mpiexec: pip install -e '.[dist]'")


def test_halves_split_and_merge_back_into_the_paper_model():
    md.manual_seed(0)
    full = split.twin(10, **TINY)
    halves = [split.Half(full, r) for r in range(2)]
    merged = split.merge_state_dicts([h.state_dict() for h in halves], halves[0])
    plain = alexnet.build("paper", 10, **TINY)
    plain.load_state_dict(merged)                      # strict: the very keys and shapes of `paper`
    for name, value in full.state_dict().items():
        assert np.array_equal(merged[name], value.numpy()), name
    # conv2 is grouped: rank 1 holds group 1 (the second half of the output channels) as a groups=1 conv
    w = full.features[4].weight.numpy()
    assert np.array_equal(halves[1].lower[4].weight.numpy(), w[w.shape[0] // 2:])
    assert halves[0].lower[4].groups == 1 and halves[0].lower[4].in_channels == full.features[4].in_channels // 2


def test_twin_normalises_each_half_on_its_own():
    md.manual_seed(0)
    full = split.twin(10, **TINY)
    x = md.tensor(np.random.default_rng(0).standard_normal((1, 6, 5, 5)) * 30)
    lrn = full.features[2].lrn
    halves = np.concatenate([lrn(x[:, :3]).numpy(), lrn(x[:, 3:]).numpy()], axis=1)
    assert np.array_equal(full.features[2](x).numpy(), halves)
    # the whole-channel LRN differs at the boundary channels (the windows reach across there)
    assert not np.allclose(lrn(x).numpy()[:, 2:4], halves[:, 2:4])


def test_exchange_sizes_of_the_paper():
    # the paper's Figure 2: conv2 256 maps 27x27 pooled to 13x13, conv5 256 maps pooled to 6x6, fc 4096, 1000
    assert split.exchange_sizes() == {"conv3 input": 128 * 13 * 13, "fc6 input": 128 * 6 * 6,
                                      "fc7 input": 2048, "fc8 input": 2048, "logits": 500}


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="output units"):
        split.twin(9, **TINY)                           # 9 logits do not halve
    with pytest.raises(ValueError, match="paper model"):
        split.Half(alexnet.build("mini", width=0.25), 0)
    with pytest.raises(ValueError, match="rank must be 0 or 1"):
        split.Half(split.twin(10, **TINY), 2)
    with pytest.raises(ValueError, match="expects input size 3x99x99, got 3x50x50"):
        split.Half(split.twin(10, **TINY), 0)(md.tensor(np.ones((1, 3, 50, 50))))
    with pytest.raises(RuntimeError, match="not initialised"):
        model_parallel.all_gather(md.tensor(np.ones((2, 2))))
    with pytest.raises(ValueError, match="grad must be"):
        model_parallel.all_gather(md.tensor(np.ones((2, 2))), grad="mean")
    with pytest.raises(TypeError, match="must be a Tensor"):
        model_parallel.all_gather(np.ones((2, 2)))


@needs_mpi
def test_two_ranks_equal_one_process_in_float64():
    with tempfile.TemporaryDirectory() as results_dir:
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", SPLIT_RESULTS=results_dir)
        proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(WORKER)], capture_output=True, text=True,
                              timeout=240, env=env, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("rank*.json"))]
    assert [r["rank"] for r in results] == [0, 1]
    for r in results:
        # the all-gather's own gradient, by central differences over both ranks' inputs (a linear loss:
        # only rounding remains; measured ~1e-8 with eps 1e-6)
        assert r["gradcheck_sum"] < 1e-6 and r["gradcheck_slice"] < 1e-6
        rank = r["rank"]
        assert r["gathered"] == [[1.0, 1.0]] * 2 + [[2.0, 2.0]] * 2
        assert r["scattered"] == [3.0 * v for v in range(3 * rank, 3 * rank + 3)]
        assert "(2 * 2, ...)" in r["shape_error"] and "output (3, 2)" in r["shape_error"]
        assert "'mismatch'" in r["mismatch"] and "{0: (2, 3), 1: (2, 4)}" in r["mismatch"]
        assert r["logits_rel_error"] < 1e-10 and r["grad_rel_error"] < 1e-10 and r["grad_names"] == 16
        assert r["keys_match"] and r["weights_rel_error"] < 1e-10 and r["max_weight_change"] > 1e-4
        batch, itemsize = 3, 8                           # the worker's batch, float64
        for name, values in r["sizes"].items():          # each rank sends its piece; backward the other's slice
            assert r["bytes_sent"][name]["forward"] == values * batch * itemsize, name
            assert r["bytes_sent"][name]["backward"] == (0 if name == "logits" else values * batch * itemsize), name
