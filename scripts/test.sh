#!/usr/bin/env bash
# README command 2: set up a virtual environment with the test extra and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# gpu-check: CuPy and NVIDIA's compiler wheels (~230 MB), so that tests/test_cuda_compile.py compiles
# every CUDA kernel for the GPUs we target; no GPU is needed (GPU tests skip and say why).
.venv/bin/python -m pip install -q -e '.[test,dist,gpu-check]'
# OPENBLAS_THREAD_TIMEOUT=1: BLAS threads park at once, so they do not fight Numba's threads.
export OPENBLAS_THREAD_TIMEOUT=1
# Lint first (the rule set is in pyproject.toml): unused imports, undefined names, imports at the top.
.venv/bin/python -m ruff check .
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit "$status"
