"""The segments of a timeline: speech stretches cut into windows whose answers tile them,
stretches without speech as single "no speech" segments, in recording order and batched."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from emofuse.inference.adapt import RunningAdaptation
from emofuse.inference.backends import Backend, window_probabilities
from emofuse.inference.results import NO_SPEECH, Segment, labelled
from emofuse.inference.windows import MIN_SECONDS, padded, prepare, windows
from emofuse.signal.audio import AudioError, level_db

__all__ = ["timeline_segments"]


def timeline_segments(
    backend: Backend,
    path: str | os.PathLike,
    stretches: Iterable[tuple[int, Iterable[np.ndarray] | None, int]],
    *,
    window: int,
    hop: int,
    batch_size: int,
    silence_db: float,
    adaptation: RunningAdaptation | None = None,
) -> Iterator[Segment]:
    """Contiguous segments over (first sample, its blocks or None for no speech, end sample)
    stretches, with ``window`` and ``hop`` in samples (:meth:`EmotionRecognizer.timeline`).

    Windows wait for a batch of ``batch_size``; a stretch without speech (or a silent window)
    sends the windows waiting before it through the model at once, so it is written as soon as
    its end is known rather than when the next batch fills.
    """
    rate, min_samples = backend.sample_rate, round(MIN_SECONDS * backend.sample_rate)
    pending: list[tuple[float, float, np.ndarray | None, str | None]] = []
    silent = f"silent (below {silence_db:g} dBFS)"

    def flush() -> Iterator[Segment]:
        spoken = [(hi - lo, w) for lo, hi, w, _ in pending if w is not None]
        if adaptation is None or not spoken:
            probs = iter(window_probabilities(backend, [w for _, w in spoken]))
        else:  # each window adds the share of it its segment covers: overlaps count once
            weights = np.array([min(1.0, span / w.size) for span, w in spoken])
            waves, lengths = padded([w for _, w in spoken], multiple=backend.sample_rate)
            probs = iter(backend.adapting_probabilities(waves, lengths, adaptation, weights))
        for lo, hi, w, reason in pending:
            if w is None:
                yield Segment(lo / rate, hi / rate, NO_SPEECH, {}, True, reason)
            else:
                answer = labelled(backend.labels, next(probs))
                yield Segment(lo / rate, hi / rate, silent=False, **answer)
        pending.clear()

    def add(lo: float, hi: float, w: np.ndarray | None, reason: str | None) -> Iterator:
        pending.append((lo, hi, w, reason))
        waiting = sum(w is not None for _, _, w, _ in pending)
        if w is None or waiting >= batch_size:
            yield from flush()

    def windowed(start: int, samples: np.ndarray, lo: float, hi: float) -> Iterator[Segment]:
        if level_db(samples[round(lo) - start : round(hi) - start]) < silence_db:
            yield from add(lo, hi, None, silent)
        else:
            yield from add(lo, hi, prepare(samples, min_samples), None)

    analysed = False
    for offset, blocks, end in stretches:
        if blocks is None:
            yield from add(offset, end, None, "no speech detected")
            analysed = True
            continue
        previous, lo = None, float(offset)
        for start, samples in windows(blocks, window, hop):
            start += offset
            if previous is not None:
                hi = (previous[0] + previous[1].size / 2 + start + samples.size / 2) / 2
                yield from windowed(*previous, lo, hi)
                lo = hi
            previous = (start, samples)
        if previous is not None:
            yield from windowed(*previous, lo, float(previous[0] + previous[1].size))
            analysed = True
    if not analysed:  # possible only if resampling left no samples
        raise AudioError(path, "too short to analyse")
    yield from flush()
