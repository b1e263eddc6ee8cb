"""benchmarks/gpu.sh --dry-run: every part of the GPU script that can run without a GPU (the GPU side
of each check on the CPU, the GPU tests collected, the bench command line parsed) passes, writes its
JSON and the GPU section of a scratch copy of docs/benchmarks.md, and prints a one-line verdict.
About 20 s; longer in a fresh checkout, where it is the first to compile some Numba kernels."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    run = subprocess.run(["bash", "benchmarks/gpu.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0, run.stdout + run.stderr
    assert lines[-1].startswith("gpu.sh --dry-run: PASS: 6/6 parts passed"), lines[-1]
    results = json.loads((tmp_path / "gpu-check.json").read_text())
    assert set(results["parts"]) == {"tests", "bench", "speed", "dropout", "paper", "train"}
    assert all(part["ok"] for part in results["parts"].values())
    assert {c["dtype"] for c in results["paper"]["cases"]} == {"float64", "float32"}
    assert "gpu_compile" in (tmp_path / "gpu-tests.log").read_text() or "test_cuda_compile" in \
        (tmp_path / "gpu-tests.log").read_text()
    section = (tmp_path / "benchmarks.md").read_text().split("<!-- results:gpu start -->")[1]
    assert "| paper | pass |" in section.split("<!-- results:gpu end -->")[0]
    assert (ROOT / "docs" / "benchmarks.md").read_text().count("<!-- results:gpu start -->") == 1
