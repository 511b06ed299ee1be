"""What a recogniser answers: a :class:`Prediction` per clip, :class:`Segment` s of a
timeline, ``"no speech"`` where there is nothing to label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["NO_SPEECH", "Prediction", "Segment", "StreamEvent", "labelled"]

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


@dataclass(frozen=True)
class StreamEvent:
    """What a live stream (or a timeline being computed) says, at ``[start, end)`` seconds:

    - ``speech_start`` / ``speech_end``: a speech stretch begins / ends (``start == end``);
    - ``segment``: a :class:`Segment` of the timeline (``label``, ``probabilities``, ``silent``,
      ``reason`` as there);
    - ``partial``: the speech stretch so far (its segments' probabilities averaged by length).
    """

    type: str
    start: float
    end: float
    label: str | None = None
    probabilities: dict[str, float] | None = None
    silent: bool | None = None
    reason: str | None = None

    @property
    def confidence(self) -> float | None:
        return None if self.probabilities is None else self.probabilities.get(self.label, 0.0)

    @property
    def segment(self) -> Segment:
        """A ``segment`` event as the timeline's :class:`Segment`."""
        if self.type != "segment":
            raise ValueError(f"a {self.type!r} event is not a segment")
        return Segment(self.start, self.end, self.label, self.probabilities, self.silent,
                       self.reason)  # fmt: skip

    def to_dict(self) -> dict:
        """JSON-ready: ``type``, ``start``, ``end`` and, for segments and partials, ``label``,
        ``confidence``, ``probabilities`` (and ``silent``, ``reason`` for segments)."""
        out = {"type": self.type, "start": round(self.start, 4), "end": round(self.end, 4)}
        if self.label is not None:
            out.update(label=self.label, confidence=self.confidence,
                       probabilities=self.probabilities)  # fmt: skip
        if self.type == "segment":
            out.update(silent=self.silent, reason=self.reason)
        return out


def labelled(labels: Sequence[str], probabilities: np.ndarray) -> dict:
    """(C,) probabilities -> ``label`` (the most probable) and ``probabilities`` (a dict)."""
    return {
        "label": labels[int(np.argmax(probabilities))],
        "probabilities": {k: float(p) for k, p in zip(labels, probabilities, strict=True)},
    }
