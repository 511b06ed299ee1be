"""The benchmarks (bench/README.md). Importing ``bench`` puts bench/ on ``sys.path``, so a script
imports its neighbours (``import _common as common``) the same way whether it runs as
``python bench/<name>.py`` or is imported as ``bench.<name>``."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
