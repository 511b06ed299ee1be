#!/usr/bin/env bash
# Create .venv and install emofuse with the pinned CPU build of torch.
# Usage: bash scripts/setup.sh [EXTRAS]   (default extras: plot,onnx; CI adds baseline,whisper,
# serve,ray,test; ray: emofuse archive)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-plot,onnx}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# Install the CPU wheel first, so nothing below can pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# compat: a plain path entry, so run from the folder above a clone the real package still wins
# over that folder, which would otherwise import as an empty namespace package "emofuse".
.venv/bin/python -m pip install -q -e ".[${extras}]" --config-settings editable_mode=compat
