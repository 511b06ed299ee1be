"""Emotion of audio files and arrays with a trained model: the library behind ``emofuse predict``.

Every input goes through the same steps as the training-time evaluation: the mono waveform is
cut into the model's evaluation windows (stored in its file; 3 s every 1.5 s by default; the
last window ends at the end; a clip no longer than a window is one window), each window's
mean is subtracted (DC offset removed) and a window shorter than 0.5 s is tiled up to 0.5 s,
and the window probabilities are averaged. A clip whose RMS is below ``silence_db`` dBFS is
answered as silence (``label="silence"``, no probabilities) rather than given an emotion.

The model sits behind :class:`Backend`: :class:`TorchBackend` runs an
:class:`~emofuse.pipeline.EmotionPipeline`; :class:`emofuse.inference.onnx.OnnxBackend` runs an
exported ONNX file.

>>> import numpy as np
>>> from emofuse.testing import synthetic_voice, tiny_pipeline
>>> recognizer = EmotionRecognizer(TorchBackend(tiny_pipeline(), device="cpu"))
>>> prediction = recognizer.predict(synthetic_voice(1.0), sample_rate=16000)
>>> prediction.label in recognizer.labels, round(sum(prediction.probabilities.values()), 4)
(True, 1.0)
>>> recognizer.predict(np.zeros(8000), sample_rate=16000).label
'silence'
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch

from emofuse.device import resolve_device
from emofuse.pipeline import EmotionPipeline, load_model
from emofuse.signal.audio import AudioError, iter_blocks, level_db, load_audio, resample

__all__ = [
    "Backend",
    "TorchBackend",
    "EmotionRecognizer",
    "Prediction",
    "Segment",
    "SILENCE",
]

SILENCE = "silence"
MIN_SECONDS = 0.5
BATCH_SECONDS = 48.0  # audio per forward pass by default


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
    """The emotion of one clip; ``probabilities`` is empty (and ``label`` "silence") if silent."""

    label: str
    probabilities: dict[str, float]
    silent: bool
    duration: float  # seconds
    source: str | None = None  # the file, when read from one

    @property
    def confidence(self) -> float:
        """Probability of ``label`` (0 when silent)."""
        return self.probabilities.get(self.label, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    """A stretch ``[start, end)`` seconds of a :meth:`EmotionRecognizer.timeline`."""

    start: float
    end: float
    label: str
    probabilities: dict[str, float]  # empty when silent
    silent: bool

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


class EmotionRecognizer:
    """Predictions for clips, batches of files and long recordings from one :class:`Backend`."""

    def __init__(self, backend: Backend, *, silence_db: float = -60.0) -> None:
        self.backend = backend
        self.silence_db = silence_db
        self._min_samples = round(MIN_SECONDS * backend.sample_rate)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = "accurate",
        *,
        backend: str = "torch",
        device: str = "auto",
        silence_db: float = -60.0,
    ) -> EmotionRecognizer:
        """A bundled model (``"accurate"``, the default, or ``"fast"``) or a model file
        (``backend="torch"``), or an ``.onnx`` file (``backend="onnx"``).

        Nothing is fetched: the bundled models are package data (``emofuse/pretrained/``).

        Raises:
            ModelFileError: no such or no valid model file, or no bundled model installed.
        """
        if backend == "onnx":
            if path is None or str(path) in ("accurate", "fast"):
                raise ValueError("backend 'onnx' needs the path of an exported .onnx file")
            if device != "auto":
                raise ValueError("device applies to the torch backend only")
            from emofuse.inference.onnx import OnnxBackend

            return cls(OnnxBackend(path), silence_db=silence_db)
        if backend != "torch":
            raise ValueError(f"unknown backend {backend!r}; expected 'torch' or 'onnx'")
        return cls(TorchBackend(load_model(path), device), silence_db=silence_db)

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
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise ValueError("an audio array needs its sample_rate")
            wave, source = resample(_as_mono(audio), sample_rate, self.sample_rate), None
        else:
            if sample_rate is not None:
                raise ValueError("sample_rate is for arrays; a file's own rate is used")
            wave, source = load_audio(audio, self.sample_rate), str(audio)
        (prediction,) = self._predict_waves([(0, wave, source)], 1, self._batch_size(None))
        return prediction

    def predict_many(
        self,
        items: Sequence[str | os.PathLike],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
    ) -> list[Prediction | None]:
        """Predictions for files, in order; windows of several files share a forward pass.

        ``batch_size`` counts windows (default: about 48 s of audio per forward pass, 16 of
        the fast model's 3 s windows). A file that cannot be read gets None and is passed to
        ``on_error(path, error)``; the others still finish. Files are read one at a time.
        """
        batch_size = self._batch_size(batch_size)

        def loaded() -> Iterator[tuple[int, np.ndarray, str]]:
            paths: Iterable[str | os.PathLike] = items
            if progress:
                from tqdm import tqdm

                paths = tqdm(items, desc="predict", unit="file", leave=False)
            for index, path in enumerate(paths):
                try:
                    yield index, load_audio(path, self.sample_rate), str(path)
                except AudioError as error:
                    if on_error is not None:
                        on_error(path, error)

        return self._predict_waves(loaded(), len(items), batch_size)

    def _predict_waves(
        self, waves: Iterable[tuple[int, np.ndarray, str | None]], n: int, batch_size: int
    ) -> list[Prediction | None]:
        """(index, mono wave, source) items -> ``n`` predictions by index (None if absent)."""
        rate = self.sample_rate
        window = round(self.backend.window_seconds * rate)
        hop = round(self.backend.hop_seconds * rate)
        results: list[Prediction | None] = [None] * n
        sums: dict[int, np.ndarray] = {}  # index -> summed window probabilities (C,)
        counts: dict[int, int] = {}
        about: dict[int, tuple[float, str | None]] = {}  # index -> (duration, source)
        queue: list[tuple[int, np.ndarray]] = []  # (index, prepared window)

        def run(batch: list[tuple[int, np.ndarray]]) -> None:
            for (index, _), probs in zip(batch, self._forward([w for _, w in batch]), strict=True):
                sums[index] += probs
                counts[index] += 1

        for index, wave, source in waves:
            if level_db(wave) < self.silence_db:
                results[index] = Prediction(SILENCE, {}, True, wave.size / rate, source)
                continue
            sums[index], counts[index] = np.zeros(len(self.labels)), 0
            about[index] = (wave.size / rate, source)
            for _, samples in _windows([wave], window, hop):
                queue.append((index, _prepare(samples, self._min_samples)))
            while len(queue) >= batch_size:
                run(queue[:batch_size])
                queue = queue[batch_size:]
        run(queue)
        for index, total in sums.items():
            labelled = self._labelled(total / counts[index])
            results[index] = Prediction(silent=False, duration=about[index][0],
                                        source=about[index][1], **labelled)  # fmt: skip
        return results

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
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise ValueError("an audio array needs its sample_rate")
            wave = resample(_as_mono(audio), sample_rate, self.sample_rate)
        else:
            if sample_rate is not None:
                raise ValueError("sample_rate is for arrays; a file's own rate is used")
            wave = load_audio(audio, self.sample_rate)
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
            TorchBackend(pipeline, str(self.backend.device)), silence_db=self.silence_db
        )
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

        Windows of ``window`` seconds start every ``hop`` seconds (plus one ending at the end of
        the file; default: the model's evaluation windows). Each window gives the segment of the
        file nearest to its centre: from midway
        between the previous window's centre and its own to midway between its own and the
        next one's (the first segment starts at 0, the last ends at the end), so segments are
        about ``hop`` long and tile the file. A segment whose own RMS is below ``silence_db`` is
        silence; the others get their window's probabilities. A file no longer than ``window``
        is one segment. Memory does not grow with the file's length.

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
        return self._segments(path, blocks, window_samples, hop_samples, batch_size)

    def _segments(
        self,
        path: str | os.PathLike,
        blocks: Iterator[np.ndarray],
        window: int,
        hop: int,
        batch_size: int,
    ) -> Iterator[Segment]:
        """:meth:`timeline` on a stream of blocks, with window and hop in samples."""
        rate = self.sample_rate
        pending: list[tuple[float, float, np.ndarray | None]] = []  # (start, end, window)

        def flush() -> Iterator[Segment]:
            probs = iter(self._forward([w for _, _, w in pending if w is not None]))
            for lo, hi, w in pending:
                if w is None:
                    yield Segment(lo / rate, hi / rate, SILENCE, {}, True)
                else:
                    yield Segment(lo / rate, hi / rate, silent=False, **self._labelled(next(probs)))
            pending.clear()

        def add(start: int, samples: np.ndarray, lo: float, hi: float) -> Iterator[Segment]:
            part = samples[round(lo) - start : round(hi) - start]
            silent = level_db(part) < self.silence_db
            pending.append((lo, hi, None if silent else _prepare(samples, self._min_samples)))
            waiting = sum(w is not None for _, _, w in pending)
            if waiting == 0 or waiting >= batch_size:
                yield from flush()

        previous, lo = None, 0.0
        for start, samples in _windows(blocks, window, hop):
            if previous is not None:
                hi = (previous[0] + previous[1].size / 2 + start + samples.size / 2) / 2
                yield from add(*previous, lo, hi)
                lo = hi
            previous = (start, samples)
        if previous is None:  # possible only if resampling left no samples
            raise AudioError(path, "too short to analyse")
        yield from add(*previous, lo, float(previous[0] + previous[1].size))
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
