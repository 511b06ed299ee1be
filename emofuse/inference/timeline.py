"""The segments of a timeline, pushed block by block: speech stretches cut into windows whose
answers tile them, stretches without speech as single "no speech" segments, in recording order.

One :class:`TimelineEngine` serves a file's :meth:`~EmotionRecognizer.timeline` and a live
stream (:mod:`emofuse.inference.stream`): a window is answered as soon as the audio heard makes
it final (the speech reaches past the next window and cannot be split before it), so a stream's
segments are those of the whole file's timeline, however the audio was chunked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from emofuse.inference.adapt import RunningAdaptation
from emofuse.inference.backends import Backend, BackendUnsupported, window_probabilities
from emofuse.inference.results import NO_SPEECH, Segment, StreamEvent, labelled
from emofuse.inference.windows import MIN_SECONDS, padded, prepare, window_spans
from emofuse.signal.audio import AudioError, level_db
from emofuse.signal.vad_segmenter import HeldAudio, SegmentingStream, Stretch

__all__ = ["TimelineEngine", "WindowJob", "score_jobs", "timeline_segments"]


@dataclass
class WindowJob:
    """Prepared windows (each (samples,) float32) of one timeline or stream, in recording order,
    waiting for the model; with ``adaptation``, each window is standardised with the statistics
    of those before it, then added to them with its weight in ``weights`` (n,)."""

    windows: list[np.ndarray]
    adaptation: RunningAdaptation | None = None
    weights: np.ndarray | None = None


def score_jobs(backend: Backend, jobs: Sequence[WindowJob]) -> list[np.ndarray]:
    """Each job's probabilities (n, C): the windows of all jobs in one forward pass, adapting
    ones (each with its own recording's statistics, :meth:`TorchBackend.adapting_probabilities`)
    in another (what the service does with the windows of concurrent streams)."""
    plain = [w for job in jobs if job.adaptation is None for w in job.windows]
    adapting = [job for job in jobs if job.adaptation is not None]
    answers = iter(window_probabilities(backend, plain))
    adapted: np.ndarray | None = None
    if any(job.windows for job in adapting):
        windows = [w for job in adapting for w in job.windows]
        waves, lengths = padded(windows, multiple=backend.sample_rate)
        statistics = [job.adaptation for job in adapting for _ in job.windows]
        weights = np.concatenate([job.weights for job in adapting])
        adapted = iter(backend.adapting_probabilities(waves, lengths, statistics, weights))
    out = []
    for job in jobs:
        source = answers if job.adaptation is None else adapted
        rows = [next(source) for _ in job.windows]
        out.append(np.stack(rows) if rows else np.zeros((0, len(backend.labels)), np.float32))
    return out


class PlannedWindow(NamedTuple):
    """One evaluation window of a speech stretch, in samples: its audio ``[start, end)`` and
    the part of the stretch its answer covers, ``[lo, hi)`` (fractional at midpoints)."""

    lo: float
    hi: float
    start: int
    end: int


class _Pending(NamedTuple):
    """An event waiting for the windows before it to be answered: ``wave`` is a prepared
    window waiting for the model, None for a boundary or a segment without speech (``reason``);
    ``lo``/``hi`` in samples."""

    kind: str
    lo: float
    hi: float
    wave: np.ndarray | None
    reason: str | None


class _WindowPlan:
    """The evaluation windows of one speech stretch from sample ``start``, as its audio arrives:
    each with the part of the stretch its answer covers (from midway between the previous
    window's centre and its own to midway between its own and the next one's)."""

    def __init__(self, start: int, window_samples: int, hop_samples: int) -> None:
        self.start, self.window_samples, self.hop_samples = start, window_samples, hop_samples
        self.count = 0  # windows given so far
        self.lo = float(start)

    @property
    def next_start(self) -> int:
        """The first sample a window not given yet can need."""
        return self.start + self.count * self.hop_samples

    def ready(self, reach: int) -> list[PlannedWindow]:
        """The windows now final, the stretch reaching at least ``reach``: those followed by
        another whole window within it."""
        out = []
        while (following := self.next_start + self.hop_samples) + self.window_samples <= reach:
            size = self.window_samples
            out.append(self._give(self.next_start, size, following, size))
        return out

    def close(self, end: int) -> list[PlannedWindow]:
        """The windows left once the stretch ends at ``end`` (the last one ends there)."""
        spans = window_spans(end - self.start, self.window_samples, self.hop_samples)[self.count :]
        out = []
        for (a, b), following in zip(spans, [*spans[1:], None], strict=True):
            if following is None:
                out.append(PlannedWindow(self.lo, float(self.start + b), self.start + a,
                                         self.start + b))  # fmt: skip
                self.count += 1
            else:
                nxt = self.start + following[0]
                out.append(self._give(self.start + a, b - a, nxt, following[1] - following[0]))
        return out

    def _give(self, a: int, size: int, following: int, following_size: int) -> PlannedWindow:
        hi = (a + size / 2 + following + following_size / 2) / 2
        window = PlannedWindow(self.lo, hi, a, a + size)
        self.lo, self.count = hi, self.count + 1
        return window


class TimelineEngine:
    """Audio blocks in, :class:`StreamEvent` s out: ``speech_start``, ``segment`` (the
    timeline's), ``speech_end`` and, with ``partials``, ``partial`` (the speech stretch heard so
    far: its final segments and the model on its latest window's worth, at most once per hop of
    speech; the statistics of an adapting recording are not updated by it), in recording order.

    ``segmenter``: voice activity (:class:`SegmentingStream`), or None to treat all the audio as
    one speech stretch. Windows wait for a batch of ``batch_size`` (``eager``: also the end of
    each :meth:`feed`, as a live stream wants); a stretch without speech sends those waiting
    through the model at once. ``score``: jobs -> probabilities, the model by default
    (:func:`score_jobs`; the service passes its batcher). Memory: the open speech stretch's
    audio (at most ``max_speech_seconds``) and the windows of one batch.
    """

    def __init__(
        self,
        backend: Backend,
        segmenter: SegmentingStream | None,
        *,
        window_samples: int,
        hop_samples: int,
        batch_size: int,
        silence_db: float,
        adaptation: RunningAdaptation | None = None,
        eager: bool = False,
        partials: bool = False,
        score: Callable[[WindowJob], np.ndarray] | None = None,
    ) -> None:
        self.backend, self.segmenter = backend, segmenter
        self.window_samples, self.hop_samples = window_samples, hop_samples
        self.batch_size = batch_size
        self.silence_db, self.adaptation = silence_db, adaptation
        self.eager, self.partials = eager, partials
        self.score = score or (lambda job: score_jobs(backend, [job])[0])
        self._rate = backend.sample_rate
        self._min_samples = round(MIN_SECONDS * backend.sample_rate)
        self._audio = HeldAudio() if segmenter is None else None  # all one stretch: its audio
        self._plan: _WindowPlan | None = None  # windows of the speech stretch being heard
        self._pending: list[_Pending] = []  # in recording order
        self._heard, self._partial_at = 0, 0  # the open speech heard so far; at the last partial
        self._take: Callable[[int, int], np.ndarray] | None = None  # the open speech's audio
        self._sums = np.zeros(len(backend.labels))  # the stretch's answers, weighted by length
        self._covered = 0.0

    @classmethod
    def create(
        cls,
        backend: Backend,
        segmenter: SegmentingStream | None,
        *,
        window_seconds: float | None,
        hop_seconds: float | None,
        adapt: bool | None,
        **options,
    ) -> TimelineEngine:
        """An engine with windows of ``window_seconds`` every ``hop_seconds`` (None: the model's
        evaluation windows) that adapts to its recording when ``adapt`` says so (None: when the
        model was trained with each speaker standardised by their own statistics, its file
        saying ``normalised_per: speaker``; torch backend)."""  # fmt: skip
        rate = backend.sample_rate
        window = backend.window_seconds if window_seconds is None else window_seconds
        hop = backend.hop_seconds if hop_seconds is None else hop_seconds
        window_samples, hop_samples = round(window * rate), round(hop * rate)
        if not 0 < hop_samples <= window_samples:
            raise ValueError(f"need 0 < hop <= window, got window={window}, hop={hop}")
        if adapt and not backend.can_adapt:
            raise BackendUnsupported("a recording adapts with the torch backend only (not ONNX)")
        if adapt is None:
            adapt = backend.can_adapt and backend.normalised_per == "speaker"
        adaptation = RunningAdaptation(backend.pipeline) if adapt else None
        return cls(backend, segmenter, window_samples=window_samples, hop_samples=hop_samples,
                   adaptation=adaptation, **options)  # fmt: skip

    @property
    def samples(self) -> int:
        """Samples fed so far."""
        return self._audio.end if self.segmenter is None else self.segmenter.samples

    def feed(self, block: np.ndarray) -> list[StreamEvent]:
        """Add mono float32 ``block`` (samples,) at the model's rate; the events it decided."""
        events: list[StreamEvent] = []
        if self.segmenter is None:
            self._audio.append(np.asarray(block, np.float32))
            end = self._audio.end
            events += self._speech(0, end, end, self._audio.take)
            self._audio.drop_before(min(self._plan.next_start, end - self.window_samples))
        else:
            for stretch in self.segmenter.feed(block):
                events += self._stretch(stretch)
            if (heard := self.segmenter.open_speech()) is not None:
                events += self._speech(*heard, self.segmenter.take)
        if self.eager:
            events += self._flush(self._peek() if self.partials else None)
        return events

    def finish(self) -> list[StreamEvent]:
        """The events left once the audio has ended."""
        events: list[StreamEvent] = []
        if self.segmenter is None:
            end = self._audio.end
            if end:
                events += self._stretch(Stretch(0, end, True, None))
        else:
            for stretch in self.segmenter.finish():
                events += self._stretch(stretch)
        return events + self._flush()

    def _speech(self, start: int, reach: int, heard: int, take: Callable) -> list[StreamEvent]:
        """The windows of the speech stretch from ``start`` made final by its reaching
        ``reach`` (``heard``: so far, if it goes on), their audio from ``take(start, end)``."""
        if self._plan is None:
            self._plan = _WindowPlan(start, self.window_samples, self.hop_samples)
            self._pending.append(_Pending("speech_start", start, start, None, None))
            self._partial_at = start
        self._heard, self._take = heard, take
        events = []
        for lo, hi, a, b in self._plan.ready(reach):
            events += self._window(lo, hi, a, take(a, b))
        return events

    def _stretch(self, stretch: Stretch) -> list[StreamEvent]:
        """A finished stretch: "no speech", or the rest of a speech stretch's windows."""
        if not stretch.speech:
            return self._add("segment", stretch.start, stretch.end, None, "no speech detected")
        if self._plan is None or self._plan.start != stretch.start:
            self._plan = _WindowPlan(stretch.start, self.window_samples, self.hop_samples)
            self._pending.append(_Pending("speech_start", stretch.start, stretch.start, None, None))
        events = []
        for lo, hi, a, b in self._plan.close(stretch.end):
            if stretch.samples is None:
                samples = self._audio.take(a, b)
            else:
                samples = stretch.samples[a - stretch.start : b - stretch.start]
            events += self._window(lo, hi, a, samples)
        self._plan = None
        self._pending.append(_Pending("speech_end", stretch.end, stretch.end, None, None))
        return events

    def _window(self, lo: float, hi: float, start: int, samples: np.ndarray) -> list:
        """A window (audio from sample ``start``) whose answer covers ``[lo, hi)``."""
        if level_db(samples[round(lo) - start : round(hi) - start]) < self.silence_db:
            return self._add("segment", lo, hi, None, f"silent (below {self.silence_db:g} dBFS)")
        return self._add("segment", lo, hi, prepare(samples, self._min_samples), None)

    def _add(self, kind: str, lo: float, hi: float, wave, reason: str | None) -> list:
        self._pending.append(_Pending(kind, lo, hi, wave, reason))
        waiting = sum(item.wave is not None for item in self._pending)
        if kind == "segment" and (wave is None or waiting >= self.batch_size):
            return self._flush()
        return []

    def _peek(self) -> np.ndarray | None:
        """The open speech's latest window's worth, prepared, once another hop of it was heard
        since the last partial (None otherwise, or when it is silent)."""
        plan, heard = self._plan, self._heard
        if plan is None or heard - self._partial_at < self.hop_samples:
            return None
        self._partial_at = heard
        start = max(plan.start, heard - self.window_samples)
        samples = self._take(start, heard)
        if level_db(samples) < self.silence_db:
            return None
        return prepare(samples, self._min_samples)

    def _flush(self, peek: np.ndarray | None = None) -> list[StreamEvent]:
        """Answer the windows waiting (and ``peek``, for a partial); every pending item becomes
        its event, in order."""
        spoken = [(hi - lo, w) for _, lo, hi, w, _ in self._pending if w is not None]
        windows = [w for _, w in spoken] + ([] if peek is None else [peek])
        job = WindowJob(windows)
        if self.adaptation is not None and windows:  # a window adds the share its segment
            job.adaptation = self.adaptation  # covers; the peek adds nothing
            job.weights = np.array([min(1.0, span / w.size) for span, w in spoken]
                                   + [0.0] * (peek is not None))  # fmt: skip
        probabilities = iter(self.score(job) if windows else ())
        events, rate = [], self._rate
        for kind, lo, hi, wave, reason in self._pending:
            if kind != "segment":
                self._sums[:], self._covered = 0.0, 0.0
                events.append(StreamEvent(kind, lo / rate, hi / rate))
            elif wave is None:
                events.append(StreamEvent("segment", lo / rate, hi / rate, NO_SPEECH, {}, True,
                                          reason))  # fmt: skip
            else:
                probs = next(probabilities)
                self._sums += probs * (hi - lo)
                self._covered += hi - lo
                events.append(StreamEvent("segment", lo / rate, hi / rate, silent=False,
                                          **labelled(self.backend.labels, probs)))  # fmt: skip
        if peek is not None:  # the final segments so far, the rest as the latest window says
            rest = max(0.0, self._heard - self._plan.lo)
            probs = (self._sums + next(probabilities) * rest) / (self._covered + rest)
            events.append(StreamEvent("partial", self._plan.start / rate, self._heard / rate,
                                      silent=False, **labelled(self.backend.labels, probs)))
        self._pending.clear()
        return events


def timeline_segments(
    engine: TimelineEngine, blocks: Iterable[np.ndarray], path: str | os.PathLike
) -> Iterator[Segment]:
    """The timeline's segments of the audio ``blocks`` of ``path`` pushed through ``engine``.

    Raises:
        AudioError: no audio at all (possible only if resampling left no samples).
    """

    def events() -> Iterator[StreamEvent]:
        for block in blocks:
            yield from engine.feed(block)
        yield from engine.finish()

    analysed = False
    for event in events():
        if event.type == "segment":
            analysed = True
            yield event.segment
    if not analysed:
        raise AudioError(path, "too short to analyse")
