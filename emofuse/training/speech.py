"""The frames of a clip that the voice activity detector calls speech, for a head trained on
speech only (``train.speech_only``): the recogniser drops the other samples of a clip before a
speech-only model runs, so its training reads the same part of each recording.

Speech regions are cached beside the feature frames (keyed by the file's identity and the VAD
settings), so a second training reads them instead of running the detector again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emofuse.pipeline.cache import cached_array, file_key
from emofuse.signal.audio import load_audio
from emofuse.signal.vad import SAMPLE_RATE, SpeechDetector
from emofuse.signal.vad_segmenter import VADSettings, speech_regions

__all__ = ["SpeechRegions", "speech_frames"]


class SpeechRegions:
    """Speech regions ``(K, 2)`` int64 (start, end in samples at 16 kHz) of audio files, cached
    under ``root``."""

    def __init__(self, root: str | os.PathLike, settings: VADSettings | None = None) -> None:
        self.settings = settings or VADSettings()
        digest = hashlib.sha1(json.dumps(asdict(self.settings), sort_keys=True).encode())
        self.root = Path(root) / f"speech-regions-{digest.hexdigest()[:16]}"
        self._detector: SpeechDetector | None = None

    def __call__(self, path: str | os.PathLike) -> np.ndarray:
        return cached_array(self.root / f"{file_key(Path(path))}.npy", lambda: self._find(path))

    def _find(self, path: str | os.PathLike) -> np.ndarray:
        if self._detector is None:
            self._detector = SpeechDetector.load()
        wave = load_audio(path, SAMPLE_RATE)
        probabilities = self._detector.probabilities([wave])[0]
        regions = speech_regions(probabilities, wave.size, self.settings)
        return np.array(regions, dtype=np.int64).reshape(-1, 2)


def speech_frames(frames: np.ndarray, regions: np.ndarray, frame_rate: float) -> np.ndarray:
    """The columns of ``frames`` (D, T) whose centre falls inside ``regions`` (samples at
    16 kHz); all of them when no region holds a frame (a clip without found speech).

    >>> speech_frames(np.arange(10)[None], np.array([[320, 960]]), 50.0).tolist()
    [[1, 2]]
    """
    centres = (np.arange(frames.shape[1]) + 0.5) * SAMPLE_RATE / frame_rate
    inside = np.zeros(frames.shape[1], bool)
    for start, end in regions:
        inside |= (centres >= start) & (centres < end)
    return frames[:, inside] if inside.any() else frames
