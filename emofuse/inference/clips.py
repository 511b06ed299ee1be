"""The inputs as the recogniser holds them: a clip read into memory, or why it could not be."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import NamedTuple

import numpy as np

from emofuse.inference.results import Prediction
from emofuse.signal.audio import AudioError, load_audio

__all__ = ["Clip", "GroupJob", "Unreadable", "read_clip", "readable", "clip_samples"]


class Clip(NamedTuple):
    """One input: its place among the inputs, its mono wave (samples,) float32 at the model's
    rate, and its source (the file's path; None for an array)."""

    index: int
    wave: np.ndarray
    source: str | None


class Unreadable(NamedTuple):
    """An input file that could not be read, and why."""

    index: int
    source: str | os.PathLike
    error: AudioError


def read_clip(index: int, path: str | os.PathLike, sample_rate: int) -> Clip | Unreadable:
    """The file at ``path`` as a :class:`Clip` at ``sample_rate``, or why it is unreadable."""
    try:
        return Clip(index, load_audio(path, sample_rate), str(path))
    except AudioError as error:
        return Unreadable(index, path, error)


def readable(
    loaded: Iterable[Clip | Unreadable],
    on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
) -> Iterator[Clip]:
    """The clips of ``loaded``, in order; each unreadable file goes to ``on_error(path, error)``
    (when given) instead."""
    for item in loaded:
        if isinstance(item, Clip):
            yield item
        elif on_error is not None:
            on_error(item.source, item.error)


def clip_samples(item: Clip | Unreadable) -> int:
    """How much memory an item holds, in samples (0 for an unreadable file)."""
    return item.wave.size if isinstance(item, Clip) else 0


class GroupJob(NamedTuple):
    """A group of clips sent to the model together: their indices and its future predictions
    (in the group's order)."""

    indices: list[int]
    predictions: Future

    @classmethod
    def of(cls, group: list[Clip], predictions: Future) -> GroupJob:
        return cls([clip.index for clip in group], predictions)

    def answers(self) -> Iterator[tuple[int, Prediction]]:
        """(index, prediction) of each clip, once the job is done."""
        return zip(self.indices, self.predictions.result(), strict=True)
