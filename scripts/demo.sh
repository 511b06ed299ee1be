#!/usr/bin/env bash
# Set up, then show the model and the features of a generated 3 s clip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p runs
.venv/bin/python - <<'PY'
import numpy as np, soundfile as sf
t = np.arange(3 * 16000) / 16000
pitch = 180 + 40 * np.sin(2 * np.pi * 0.7 * t)  # a gliding, voice-like tone
wave = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / 16000) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
sf.write("runs/demo_clip.wav", wave.astype("float32"), 16000)
PY
.venv/bin/emofuse model summary
.venv/bin/emofuse features runs/demo_clip.wav
