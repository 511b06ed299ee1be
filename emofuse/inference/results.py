"""What a recogniser answers: a :class:`Prediction` per clip, :class:`Segment` s of a
timeline, ``"no speech"`` where there is nothing to label; any of them answered over a subset
of the model's labels (:func:`label_subset`, :func:`restricted`).

>>> restrict({"neutral": 0.5, "happy": 0.3, "sad": 0.2}, ("happy", "sad"))
{'happy': 0.6, 'sad': 0.4}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TypeVar

import numpy as np

__all__ = ["NO_SPEECH", "Prediction", "Segment", "StreamEvent", "label_subset", "labelled",
           "restrict", "restricted"]

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


def label_subset(
    model_labels: Sequence[str], wanted: str | Iterable[str] | None
) -> tuple[str, ...] | None:
    """The labels ``wanted`` (names, or one comma-separated string) in the model's order; None
    (all the model's labels) when ``wanted`` is None.

    Raises:
        ValueError: no name or an empty one, a name the model does not have (the message lists
            the model's labels), or a name given twice.
    """
    if wanted is None:
        return None
    names = [n.strip() for n in wanted.split(",")] if isinstance(wanted, str) else list(wanted)
    known = ", ".join(model_labels)
    if not names or "" in names:
        raise ValueError(f"labels must name some of the model's labels, comma-separated, got "
                         f"{wanted!r}; the model's labels are {known}")  # fmt: skip
    unknown = [n for n in names if n not in model_labels]
    if unknown:
        raise ValueError(f"unknown label {', '.join(map(repr, unknown))}: the model's labels "
                         f"are {known}")  # fmt: skip
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1}, key=names.index)
        raise ValueError(f"label {', '.join(map(repr, twice))} named more than once")
    return tuple(k for k in model_labels if k in names)


def restrict(probabilities: dict[str, float], subset: Sequence[str]) -> dict[str, float]:
    """``probabilities`` over the model's labels -> over those in ``subset`` only, divided by
    their sum (equal shares if it is 0), in the order of ``probabilities``."""
    kept = {k: p for k, p in probabilities.items() if k in subset}
    total = sum(kept.values())
    return {k: p / total if total > 0 else 1 / len(kept) for k, p in kept.items()}


Answer = TypeVar("Answer", Prediction, Segment, StreamEvent)


def restricted(answer: Answer, subset: Sequence[str] | None) -> Answer:
    """``answer`` over ``subset`` only (:func:`restrict`), its ``label`` the most probable of
    them; unchanged without a subset or without probabilities (no speech, speech start/end)."""
    if subset is None or not answer.probabilities:
        return answer
    probabilities = restrict(answer.probabilities, subset)
    return replace(answer, label=max(probabilities, key=probabilities.get),
                   probabilities=probabilities)  # fmt: skip
