"""Speech regions from Silero VAD probabilities (:mod:`emofuse.signal.vad`), whole or streamed.

:func:`speech_regions` turns probabilities into speech regions with the hysteresis of silero's
``get_speech_timestamps``; :class:`SpeechSegmenter` does the same over a stream of audio blocks in
bounded memory.

>>> probs = np.array([0.1] * 5 + [0.9] * 20 + [0.1] * 10, dtype=np.float32)
>>> speech_regions(probs, n_samples=35 * CHUNK)
[(2080, 13280)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from emofuse.signal.vad import CHUNK, SAMPLE_RATE, SpeechDetector, VADStream, _mono

__all__ = ["VADSettings", "speech_regions", "Stretch", "SpeechSegmenter", "SegmentingStream",
           "HeldAudio"]  # fmt: skip

Scorer = Callable[[VADStream, np.ndarray], np.ndarray]  # (stream, block) -> its chunks' scores
_MIN_SILENCE_AT_MAX_SPEECH = 0.098  # seconds; silero's ``min_silence_at_max_speech`` (98 ms)


# ---------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class VADSettings:
    """Hysteresis of :func:`speech_regions`; the defaults are silero's ``get_speech_timestamps``
    except ``max_speech_seconds`` (infinite there).

    Args:
        threshold: a chunk with probability >= this starts (or continues) speech.
        neg_threshold: inside speech, a chunk below this is silence; default
            ``max(threshold - 0.15, 0.01)``.
        min_speech_seconds: shorter speech is dropped (not at a ``max_speech_seconds`` split).
        min_silence_seconds: silence inside speech must last this long to end it.
        pad_seconds: each region grows by this much each side (by half the gap where two
            regions are closer than twice this).
        max_speech_seconds: longer speech is split, at the longest silence over 98 ms inside it,
            else cut hard; a padded region is at most this long. ``math.inf`` for never.
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_seconds: float = 0.25
    min_silence_seconds: float = 0.1
    pad_seconds: float = 0.03
    max_speech_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ValueError(
                f"neg_threshold must be in [0, threshold={self.threshold}], "
                f"got {self.neg_threshold}"
            )
        for name in ("min_speech_seconds", "min_silence_seconds", "pad_seconds"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        shortest = (CHUNK + 2 * SAMPLE_RATE * self.pad_seconds) / SAMPLE_RATE
        if not self.max_speech_seconds > shortest:
            raise ValueError(
                f"max_speech_seconds must exceed one chunk plus twice pad_seconds "
                f"({shortest:.3f} s), got {self.max_speech_seconds}"
            )

    @property
    def negative(self) -> float:
        """The effective ``neg_threshold``."""
        if self.neg_threshold is not None:
            return self.neg_threshold
        return max(self.threshold - 0.15, 0.01)


class _Hysteresis:
    """silero's ``get_speech_timestamps_from_probs`` loop (``use_max_poss_sil_at_max_speech``),
    one probability at a time: emits unpadded ``(start, end)`` speech as soon as it is final."""

    def __init__(self, settings: VADSettings) -> None:
        rate = SAMPLE_RATE
        self.threshold, self.negative = settings.threshold, settings.negative
        self.min_speech = rate * settings.min_speech_seconds
        self.min_silence = rate * settings.min_silence_seconds
        pad = rate * settings.pad_seconds
        self.max_speech = rate * settings.max_speech_seconds - CHUNK - 2 * pad
        self.min_silence_at_max = rate * _MIN_SILENCE_AT_MAX_SPEECH
        self.index = 0  # chunks seen
        self.start: int | None = None  # start of the open speech (silero: ``triggered``)
        self.temp_end = 0
        self.possible_ends: list[tuple[int, int]] = []

    def push(self, prob: float) -> list[tuple[int, int]]:
        """Consume the next chunk's probability; returns the speech it finalised (0 to 1)."""
        sample = CHUNK * self.index
        self.index += 1
        out: list[tuple[int, int]] = []
        if prob >= self.threshold and self.temp_end:
            silence = sample - self.temp_end
            if silence > self.min_silence_at_max:
                self.possible_ends.append((self.temp_end, silence))
            self.temp_end = 0
        if prob >= self.threshold and self.start is None:
            self.start = sample
            return out
        if self.start is not None and sample - self.start > self.max_speech:
            if self.possible_ends:  # split at the longest silence inside the speech
                end, silence = max(self.possible_ends, key=lambda item: item[1])
                out.append((self.start, end))
                resume = end + silence
                self.start = resume if resume < end + sample else None
                self.temp_end = 0
                self.possible_ends = []
            else:  # hard cut here
                out.append((self.start, sample))
                self.start, self.temp_end, self.possible_ends = None, 0, []
                return out
        if prob < self.negative and self.start is not None:
            if not self.temp_end:
                self.temp_end = sample
            if sample - self.temp_end < self.min_silence:
                return out
            if self.temp_end - self.start > self.min_speech:
                out.append((self.start, self.temp_end))
            self.start, self.temp_end, self.possible_ends = None, 0, []
        return out

    def finish(self, n_samples: int) -> list[tuple[int, int]]:
        """The open speech, if long enough, ending at ``n_samples``."""
        if self.start is not None and n_samples - self.start > self.min_speech:
            return [(self.start, n_samples)]
        return []

    def kept_start(self) -> int | None:
        """The start of the open speech once it is sure to be kept (longer than
        ``min_speech`` with no silence since it began), else None."""
        if self.start is None or self.temp_end or self.possible_ends:
            return None
        return self.start if CHUNK * self.index - self.start > self.min_speech else None

    def sure_end(self) -> int:
        """The open speech reaches at least this sample and is split nowhere before it (a
        split at ``max_speech`` falls on one of its pauses over 98 ms, unknown until then)."""
        end = self.temp_end or CHUNK * self.index
        if math.isinf(self.max_speech):
            return end
        return min([end, *(possible for possible, _ in self.possible_ends)])

    def earliest_start(self) -> int:
        """No speech finalised later can start before this sample."""
        return self.start if self.start is not None else CHUNK * self.index


def _padded_start(start: int, previous_end: int | None, pad: float) -> int:
    """Padded start of unpadded speech ``start``, the unpadded speech before ending at
    ``previous_end`` (None for the first)."""
    if previous_end is not None and start - previous_end < 2 * pad:
        return start - (start - previous_end) // 2
    return int(max(0, start - pad))


def _padded_end(end: int, next_start: int | None, n_samples: int, pad: float) -> int:
    """Padded end of unpadded speech ending at ``end``, the next starting at ``next_start``
    (None for the last)."""
    if next_start is not None and next_start - end < 2 * pad:
        return end + (next_start - end) // 2
    return int(min(n_samples, end + pad))


def speech_regions(
    probs: np.ndarray, n_samples: int, settings: VADSettings = VADSettings()
) -> list[tuple[int, int]]:
    """Speech regions ``[(start, end)]`` in samples from per-chunk speech probabilities.

    The hysteresis of silero's ``get_speech_timestamps``: speech starts at a chunk >=
    ``threshold`` and ends after ``min_silence_seconds`` below ``neg_threshold``; speech shorter
    than ``min_speech_seconds`` is dropped, longer than ``max_speech_seconds`` split; regions are
    padded by ``pad_seconds``. Sorted, non-overlapping, within ``[0, n_samples]``.

    Args:
        probs: (chunks,) probabilities of the 512-sample chunks of the wave.
        n_samples: the wave's length, ``ceil(n_samples / 512) == chunks``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 1 or -(-n_samples // CHUNK) != probs.size:
        raise ValueError(
            f"expected ceil(n_samples / {CHUNK}) = {-(-n_samples // CHUNK)} probabilities "
            f"(chunks,), got shape {probs.shape}"
        )
    hysteresis = _Hysteresis(settings)
    raw = [speech for prob in probs.tolist() for speech in hysteresis.push(prob)]
    raw += hysteresis.finish(n_samples)
    pad = SAMPLE_RATE * settings.pad_seconds
    regions = []
    for i, (start, end) in enumerate(raw):
        previous_end = raw[i - 1][1] if i else None
        next_start = raw[i + 1][0] if i + 1 < len(raw) else None
        regions.append(
            (_padded_start(start, previous_end, pad), _padded_end(end, next_start, n_samples, pad))
        )
    return regions


# ---------------------------------------------------------------------------- segmenter


@dataclass(frozen=True)
class Stretch:
    """A stretch ``[start, end)`` of a stream, in samples: speech (with its audio) or not."""

    start: int
    end: int
    speech: bool
    samples: np.ndarray | None  # (end - start,) float32 for speech; None otherwise


class HeldAudio:
    """A stream's recent audio as a queue of blocks, addressed by absolute sample."""

    def __init__(self) -> None:
        self.blocks: deque[tuple[int, np.ndarray]] = deque()
        self.end = 0

    def append(self, block: np.ndarray) -> None:
        if block.size:
            self.blocks.append((self.end, block))
            self.end += block.size

    def drop_before(self, sample: int) -> None:
        while self.blocks and self.blocks[0][0] + self.blocks[0][1].size <= sample:
            self.blocks.popleft()
        if self.blocks and self.blocks[0][0] < sample:  # trim (and copy) a straddling block
            first, block = self.blocks.popleft()
            self.blocks.appendleft((sample, block[sample - first :].copy()))

    def take(self, start: int, end: int) -> np.ndarray:
        parts = [
            block[max(0, start - first) : max(0, end - first)]
            for first, block in self.blocks
            if first < end and first + block.size > start
        ]
        out = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if out.size != end - start:
            raise RuntimeError(f"audio [{start}, {end}) is no longer held")  # a bug, not input
        return out


class SpeechSegmenter:
    """Split a stream of audio blocks into speech and non-speech stretches, in bounded memory.

    The speech stretches are :func:`speech_regions` of the whole file's probabilities, found on
    the fly; the audio held is that of the open speech (at most ``max_speech_seconds``, twice
    that while the padding between two close regions is undecided) plus under a second.
    """

    def __init__(self, detector: SpeechDetector, settings: VADSettings = VADSettings()) -> None:
        self.detector = detector
        self.settings = settings

    def split(self, blocks: Iterable[np.ndarray]) -> Iterator[Stretch]:
        """Stretches tiling ``[0, total samples)`` of mono float 16 kHz ``blocks`` (any sizes).

        Speech stretches carry their audio and last at most ``max_speech_seconds``; the
        non-speech between them is one stretch without audio, yielded as soon as the speech
        after it is sure (``min_speech_seconds`` in), not when that speech ends.
        """
        stream = self.stream()
        for block in blocks:
            yield from stream.feed(block)
        yield from stream.finish()

    def stream(self, probabilities: Scorer | None = None) -> SegmentingStream:
        """The same, pushed one block at a time (:class:`SegmentingStream`)."""
        return SegmentingStream(self.detector, self.settings, probabilities)


class SegmentingStream:
    """:meth:`SpeechSegmenter.split` one block at a time: :meth:`feed` returns the stretches
    that block made final, :meth:`finish` the rest; :meth:`open_speech` tells how far the
    speech being heard is already sure to reach (what a live stream answers before it ends).

    ``probabilities(vad_stream, block)``: how a block's speech probabilities are computed
    (default :meth:`VADStream.feed`; a service batches its streams' with
    :func:`~emofuse.signal.vad.feed_streams`).
    """

    def __init__(
        self, detector: SpeechDetector, settings: VADSettings = VADSettings(),
        probabilities: Scorer | None = None,
    ) -> None:  # fmt: skip
        self._vad = detector.stream()
        self._probabilities = probabilities or VADStream.feed
        self._hysteresis = _Hysteresis(settings)
        self._pad = SAMPLE_RATE * settings.pad_seconds
        self._audio = HeldAudio()
        self._pending: list[tuple[int, int]] = []  # final unpadded speech, padding undecided
        self._done = 0  # end of the last stretch given
        self._last_end: int | None = None  # unpadded end of the last speech given

    @property
    def samples(self) -> int:
        """Samples fed so far."""
        return self._audio.end

    def _emit(self, next_start: int | None, n_samples: int) -> list[Stretch]:
        start, end = self._pending.pop(0)
        begin = _padded_start(start, self._last_end, self._pad)
        finish = _padded_end(end, next_start, n_samples, self._pad)
        out = [Stretch(self._done, begin, False, None)] if begin > self._done else []
        out.append(Stretch(begin, finish, True, self._audio.take(begin, finish)))
        self._done, self._last_end = finish, end
        return out

    def feed(self, block: np.ndarray) -> list[Stretch]:
        """Add mono float 16 kHz ``block`` (samples,); the stretches now final, in order."""
        block, hysteresis, pending, out = _mono(block), self._hysteresis, self._pending, []
        self._audio.append(block)
        for prob in self._probabilities(self._vad, block).tolist():
            pending += hysteresis.push(prob)
            while len(pending) > 1:
                out += self._emit(pending[1][0], self._audio.end)
            if pending:  # alone: decided once no speech can start within 2 * pad
                horizon = pending[0][1] + 2 * self._pad
                seen = CHUNK * hysteresis.index
                if seen >= horizon and hysteresis.earliest_start() >= horizon:
                    out += self._emit(None, self._audio.end)
            elif (start := hysteresis.kept_start()) is not None:  # the silence before it
                begin = _padded_start(start, self._last_end, self._pad)  # is over: say so now
                if begin > self._done:
                    out.append(Stretch(self._done, begin, False, None))
                    self._done = begin
        earliest = pending[0][0] if pending else hysteresis.earliest_start()
        self._audio.drop_before(max(self._done, earliest - math.ceil(self._pad)))
        return out

    def finish(self) -> list[Stretch]:
        """The stretches left once the stream has ended, up to its last sample."""
        n_samples, hysteresis, pending = self._vad.samples, self._hysteresis, self._pending
        for prob in self._vad.finish().tolist():
            pending += hysteresis.push(prob)
        pending += hysteresis.finish(n_samples)
        out = []
        while pending:
            out += self._emit(pending[1][0] if len(pending) > 1 else None, n_samples)
        if n_samples > self._done:
            out.append(Stretch(self._done, n_samples, False, None))
        return out

    def open_speech(self) -> tuple[int, int, int] | None:
        """(start, reach, heard) in samples of the speech being heard once it is sure to be
        kept: its stretch starts at ``start`` and is neither ended nor split before ``reach``,
        whatever comes next; ``heard``: how far it goes so far. None while there is none (or
        the stretch before it is undecided)."""
        hysteresis = self._hysteresis
        if self._pending or hysteresis.start is None:
            return None
        reach = hysteresis.sure_end()
        if reach - hysteresis.start <= hysteresis.min_speech:
            return None
        heard = hysteresis.temp_end or CHUNK * hysteresis.index
        return _padded_start(hysteresis.start, self._last_end, self._pad), reach, heard

    def take(self, start: int, end: int) -> np.ndarray:
        """The audio ``[start, end)`` of the open speech (held until its stretch is given)."""
        return self._audio.take(start, end)
