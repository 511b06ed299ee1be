#!/usr/bin/env bash
# Set up, recognise the emotions of the bundled example clips with the bundled model, then
# draw the emotion timeline of the four clips joined with a second of silence between them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/emofuse predict examples/*.flac
mkdir -p runs
.venv/bin/python - <<'PY'
import numpy as np, soundfile as sf
from pathlib import Path
gap = np.zeros(16000, np.float32)
clips = [sf.read(p, dtype="float32")[0] for p in sorted(Path("examples").glob("*.flac"))]
sf.write("runs/examples-joined.flac", np.concatenate([x for c in clips for x in (c, gap)]), 16000)
PY
.venv/bin/emofuse predict runs/examples-joined.flac --timeline --window 1.5 --hop 0.5 --plot runs/timeline.png
echo "timeline plot: runs/timeline.png"
