#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install plm-interp into it.
# Where no NVIDIA GPU is present, the CPU build of torch is installed first, so that the
# plain `torch` requirement does not pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PLM_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install torch
  else
    $PIP install "torch==2.13.0"   # the CPU build (a local file on this project's machines)
  fi
fi
EXTRA="${PLM_EXTRA:-dev}"
$PIP install -e ".[${EXTRA}]"
