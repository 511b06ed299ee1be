"""What a recogniser answers: a :class:`Prediction` per clip, :class:`Segment` s of a
timeline, ``"no speech"`` where there is nothing to label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["NO_SPEECH", "Prediction", "Segment", "labelled"]

NO_SPEECH = "no speech"


@dataclass(frozen=True)
class Prediction:
    """The emotion of one clip. Without speech, ``silent`` is True, ``label`` is "no speech",
    ``probabilities`` is empty and ``reason`` says why (silent, or no speech detected)."""

    label: str
    probabilities: dict[str, float]
    silent: bool
    duration: float  # seconds
    source: str | None = None  # the file, when read from one
    reason: str | None = None  # why there is no emotion (None when there is one)

    @property
    def confidence(self) -> float:
        """Probability of ``label`` (0 when silent)."""
        return self.probabilities.get(self.label, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    """A stretch ``[start, end)`` seconds of a :meth:`EmotionRecognizer.timeline`; without
    speech ``silent`` is True, ``label`` "no speech" and ``reason`` says why."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]  # empty without speech
    silent: bool
    reason: str | None = None

    @property
    def confidence(self) -> float:
        return self.probabilities.get(self.label, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def labelled(labels: Sequence[str], probabilities: np.ndarray) -> dict:
    """(C,) probabilities -> ``label`` (the most probable) and ``probabilities`` (a dict)."""
    return {
        "label": labels[int(np.argmax(probabilities))],
        "probabilities": {k: float(p) for k, p in zip(labels, probabilities, strict=True)},
    }
