"""Emotion of audio files and arrays with a trained model: the library behind ``emofuse predict``.

Every input goes through the same steps as the training-time evaluation: the mono waveform is
cut into the model's evaluation windows (stored in its file; 3 s every 1.5 s by default; the
last window ends at the end; a clip no longer than a window is one window), each window's
mean is subtracted (DC offset removed) and a window shorter than 0.5 s is tiled up to 0.5 s,
and the window probabilities are averaged.

Only speech gets an emotion. A clip whose RMS is below ``silence_db`` dBFS, or in which the voice
activity detector (:mod:`emofuse.signal.vad`, Silero VAD) finds no speech (noise, hum, clicks,
music), is answered ``label="no speech"`` with no probabilities and a ``reason``. Timelines cut
the file at speech boundaries: stretches without speech are single "no speech" segments.

The model sits behind :class:`Backend`: :class:`TorchBackend` runs an
:class:`~emofuse.pipeline.EmotionPipeline`; :class:`emofuse.inference.onnx.OnnxBackend` runs an
exported ONNX file.

>>> import numpy as np
>>> from emofuse.testing import synthetic_voice, tiny_pipeline
>>> recognizer = EmotionRecognizer(TorchBackend(tiny_pipeline(), device="cpu"), vad=False)
>>> prediction = recognizer.predict(synthetic_voice(1.0), sample_rate=16000)
>>> prediction.label in recognizer.labels, round(sum(prediction.probabilities.values()), 4)
(True, 1.0)
>>> recognizer.predict(np.zeros(8000), sample_rate=16000).reason
'silent (below -60 dBFS)'

(``vad=False`` here: the synthetic voice is not speech to the voice activity detector.)
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch

from emofuse.device import resolve_device
from emofuse.inference.prefetch import prefetch
from emofuse.pipeline import EmotionPipeline, load_model
from emofuse.pipeline.modelfile import BUNDLED_MODELS
from emofuse.signal.audio import AudioError, iter_blocks, level_db, load_audio, resample
from emofuse.signal.vad import SAMPLE_RATE as VAD_RATE
from emofuse.signal.vad import SpeechDetector, SpeechSegmenter, VADSettings, speech_regions

__all__ = [
    "Backend",
    "TorchBackend",
    "EmotionRecognizer",
    "Prediction",
    "Segment",
    "NO_SPEECH",
]

NO_SPEECH = "no speech"
MIN_SECONDS = 0.5
BATCH_SECONDS = 48.0  # audio per forward pass by default
PREFETCH_FILES = 32  # files read (and checked for speech) ahead of the model


class Backend(Protocol):
    """What runs the model: padded mono waveforms at ``sample_rate`` -> class probabilities.

    ``window_seconds`` / ``hop_seconds``: the evaluation windows the model was validated with.
    """

    labels: tuple[str, ...]
    sample_rate: int
    window_seconds: float
    hop_seconds: float

    def probabilities(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """float32 (B, S) zero-padded waveforms, int64 (B,) lengths -> softmax (B, C)."""
        ...


class TorchBackend:
    """An :class:`EmotionPipeline` (moved to ``device``; ``auto``: CUDA when present)."""

    def __init__(self, pipeline: EmotionPipeline, device: str = "auto") -> None:
        self.device = resolve_device(device)
        self.pipeline = pipeline.to(self.device).eval()
        self.labels = tuple(pipeline.labels)
        self.sample_rate = pipeline.sample_rate
        self.window_seconds = pipeline.windows.window_seconds
        self.hop_seconds = pipeline.windows.hop_seconds

    def probabilities(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.pipeline(
                torch.from_numpy(waveforms).to(self.device),
                torch.from_numpy(lengths).to(self.device),
            )  # (B, C)
            return logits.softmax(dim=1).cpu().numpy()

    def embeddings(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """float32 (B, S) zero-padded waveforms, (B,) lengths -> pooled representations (B, E)."""
        with torch.inference_mode():
            pooled = self.pipeline.embed(
                torch.from_numpy(waveforms).to(self.device),
                torch.from_numpy(lengths).to(self.device),
            )  # (B, E)
            return pooled.float().cpu().numpy()


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


def _windows(
    blocks: Iterable[np.ndarray], window: int, hop: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, samples (<= window,)) of windows over a stream of mono blocks.

    Windows start every ``hop`` samples from 0, plus one ending at the end if the last one
    does not; a stream of at most ``window`` samples is one window
    (as :func:`emofuse.training.batches.windows` cuts frames).
    Only the last ``window`` samples are carried from one block to the next.
    """
    buffer, offset, start, covered = np.zeros(0, np.float32), 0, 0, 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while start + window <= offset + buffer.size:
            yield start, buffer[start - offset : start - offset + window].copy()
            covered, start = start + window, start + hop
        drop = max(0, buffer.size - window)
        buffer, offset = buffer[drop:].copy(), offset + drop  # not a view of the block
    total = offset + buffer.size
    if covered < total:
        yield max(0, total - window), buffer[max(0, total - window) - offset :].copy()


