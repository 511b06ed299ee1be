"""emofuse: speech emotion recognition with multi-scale, multi-feature cross-attention fusion.

The public API, imported on first use (``import emofuse`` itself loads neither torch nor numpy):

>>> from emofuse import EmotionRecognizer  # doctest: +SKIP
>>> EmotionRecognizer.load().predict("clip.wav").label  # doctest: +SKIP
'angry'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Each public name -> the module that defines it.
_PUBLIC = {
    "EmotionRecognizer": "emofuse.inference.recognizer",
    "Prediction": "emofuse.inference.results",
    "Segment": "emofuse.inference.results",
    "EmotionStream": "emofuse.inference.stream",
    "StreamEvent": "emofuse.inference.results",
    "AudioError": "emofuse.signal.audio",
    "ModelFileError": "emofuse.pipeline.modelfile",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'emofuse' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
