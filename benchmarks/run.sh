#!/usr/bin/env bash
# Full CPU benchmark: every kernel, training steps, memory, cold start, against PyTorch.
# Run on a quiet machine (nothing else heavy running); about 10 minutes on 2 cores.
# Writes benchmarks/results/full.json and .png, and the CPU tables of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_THREAD_TIMEOUT=1
PY=${PYTHON:-.venv/bin/python}
exec "$PY" -m alexnet bench "$@"
