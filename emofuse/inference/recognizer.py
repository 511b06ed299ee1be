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

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from emofuse.deprecation import renamed_keyword
from emofuse.inference.backends import Backend, TorchBackend, window_probabilities
from emofuse.inference.clips import Clip, GroupJob, clip_samples, read_clip, readable
from emofuse.inference.prefetch import prefetch
from emofuse.inference.results import (
    NO_SPEECH,
    Prediction,
    Segment,
    label_subset,
    labelled,
    restricted,
)
from emofuse.inference.speech import find_speech, only_speech
from emofuse.inference.stream import EmotionStream
from emofuse.inference.timeline import TimelineEngine, WindowJob, timeline_segments
from emofuse.inference.windows import MIN_SECONDS, as_mono, batches, padded, prepare, window_spans
from emofuse.pipeline import load_model
from emofuse.pipeline.modelfile import BUNDLED_MODELS
from emofuse.signal.audio import AudioError, check_sample_rate, iter_blocks, load_audio, resample
from emofuse.signal.vad import SAMPLE_RATE as VAD_RATE
from emofuse.signal.vad import SpeechDetector
from emofuse.signal.vad_segmenter import Scorer, SpeechSegmenter, VADSettings

__all__ = ["Backend", "TorchBackend", "EmotionRecognizer", "Prediction", "Segment", "NO_SPEECH"]

