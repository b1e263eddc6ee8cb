#!/usr/bin/env bash
# README command 2: set up a virtual environment with the test extra and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,dist]'
# OPENBLAS_THREAD_TIMEOUT=1: BLAS threads park at once, so they do not fight Numba's threads.
export OPENBLAS_THREAD_TIMEOUT=1
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit "$status"
