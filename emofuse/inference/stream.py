"""The emotion of a live stream as it is spoken (:meth:`EmotionRecognizer.stream`): audio
chunks of any size, rate and sample format in; speech starts, partial answers, the timeline's
segments and speech ends out, each as soon as the audio heard decides it.

>>> import numpy as np
>>> from emofuse.testing import synthetic_voice, tiny_pipeline
>>> from emofuse.inference.recognizer import EmotionRecognizer, TorchBackend
>>> recognizer = EmotionRecognizer(TorchBackend(tiny_pipeline(), device="cpu"), vad=False)
>>> stream = recognizer.stream(sample_rate=8000)
>>> audio = (synthetic_voice(4.0, sample_rate=8000) * 32767).astype(np.int16)
>>> events = [e for chunk in np.array_split(audio, 40) for e in stream.feed(chunk)]
>>> events += stream.close()
>>> sorted({e.type for e in events}), events[-1].type, events[-1].end
(['partial', 'segment', 'speech_end', 'speech_start'], 'speech_end', 4.0)
"""

from __future__ import annotations

import numpy as np
import soxr

from emofuse.inference.results import StreamEvent, restricted
from emofuse.inference.timeline import TimelineEngine
from emofuse.inference.windows import as_mono
from emofuse.signal.audio import check_sample_rate

__all__ = ["EmotionStream", "PCM_FORMATS", "decode_pcm"]

PCM_FORMATS = {"pcm_s16le": np.dtype("<i2"), "s16le": np.dtype("<i2"),
               "f32le": np.dtype("<f4"), "pcm_f32le": np.dtype("<f4")}  # fmt: skip


def decode_pcm(data: bytes, pcm_format: str) -> np.ndarray:
    """Raw little-endian mono PCM (``pcm_s16le``/``s16le`` or ``f32le``/``pcm_f32le``) ->
    its samples (n,), int16 or float32.

    Raises:
        ValueError: an unknown format, or a byte count that is not whole samples.
    """
    if pcm_format not in PCM_FORMATS:
        raise ValueError(f"unknown PCM format {pcm_format!r}; expected one of "
                         f"{', '.join(PCM_FORMATS)}")  # fmt: skip
    dtype = PCM_FORMATS[pcm_format]
    if len(data) % dtype.itemsize:
        raise ValueError(f"{len(data)} bytes is not a whole number of {pcm_format} samples "
                         f"({dtype.itemsize} bytes each)")  # fmt: skip
    return np.frombuffer(data, dtype)


class EmotionStream:
    """One live recording: :meth:`feed` chunks as they come, :meth:`close` at its end; both
    return the :class:`~emofuse.inference.results.StreamEvent` s the audio decided, in order.

    The ``segment`` events equal :meth:`EmotionRecognizer.timeline` of the whole recording
    (a window is answered once the speech reaches past the next window). ``sample_rate``: 8 to
    192 kHz (:func:`~emofuse.signal.audio.check_sample_rate`); another rate than the model's is
    resampled as it comes (soxr, as files are). Memory is bounded
    whatever the length: the open speech stretch (at most ``max_speech_seconds``) and a few
    windows. ``labels``: the model's labels its segments and partials are answered over
    (:func:`~emofuse.inference.results.restricted`; None: all).
    """

    def __init__(
        self, engine: TimelineEngine, sample_rate: int, *, labels: tuple[str, ...] | None = None
    ) -> None:
        self.engine, self.labels = engine, labels
        self.sample_rate = rate = check_sample_rate(sample_rate)
        model_rate = engine.backend.sample_rate
        self._resampler = (None if rate == model_rate else
                           soxr.ResampleStream(rate, model_rate, 1, dtype="float32",
                                               quality="HQ"))  # fmt: skip
        self.closed = False

    @property
    def seconds(self) -> float:
        """Audio fed so far, in seconds."""
        return self.engine.samples / self.engine.backend.sample_rate

    def feed(self, chunk: np.ndarray) -> list[StreamEvent]:
        """Add ``chunk`` (samples,) or (samples, channels) at ``sample_rate``: signed integer
        or uint8 PCM, or float in [-1, 1] (converted by :func:`~emofuse.inference.windows.as_mono`
        as a chunk); any size, empty included.

        Raises:
            ValueError: a bad chunk (shape, dtype, NaN), or a stream already closed.
        """
        if self.closed:
            raise ValueError("this stream is closed; start a new one")
        samples = as_mono(chunk, chunk=True)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self._answered(self.engine.feed(samples))

    def close(self) -> list[StreamEvent]:
        """The events left at the end of the recording (its last segments, ``speech_end``)."""
        if self.closed:
            raise ValueError("this stream is already closed")
        self.closed = True
        events = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            events += self.engine.feed(tail)
        return self._answered(events + self.engine.finish())

    def _answered(self, events: list[StreamEvent]) -> list[StreamEvent]:
        """``events`` over :attr:`labels` only."""
        return [restricted(event, self.labels) for event in events]
