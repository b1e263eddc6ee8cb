#!/usr/bin/env bash
# One command for a GPU machine: every GPU check and the GPU benchmark, in under 8 minutes.
#
#   bash benchmarks/gpu.sh            on a machine with an NVIDIA GPU
#   bash benchmarks/gpu.sh --dry-run  anywhere: everything that can be checked without a GPU (~20 s)
#
# Installs nothing and needs no network: it runs from the checkout (PYTHONPATH=.) with the Python
# found as $PYTHON or python3, which must have numpy, numba, matplotlib, tqdm, Pillow, pytest, CuPy
# (cupy-cuda13x or cupy-cuda12x) and, for the PyTorch comparison, torch with CUDA.
# Parts, each under its own `timeout`: the GPU tests (pytest -m gpu), the CUDA compile tests, the
# dropout masks GPU = CPU, `paper`'s forward, loss and gradients GPU against CPU (float64, float32), a
# few training steps of `mini` and `paper` GPU against CPU, and the GPU rows of `python -m alexnet
# bench` (against PyTorch CUDA; against our CPU when torch has no CUDA).
# Writes $OUT/gpu-check.json (OUT defaults to benchmarks/results; the device tool sets it), a log per
# part, docs/benchmarks.md's GPU section, and prints a one-line verdict; exits 1 when a part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=""
[ "${1:-}" = "--dry-run" ] && DRY="--dry-run"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OPENBLAS_THREAD_TIMEOUT=1
if [ -n "$DRY" ]; then OUT=${OUT:-$(mktemp -d)}; else OUT=${OUT:-benchmarks/results}; fi
mkdir -p "$OUT"
JSON="$OUT/gpu-check.json"
rm -f "$JSON" "$OUT/gpu-parts.tsv"
CHECKS=(benchmarks/gpu_checks.py --json "$JSON")

# part NAME SECONDS COMMAND...: run under `timeout`, log to $OUT/gpu-NAME.log, record the outcome
part() {
    local name=$1 seconds=$2; shift 2
    local start=$SECONDS
    timeout --kill-after=10 "$seconds" "$@" >"$OUT/gpu-$name.log" 2>&1
    local code=$?
    printf '%s\t%s\t%s\n' "$name" "$code" "$((SECONDS - start))" >>"$OUT/gpu-parts.tsv"
    printf '%-10s exit %3d  %4ds  (%s)\n' "$name" "$code" "$((SECONDS - start))" "$OUT/gpu-$name.log"
}

# Budget (the real run): 40 + 100 + 30 + 90 + 60 + 140 + 20 s = 8 min at the very most. The dry
# run takes ~20 s, but its limits allow for a fresh checkout, where Numba compiles every CPU kernel.
SHORT=30 LONG=90
if [ -n "$DRY" ]; then
    SHORT=300 LONG=300
    # no GPU: the tests are only collected, the checks run with the "GPU" side on the CPU
    part tests 300 "$PY" -m pytest -q --collect-only -m "gpu or gpu_compile" tests
    part bench 300 "$PY" -m alexnet bench --devices gpu --help
    part speed 300 "$PY" "${CHECKS[@]}" speed --dry-run
else
    part compile    40 "$PY" -m pytest -q -m gpu_compile tests/test_cuda_compile.py
    part gpu-tests 100 "$PY" -m pytest -q -rs -m gpu tests   # also compiles the CPU kernels, warms CuPy's cache
fi
part dropout "$SHORT" "$PY" "${CHECKS[@]}" dropout $DRY
part paper   "$LONG" "$PY" "${CHECKS[@]}" paper $DRY
part train   "$((LONG - 30))" "$PY" "${CHECKS[@]}" train $DRY
BENCH_JSON=""
if [ -z "$DRY" ]; then
    if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        part bench 140 "$PY" -m alexnet bench --devices gpu --parts kernels steps --repeats 5 --out "$OUT" \
            --markdown "$OUT/bench-gpu.md"
        BENCH_JSON="$OUT/full-gpu.json"
    else
        part bench 140 "$PY" "${CHECKS[@]}" speed
    fi
fi
# the report: docs/benchmarks.md's GPU section (a scratch copy in a dry run) and the verdict
MARKDOWN=docs/benchmarks.md
if [ -n "$DRY" ]; then cp docs/benchmarks.md "$OUT/benchmarks.md"; MARKDOWN="$OUT/benchmarks.md"; fi
timeout 20 "$PY" "${CHECKS[@]}" report $DRY --markdown "$MARKDOWN" ${BENCH_JSON:+--bench-json "$BENCH_JSON"}
