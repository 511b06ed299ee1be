#!/usr/bin/env bash
# Set up, then recognise the emotions of the bundled example clips with the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/emofuse predict examples/*.flac
