#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, CuPy and PyTorch with CUDA: the GPU test suite, then the
# benchmark (CuPy against PyTorch with cuDNN). Results land in $OUT when set (the device tool).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
python3 -m pip install -q --no-deps -e . 2>&1 | tail -2
python3 -m pytest -q -m gpu -rs tests 2>&1 | tee "$OUT/gpu-tests.log"
python3 -m alexnet bench --out "$OUT" --markdown "$OUT/benchmarks-gpu.md" 2>&1 | tee "$OUT/gpu-bench.log"
