#!/usr/bin/env bash
# README command 1: set up a virtual environment and run the main job:
# train the `mini` AlexNet on the real Fashion-MNIST (results in runs/main/).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
# The real Fashion-MNIST files: Debian/Ubuntu ship them as a package; elsewhere the
# trainer downloads them from the official mirror and checks their checksums.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; } \
        || echo "could not install dataset-fashion-mnist with apt; the trainer will try to download it" >&2
fi
export OPENBLAS_THREAD_TIMEOUT=1
exec .venv/bin/python -m alexnet train --out runs/main "$@"