BATCH_SECONDS = 30.0  # audio per forward pass by default (bench/predict_many.py: speed vs memory)
PREFETCH_FILES = 32  # files read ahead of the model, and at most PREFETCH_SECONDS of audio
PREFETCH_SECONDS = 300.0


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
        source: str | None = None,
    ) -> None:
        self.backend = backend
        self.source = source  # the bundled model's name or the model file, when loaded
        self.silence_db = silence_db
        self._min_samples = round(MIN_SECONDS * backend.sample_rate)
        self._window = round(backend.window_seconds * backend.sample_rate)  # samples
        self._hop = round(backend.hop_seconds * backend.sample_rate)
        self._prefetch = round(PREFETCH_SECONDS * backend.sample_rate)
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
        precision: str = "auto",
        silence_db: float = -60.0,
        vad: bool = True,
    ) -> EmotionRecognizer:
        """A bundled model (``"accurate"``, the default, or ``"fast"``), a model file, or an
        exported ``.onnx`` file. ``backend``: ``auto`` (onnx for a ``.onnx`` path, else torch),
        ``torch`` or ``onnx``. ``threads``: onnxruntime's threads (for torch, set
        ``torch.set_num_threads``). ``precision``: ``auto`` (bfloat16 where the hardware computes
        it natively and the model file's measured agreement allows,
        :mod:`emofuse.inference.precision`; else float32), ``fp32`` or ``bf16`` (torch backend).

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
            if device not in ("auto", "cpu") or precision not in ("auto", "fp32"):
                raise ValueError("the onnx backend runs in float32 on the CPU; device and "
                                 "precision apply to the torch backend")  # fmt: skip
            from emofuse.inference.onnx import OnnxBackend

            onnx = OnnxBackend(path, num_threads=threads, precision=precision)
            return cls(onnx, silence_db=silence_db, vad=vad, source=str(path))
        if backend != "torch":
            raise ValueError(f"unknown backend {backend!r}; expected auto, torch or onnx")
        if onnx_file:
            raise ValueError(f"{path} is an ONNX export: load it with backend 'onnx' or 'auto'")
        torch_backend = TorchBackend(load_model(path), device, precision)
        source = BUNDLED_MODELS[0] if path is None else str(path)
        return cls(torch_backend, silence_db=silence_db, vad=vad, source=source)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.backend.labels

    @property
    def sample_rate(self) -> int:
        return self.backend.sample_rate

    def predict(self, audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None, *,
                labels: str | Sequence[str] | None = None) -> Prediction:  # fmt: skip
        """The emotion of a file, or of an array (samples,) or (samples, channels); over
        ``labels`` only when given (:func:`~emofuse.inference.results.label_subset`).

        Raises:
            AudioError: an unreadable file. ValueError: a bad array, a missing ``sample_rate``
            or a label the model does not have.
        """
        subset = label_subset(self.labels, labels)
        clip = self._clip(audio, sample_rate)
        (prediction,) = self._predict_group([clip], self._batch_size(None))
        return restricted(prediction, subset)

    def predict_waves(self, waves: Sequence[np.ndarray]) -> list[Prediction]:
        """Predictions for mono float32 waves (samples,) at the model's rate, computed together
        (one voice activity pass, padded batches of windows: a service's concurrent clips)."""
        group = [Clip(i, wave, None) for i, wave in enumerate(waves)]
        return self._predict_group(group, self._batch_size(None))

    def predict_many(
        self,
        items: Sequence[str | os.PathLike],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
        workers: int = 1,
        labels: str | Sequence[str] | None = None,
    ) -> list[Prediction | None]:
        """Predictions for files, in order (:meth:`iter_predictions`); None: unreadable."""
        results: list[Prediction | None] = [None] * len(items)
        for index, prediction in self.iter_predictions(items, batch_size=batch_size,
                progress=progress, on_error=on_error, workers=workers, labels=labels):  # fmt: skip
            results[index] = prediction
        return results

    def iter_predictions(
        self,
        items: Sequence[str | os.PathLike],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
        workers: int = 1,
        labels: str | Sequence[str] | None = None,
    ) -> Iterator[tuple[int, Prediction]]:
        """(index in ``items``, prediction) of each readable file, in order, each as soon as it
        is done; windows of several files share a forward pass.

        ``batch_size``: audio per forward pass, in full evaluation windows (default: one for an
        encoder model on the CPU, else about 30 s, 10 of the fast model's 3 s windows); clips
        shorter than a window share a batch with more. A background thread reads the files a
        few ahead. A file that cannot be read is passed to ``on_error(path, error)`` and
        skipped; the others still finish. Files go to the model in groups of ``batch_size``
        windows' worth of audio; a group is checked for speech (one batched VAD pass) and
        classified in one job.

        ``workers``: groups in flight at once, each in its own thread. On a CPU, two workers
        with one torch thread each (``torch.set_num_threads(1)``) use two cores better than
        one worker with two threads (``bench/predict_many.py``). ``labels``: as for
        :meth:`predict`.
        """
        subset = label_subset(self.labels, labels)
        batch_size = self._batch_size(batch_size)
        if workers < 1:
            raise ValueError(f"workers must be positive, got {workers}")

        inputs = [(i, path, self.sample_rate) for i, path in enumerate(items)]
        loaded = prefetch(read_clip, inputs, PREFETCH_FILES, budget=self._prefetch,
                          weigh=clip_samples)  # fmt: skip
        if progress:
            from tqdm import tqdm

            loaded = tqdm(loaded, total=len(items), desc="predict", unit="file", leave=False)
        clips = readable(loaded, on_error)
        for index, prediction in self._predict_in_batches(clips, batch_size, workers):
            yield index, restricted(prediction, subset)

    def _clip(self, audio: str | os.PathLike | np.ndarray, sample_rate: int | None) -> Clip:
        """A file or an array -> its :class:`Clip` at the model's rate."""
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise ValueError("an audio array needs its sample_rate")
            rate = check_sample_rate(sample_rate)
            return Clip(0, resample(as_mono(audio), rate, self.sample_rate), None)
        if sample_rate is not None:
            raise ValueError("sample_rate is for arrays; a file's own rate is used")
        return Clip(0, load_audio(audio, self.sample_rate), str(audio))

    def _predict_in_batches(
        self, clips: Iterable[Clip], batch_size: int, workers: int = 1
    ) -> Iterator[tuple[int, Prediction]]:
        """Clips -> (index, prediction), in the clips' order. Clips are grouped until their
        windows hold ``batch_size`` full windows' worth of audio (so short clips share a batch
        with many others); each group is one job (:meth:`_predict_group`), ``workers`` jobs
        run at once in threads."""
        running: deque[GroupJob] = deque()
        group: list[Clip] = []
        samples = 0
        with ThreadPoolExecutor(workers, thread_name_prefix="emofuse-model") as pool:
            for clip in clips:
                group.append(clip)
                samples += sum(max(end - start, self._min_samples)
                               for start, end in self._spans(clip.wave.size))  # fmt: skip
                if samples >= batch_size * self._window:
                    while len(running) >= workers:
                        yield from running.popleft().answers()
                    running.append(GroupJob.of(group, pool.submit(self._predict_group, group,
                                                                  batch_size)))  # fmt: skip
                    group, samples = [], 0
            if group:
                running.append(GroupJob.of(group, pool.submit(self._predict_group, group,
                                                              batch_size)))  # fmt: skip
            while running:
                yield from running.popleft().answers()

    def _predict_group(self, group: list[Clip], batch_size: int) -> list[Prediction]:
        """The clips' predictions, in order: checked for speech, then the windows of those with
        speech through the model, shortest first (windows of like length share a padded batch),
        in batches of at most ``batch_size`` full windows' worth of samples, each cut from its
        clip only when its batch runs."""
        reasons, regions = find_speech([clip.wave for clip in group], self.sample_rate,
                                       self.silence_db, self.vad, self.vad_settings)  # fmt: skip
        durations = [clip.wave.size / self.sample_rate for clip in group]
        if self.backend.speech_only:  # the model reads only the speech it was trained on
            group = [clip._replace(wave=only_speech(clip.wave, spans))
                     for clip, spans in zip(group, regions, strict=True)]  # fmt: skip
        spans = [(position, start, end)  # position: the clip's place in the group
                 for position, (clip, reason) in enumerate(zip(group, reasons, strict=True))
                 if reason is None for start, end in self._spans(clip.wave.size)]
        spans.sort(key=lambda span: span[2] - span[1])
        totals = np.zeros((len(group), len(self.labels)))
        counts = np.bincount([p for p, _, _ in spans], minlength=len(group))
        sizes = [max(end - start, self._min_samples) for _, start, end in spans]
        for batch in batches(sizes, batch_size * self._window):
            owners = [p for p, _, _ in spans[batch]]
            cut = [prepare(group[p].wave[start:end], self._min_samples)
                   for p, start, end in spans[batch]]  # fmt: skip
            np.add.at(totals, owners, window_probabilities(self.backend, cut))
        results = []
        for position, (clip, reason) in enumerate(zip(group, reasons, strict=True)):
            duration, source = durations[position], clip.source
            if reason is not None:
                results.append(Prediction(NO_SPEECH, {}, True, duration, source, reason))
            else:
                answer = labelled(self.labels, totals[position] / counts[position])
                results.append(Prediction(silent=False, duration=duration, source=source,
                                          **answer))  # fmt: skip
        return results

    def _eval_windows(self, wave: np.ndarray) -> list[np.ndarray]:
        """A clip's prepared evaluation windows (the model's window and hop)."""
        return [prepare(wave[start:end], self._min_samples)
                for start, end in self._spans(wave.size)]  # fmt: skip

    def _spans(self, samples: int) -> list[tuple[int, int]]:
        """(start, end) of the model's evaluation windows over ``samples`` samples."""
        return window_spans(samples, self._window, self._hop)

    def embed(
        self, audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None
    ) -> np.ndarray:
        """The pooled utterance representation the classifier reads (E,) float32, averaged over
        the evaluation windows (as :meth:`predict` averages probabilities), to train heads of
        your own on. Torch backend only.

        Raises:
            AudioError: an unreadable file. ValueError: a bad array or missing ``sample_rate``.
            BackendUnsupported: an ONNX backend (``backend.can_embed`` is false).
        """
        wave = self._clip(audio, sample_rate).wave
        return self.backend.embeddings(*padded(self._eval_windows(wave))).mean(axis=0)

    def adapt(
        self, paths: Sequence[str | os.PathLike], *, min_seconds: float = 60.0,
        prior_seconds: float | None = None,
        on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
    ) -> EmotionRecognizer:
        """A recogniser whose normalisation statistics are re-estimated on ``paths``, the
        user's unlabelled recordings (:func:`emofuse.inference.adapt.adapt_recognizer`; torch
        backend only). ``prior_seconds``: what the training statistics weigh (default: a
        folder's, ``FOLDER_PRIOR_SECONDS``). Unreadable files go to ``on_error`` (raised when
        None). ``self.adaptation`` of the result reports what was used."""
        from emofuse.inference.adapt import adapt_recognizer

        return adapt_recognizer(self, paths, min_seconds=min_seconds,
                                prior_seconds=prior_seconds, on_error=on_error)  # fmt: skip

    def timeline(
        self,
        audio: str | os.PathLike | np.ndarray,
        sample_rate: int | None = None,
        *,
        window_seconds: float | None = None,
        hop_seconds: float | None = None,
        block_seconds: float = 60.0,
        batch_size: int | None = None,
        adapt: bool | None = None,
        labels: str | Sequence[str] | None = None,
        **renamed: float,
    ) -> Iterator[Segment]:
        """Contiguous segments from 0 to the end of a (long) file, read block by block (memory
        does not grow with its length), or of an array (samples,) or (samples, channels) at
        ``sample_rate``.

        ``adapt`` (default: for a model trained with each speaker standardised by their own
        statistics, its file saying ``normalised_per: speaker``; torch backend): the recording
        adapts to itself as it goes (:class:`~emofuse.inference.adapt.RunningAdaptation`): each
        window is standardised with the statistics of the speech before it, blended with the
        training statistics by the amount of speech, so the first window is answered as without
        it, the answers do not depend on the batching, and a long recording converges to its
        own speaker and room.

        With voice activity detection (the default), the file is first cut into speech and
        non-speech stretches (:class:`~emofuse.signal.vad_segmenter.SpeechSegmenter`); each
        non-speech stretch is one "no speech" segment. Within a speech stretch (without VAD: the
        file), windows of ``window_seconds`` start every ``hop_seconds`` (plus one ending at its
        end; default: the model's evaluation windows; ``window=``, ``hop=``: deprecated names),
        each giving the part nearest its centre, so segments are about ``hop_seconds`` long and
        tile the stretch. A segment whose own RMS is below ``silence_db`` is silent; the others
        get their window's probabilities (over ``labels`` only, as for :meth:`predict`).

        Raises:
            AudioError: an unreadable file (possibly after some segments were yielded).
            ValueError: a label the model does not have (before any work).
        """
        window_seconds = renamed_keyword(renamed, "window", "window_seconds", window_seconds)
        hop_seconds = renamed_keyword(renamed, "hop", "hop_seconds", hop_seconds, last=True)
        subset = label_subset(self.labels, labels)
        if isinstance(audio, np.ndarray):
            wave, path = self._clip(audio, sample_rate).wave, "array"
            blocks: Iterable[np.ndarray] = [wave]
        else:
            if sample_rate is not None:
                raise ValueError("sample_rate is for arrays; a file's own rate is used")
            path = audio
            blocks = iter_blocks(path, block_seconds=block_seconds, sample_rate=self.sample_rate)
        engine = self._engine(window_seconds, hop_seconds, self._batch_size(batch_size), adapt)
        return (restricted(s, subset) for s in timeline_segments(engine, blocks, path))

    def stream(
        self,
        sample_rate: int = 16000,
        *,
        adapt: bool | None = None,
        partials: bool = True,
        score: Callable[[WindowJob], np.ndarray] | None = None,
        speech_probabilities: Scorer | None = None,
        labels: str | Sequence[str] | None = None,
    ) -> EmotionStream:
        """A live recording at ``sample_rate``: ``feed(chunk)`` as audio comes, ``close()`` at
        its end, each returning the events decided (:class:`~emofuse.inference.stream.
        EmotionStream`): ``speech_start``, ``partial`` (with ``partials``), ``segment`` (those
        of :meth:`timeline` on the whole recording, with the model's windows) and
        ``speech_end``. ``adapt`` as for :meth:`timeline`; ``score`` and
        ``speech_probabilities``: how windows reach the model and audio the voice activity
        detector (default: directly; the service batches its streams'). ``labels``: segments
        and partials over those only, as for :meth:`predict`."""
        subset = label_subset(self.labels, labels)
        engine = self._engine(None, None, self._batch_size(None), adapt, speech_probabilities,
                              eager=True, partials=partials, score=score)  # fmt: skip
        return EmotionStream(engine, sample_rate, labels=subset)

    def _engine(
        self, window_seconds: float | None, hop_seconds: float | None, batch_size: int,
        adapt: bool | None, speech_probabilities: Scorer | None = None, **options,
    ) -> TimelineEngine:
        """The engine behind :meth:`timeline` and :meth:`stream` (None: the model's windows)."""
        segmenter = (None if self.vad is None else
                      SpeechSegmenter(self.vad, self.vad_settings).stream(speech_probabilities))
        return TimelineEngine.create(
            self.backend, segmenter, window_seconds=window_seconds, hop_seconds=hop_seconds,
            batch_size=batch_size,
            silence_db=self.silence_db, adapt=adapt, **options,
        )  # fmt: skip

    def _batch_size(self, batch_size: int | None) -> int:
        """``batch_size`` checked, or the backend's ``batch_windows`` when it has one, else
        windows making about ``BATCH_SECONDS`` of audio: memory per forward pass stays the
        same for short and long windows."""
        if batch_size is None:
            fill = max(1, round(BATCH_SECONDS / self.backend.window_seconds))
            return self.backend.batch_windows or fill
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        return batch_size