def _prepare(window: np.ndarray, min_samples: int) -> np.ndarray:
    """Subtract the mean, then tile a window shorter than ``min_samples`` up to it."""
    window = (window - window.mean(dtype=np.float64)).astype(np.float32)
    if window.size < min_samples:
        window = np.tile(window, math.ceil(min_samples / window.size))[:min_samples]
    return window


def _padded(windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Windows of any lengths -> zero-padded float32 (N, S) and int64 lengths (N,)."""
    lengths = np.array([w.size for w in windows], dtype=np.int64)
    batch = np.zeros((len(windows), int(lengths.max())), np.float32)  # (N, S)
    for row, w in zip(batch, windows, strict=True):
        row[: w.size] = w
    return batch, lengths


def _as_mono(audio: np.ndarray) -> np.ndarray:
    """(samples,) or (samples, channels) array, float or integer PCM -> float32 (samples,)."""
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.size == 0:
        raise ValueError(f"audio must be a non-empty (samples,) or (samples, channels) array, "
                         f"got shape {audio.shape}")  # fmt: skip
    if audio.ndim == 2 and audio.shape[1] > audio.shape[0]:
        raise ValueError(f"2-D audio must be (samples, channels), got shape {audio.shape}; "
                         "transpose it")  # fmt: skip
    if np.issubdtype(audio.dtype, np.integer):  # PCM, scaled as soundfile does
        audio = audio / -float(np.iinfo(audio.dtype).min)
    elif not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be a float or integer array, got dtype {audio.dtype}")
    wave = audio.mean(axis=1) if audio.ndim == 2 else audio
    if not np.isfinite(wave).all():
        raise ValueError("audio contains non-finite samples (NaN or infinity)")
    return wave.astype(np.float32)


@dataclass
class _Pending:
    """A clip on its way through the model: its windows' probabilities summed so far."""

    index: int
    duration: float
    source: str | None
    reason: str | None  # why it gets no emotion; None: it has windows
    total: np.ndarray | None = None  # (C,)
    windows: int = 0
    left: int = 0  # windows not yet through the model


class EmotionRecognizer:
    """Predictions for clips, batches of files and long recordings from one :class:`Backend`.

    ``vad``: True (default) loads Silero VAD (:class:`~emofuse.signal.vad.SpeechDetector`);
    False tells only silence (below ``silence_db``) from sound; or pass a detector of your own.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        silence_db: float = -60.0,
        vad: bool | SpeechDetector = True,
        vad_settings: VADSettings | None = None,
    ) -> None:
        self.backend = backend
        self.silence_db = silence_db
        self._min_samples = round(MIN_SECONDS * backend.sample_rate)
        if vad is True:
            vad = SpeechDetector.load()
        if vad and backend.sample_rate != VAD_RATE:
            raise ValueError(f"voice activity detection needs a {VAD_RATE} Hz model; this one "
                             f"runs at {backend.sample_rate} Hz: pass vad=False")  # fmt: skip
        self.vad: SpeechDetector | None = vad or None
        self.vad_settings = vad_settings or VADSettings()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = "accurate",
        *,
        backend: str = "auto",
        device: str = "auto",
        threads: int | None = None,
        silence_db: float = -60.0,
        vad: bool = True,
    ) -> EmotionRecognizer:
        """A bundled model (``"accurate"``, the default, or ``"fast"``), a model file, or an
        exported ``.onnx`` file. ``backend``: ``auto`` (onnx for a ``.onnx`` path, else torch),
        ``torch`` or ``onnx``. ``threads``: onnxruntime's threads (for torch, set
        ``torch.set_num_threads``).

        Nothing is fetched: the bundled models are package data (``emofuse/pretrained/``).

        Raises:
            ModelFileError: no such or no valid model file, or no bundled model installed.
        """
        onnx_file = str(path).lower().endswith(".onnx")
        if backend == "auto":
            backend = "onnx" if onnx_file else "torch"
        if backend == "onnx":
            if path is None or str(path) in BUNDLED_MODELS:
                raise ValueError("backend 'onnx' needs the path of an exported .onnx file")
            if device not in ("auto", "cpu"):
                raise ValueError("the onnx backend runs on the CPU; device applies to torch")
            from emofuse.inference.onnx import OnnxBackend

            return cls(OnnxBackend(path, num_threads=threads), silence_db=silence_db, vad=vad)
        if backend != "torch":
            raise ValueError(f"unknown backend {backend!r}; expected auto, torch or onnx")
        if onnx_file:
            raise ValueError(f"{path} is an ONNX export: load it with backend 'onnx' or 'auto'")
        return cls(TorchBackend(load_model(path), device), silence_db=silence_db, vad=vad)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.backend.labels

    @property
    def sample_rate(self) -> int:
        return self.backend.sample_rate

    def predict(
        self, audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None
    ) -> Prediction:
        """The emotion of a file, or of an array (samples,) or (samples, channels).

        Raises:
            AudioError: an unreadable file. ValueError: a bad array or a missing ``sample_rate``.
        """
        wave, source = self._wave(audio, sample_rate)
        item = (0, wave, source, self.no_speech_reason(wave))
        ((_, prediction),) = self._stream_waves([item], self._batch_size(None))
        return prediction

    def predict_many(
        self,
        items: Sequence[str | os.PathLike],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
    ) -> list[Prediction | None]:
        """Predictions for files, in order (:meth:`iter_predictions` collected); None for a
        file that could not be read."""
        results: list[Prediction | None] = [None] * len(items)
        for index, prediction in self.iter_predictions(
            items, batch_size=batch_size, progress=progress, on_error=on_error
        ):
            results[index] = prediction
        return results

    def iter_predictions(
        self,
        items: Sequence[str | os.PathLike],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
    ) -> Iterator[tuple[int, Prediction]]:
        """(index in ``items``, prediction) of each readable file, in order, each as soon as it
        is done; windows of several files share a forward pass.

        ``batch_size`` counts windows (default: about 48 s of audio per forward pass, 16 of
        the fast model's 3 s windows). A background thread reads the files, and checks them
        for speech, a few files ahead of the model. A file that cannot be read is passed to
        ``on_error(path, error)`` and skipped; the others still finish.
        """
        batch_size = self._batch_size(batch_size)

        def read(index: int, path: str | os.PathLike) -> tuple:
            try:
                wave = load_audio(path, self.sample_rate)
            except AudioError as error:
                return index, None, path, error
            return index, wave, str(path), self.no_speech_reason(wave)

        def readable(loaded: Iterable[tuple]) -> Iterator[tuple]:
            for index, wave, source, reason in loaded:
                if wave is not None:
                    yield index, wave, source, reason
                elif on_error is not None:
                    on_error(source, reason)

        loaded = prefetch(read, list(enumerate(items)), PREFETCH_FILES)
        if progress:
            from tqdm import tqdm

            loaded = tqdm(loaded, total=len(items), desc="predict", unit="file", leave=False)
        yield from self._stream_waves(readable(loaded), batch_size)

    def no_speech_reason(self, wave: np.ndarray) -> str | None:
        """Why a mono wave at the model's rate gets no emotion (None: it holds speech)."""
        if level_db(wave) < self.silence_db:
            return f"silent (below {self.silence_db:g} dBFS)"
        if self.vad is None:
            return None
        probs = self.vad.probabilities([wave])[0]
        if speech_regions(probs, wave.size, self.vad_settings):
            return None
        return (f"no speech detected (voice activity at most {probs.max(initial=0):.2f}, "
                f"threshold {self.vad_settings.threshold:g})")  # fmt: skip

    def _wave(
        self, audio: str | os.PathLike | np.ndarray, sample_rate: int | None
    ) -> tuple[np.ndarray, str | None]:
        """A file or an array -> mono wave at the model's rate, and its source (None: array)."""
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise ValueError("an audio array needs its sample_rate")
            return resample(_as_mono(audio), sample_rate, self.sample_rate), None
        if sample_rate is not None:
            raise ValueError("sample_rate is for arrays; a file's own rate is used")
        return load_audio(audio, self.sample_rate), str(audio)

    def _stream_waves(
        self, items: Iterable[tuple], batch_size: int
    ) -> Iterator[tuple[int, Prediction]]:
        """(index, mono wave, source, no-speech reason) items -> (index, prediction), in the
        items' order, each as soon as all its windows have been through the model."""
        rate = self.sample_rate
        window = round(self.backend.window_seconds * rate)
        hop = round(self.backend.hop_seconds * rate)
        pending: deque[_Pending] = deque()
        queue: list[tuple[_Pending, np.ndarray]] = []  # (its clip, prepared window)

        def run(batch: list[tuple[_Pending, np.ndarray]]) -> None:
            for (clip, _), probs in zip(batch, self._forward([w for _, w in batch]), strict=True):
                clip.total += probs
                clip.left -= 1

        def done() -> Iterator[tuple[int, Prediction]]:
            while pending and pending[0].left == 0:
                clip = pending.popleft()
                yield clip.index, self._prediction(clip)

        for index, wave, source, reason in items:
            clip = _Pending(index, wave.size / rate, source, reason)
            pending.append(clip)
            if reason is None:
                windows = [_prepare(w, self._min_samples) for _, w in _windows([wave], window, hop)]
                clip.total = np.zeros(len(self.labels))
                clip.windows = clip.left = len(windows)
                queue += [(clip, w) for w in windows]
                while len(queue) >= batch_size:
                    run(queue[:batch_size])
                    queue = queue[batch_size:]
            yield from done()
        run(queue)
        yield from done()

    def _prediction(self, clip: _Pending) -> Prediction:
        if clip.reason is not None:
            return Prediction(NO_SPEECH, {}, True, clip.duration, clip.source, clip.reason)
        return Prediction(silent=False, duration=clip.duration, source=clip.source,
                          **self._labelled(clip.total / clip.windows))  # fmt: skip

    def embed(
        self, audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None
    ) -> np.ndarray:
        """The pooled utterance representation the classifier reads (E,) float32, averaged over
        the evaluation windows (as :meth:`predict` averages probabilities), to train heads of
        your own on. Torch backend only.

        Raises:
            AudioError: an unreadable file. ValueError: a bad array or missing ``sample_rate``.
        """
        if not hasattr(self.backend, "embeddings"):
            raise ValueError("embeddings need the torch backend (a model file, not ONNX)")
        wave, _ = self._wave(audio, sample_rate)
        window = round(self.backend.window_seconds * self.sample_rate)
        hop = round(self.backend.hop_seconds * self.sample_rate)
        windows = [_prepare(w, self._min_samples) for _, w in _windows([wave], window, hop)]
        return self.backend.embeddings(*_padded(windows)).mean(axis=0)

    def adapt(
        self, paths: Sequence[str | os.PathLike], *, min_seconds: float = 60.0
    ) -> EmotionRecognizer:
        """A recogniser whose normalisation statistics are re-estimated on ``paths``, the
        user's unlabelled recordings (:mod:`emofuse.inference.adapt`); torch backend only.
        ``self.adaptation`` of the result reports what was used."""
        from emofuse.inference.adapt import adapt_pipeline

        if not isinstance(self.backend, TorchBackend):
            raise ValueError("adaptation needs the torch backend (a model file, not ONNX)")
        pipeline, report = adapt_pipeline(
            self.backend.pipeline, paths, min_seconds=min_seconds, silence_db=self.silence_db
        )
        adapted = EmotionRecognizer(
            TorchBackend(pipeline, str(self.backend.device)), silence_db=self.silence_db,
            vad=self.vad or False, vad_settings=self.vad_settings,
        )  # fmt: skip
        adapted.adaptation = report
        return adapted

    def timeline(
        self,
        path: str | os.PathLike,
        *,
        window: float | None = None,
        hop: float | None = None,
        block_seconds: float = 60.0,
        batch_size: int | None = None,
    ) -> Iterator[Segment]:
        """Contiguous segments from 0 to the end of a (long) file, streamed block by block.

        With voice activity detection (the default), the file is first cut into speech and
        non-speech stretches (:class:`~emofuse.signal.vad.SpeechSegmenter`; speech stretches
        of at most ``vad_settings.max_speech_seconds``); each non-speech stretch is one "no
        speech" segment. Within a speech stretch (without VAD: within the file), windows of
        ``window`` seconds start every ``hop`` seconds (plus one ending at its end; default: the
        model's evaluation windows), and each window gives the part nearest to its centre: from
        midway between the previous window's centre and its own to midway between its own and
        the next one's, so segments are about ``hop`` long and tile the stretch. A segment whose
        own RMS is below ``silence_db`` is silent; the others get their window's probabilities.
        Memory does not grow with the file's length.

        Raises:
            AudioError: an unreadable file (possibly after some segments were yielded).
        """
        rate = self.sample_rate
        window = self.backend.window_seconds if window is None else window
        hop = self.backend.hop_seconds if hop is None else hop
        window_samples, hop_samples = round(window * rate), round(hop * rate)
        if not 0 < hop_samples <= window_samples:
            raise ValueError(f"need 0 < hop <= window, got window={window}, hop={hop}")
        batch_size = self._batch_size(batch_size)
        blocks = iter_blocks(path, block_seconds=block_seconds, sample_rate=rate)
        if self.vad is None:
            stretches: Iterable[tuple[int, Iterable[np.ndarray] | None, int]] = [(0, blocks, 0)]
        else:
            stretches = (
                (s.start, [s.samples] if s.speech else None, s.end)
                for s in SpeechSegmenter(self.vad, self.vad_settings).split(blocks)
            )
        return self._segments(path, stretches, window_samples, hop_samples, batch_size)

    def _segments(
        self,
        path: str | os.PathLike,
        stretches: Iterable[tuple[int, Iterable[np.ndarray] | None, int]],
        window: int,
        hop: int,
        batch_size: int,
    ) -> Iterator[Segment]:
        """:meth:`timeline` over (first sample, its blocks or None for no speech, end sample)
        stretches, with window and hop in samples."""
        rate = self.sample_rate
        pending: list[tuple[float, float, np.ndarray | None, str | None]] = []
        silent = f"silent (below {self.silence_db:g} dBFS)"

        def flush() -> Iterator[Segment]:
            probs = iter(self._forward([w for _, _, w, _ in pending if w is not None]))
            for lo, hi, w, reason in pending:
                if w is None:
                    yield Segment(lo / rate, hi / rate, NO_SPEECH, {}, True, reason)
                else:
                    yield Segment(lo / rate, hi / rate, silent=False, **self._labelled(next(probs)))
            pending.clear()

        def add(lo: float, hi: float, w: np.ndarray | None, reason: str | None) -> Iterator:
            pending.append((lo, hi, w, reason))
            waiting = sum(w is not None for _, _, w, _ in pending)
            if waiting == 0 or waiting >= batch_size:
                yield from flush()

        def windowed(start: int, samples: np.ndarray, lo: float, hi: float) -> Iterator[Segment]:
            if level_db(samples[round(lo) - start : round(hi) - start]) < self.silence_db:
                yield from add(lo, hi, None, silent)
            else:
                yield from add(lo, hi, _prepare(samples, self._min_samples), None)

        analysed = False
        for offset, blocks, end in stretches:
            if blocks is None:
                yield from add(offset, end, None, "no speech detected")
                analysed = True
                continue
            previous, lo = None, float(offset)
            for start, samples in _windows(blocks, window, hop):
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

    def _batch_size(self, batch_size: int | None) -> int:
        """``batch_size`` checked, or by default windows making about ``BATCH_SECONDS`` of
        audio: memory per forward pass stays the same for short and long windows."""
        if batch_size is None:
            return max(1, round(BATCH_SECONDS / self.backend.window_seconds))
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        return batch_size

    def _forward(self, windows: list[np.ndarray]) -> np.ndarray:
        """Windows of any lengths -> probabilities (N, C), in one padded batch."""
        if not windows:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.backend.probabilities(*_padded(windows))

    def _labelled(self, probabilities: np.ndarray) -> dict:
        """(C,) probabilities -> ``label`` (the most probable) and ``probabilities`` (a dict)."""
        return {
            "label": self.labels[int(np.argmax(probabilities))],
            "probabilities": {k: float(p) for k, p in zip(self.labels, probabilities, strict=True)},
        }
