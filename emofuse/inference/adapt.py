"""Adaptation to the user's audio without labels: re-estimate a model's normalisation
statistics on a folder of their unlabelled recordings (microphone, language, speakers).

Every feature's normaliser standardises frames with the mean and variance of its training
corpora; on unseen corpora those statistics are the main mismatch (docs/design.md §6: standardising
with the target corpus's own unlabelled statistics raised cross-corpus UA by 8 to 38 points).
:func:`adapt_pipeline` recomputes them from the frames of the given files, silent files left
out, and refuses fewer than ``min_seconds`` of audio: a few seconds would replace robust
statistics with noisy ones. The training statistics stay in as a prior weighing as much as
``prior_seconds`` of the user's audio (shrinkage, :func:`blended_moments`).

How much the prior weighs depends on what the audio is. One recording (a speaker, a room) is
what the bundled models were trained to be standardised by: a timeline adapting to itself
(:class:`RunningAdaptation`) gives the prior :data:`PRIOR_SECONDS` (20 s), and adapting to each
speaker's audio raised every one of eight held-out corpora (``results/loco8/recipes.md``).
A folder pools many speakers, and its pooled statistics can move a corpus the wrong way: on the
Korean corpus, 15 speakers pooled cost 4.3 UA points with a 20 s prior (the pooled mean alone
cost 2.6; each speaker's own statistics gained 1.7). :func:`adapt_pipeline` therefore gives the
prior :data:`FOLDER_PRIOR_SECONDS` (10,000 s: an hour of audio moves the statistics by a
quarter), the smallest prior measured to lose at most 1 point on every held-out corpus; to adapt
to one speaker, pass that speaker's files and ``prior_seconds=PRIOR_SECONDS``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from emofuse.inference.windows import padded
from emofuse.pipeline import EmotionPipeline
from emofuse.signal.audio import AudioError, level_db, load_audio
from emofuse.signal.functional import lengths_to_mask
from emofuse.signal.vad import SpeechDetector
from emofuse.signal.vad_segmenter import VADSettings

if TYPE_CHECKING:
    from emofuse.inference.recognizer import EmotionRecognizer

__all__ = [
    "AdaptationError",
    "AdaptedPipeline",
    "FrameMoments",
    "adapt_recognizer",
    "speech_keeper",
    "RunningAdaptation",
    "adapt_pipeline",
    "blended_moments",
    "logit_scale",
    "FOLDER_PRIOR_SECONDS",
    "MIN_SECONDS",
    "PRIOR_SECONDS",
]

MIN_SECONDS = 60.0
PRIOR_SECONDS = 20.0  # one recording: the training statistics weigh as much as 20 s of it
FOLDER_PRIOR_SECONDS = 10_000.0  # a folder of many speakers (see the module docstring)
CHUNK_SECONDS = 30.0  # frames are computed 30 s at a time: memory stays flat on long files


class AdaptationError(ValueError):
    """Too little usable audio to re-estimate the statistics; the message says how much."""


class FrameMoments(NamedTuple):
    """One feature's frames summed: per-row sums (dims,), sums of squares (dims,), and count."""

    sums: torch.Tensor
    squares: torch.Tensor
    count: float


class AdaptedPipeline(NamedTuple):
    """:func:`adapt_pipeline`'s answer: the adapted copy and what it was adapted on (``files``,
    ``seconds`` used, ``skipped_silent``, ``prior_seconds``)."""

    pipeline: EmotionPipeline
    report: dict[str, float]


Moments = dict[str, FrameMoments]  # feature name -> its frames' moments


def add_frame_moments(
    moments: Moments, features: dict[str, tuple[torch.Tensor, torch.Tensor]],
    weights: torch.Tensor | None = None,
) -> None:
    """Add the valid frames of every feature (frames (B, dims, T), lengths (B,)) to ``moments``
    in place, each item weighted by ``weights`` (B,) (default 1)."""  # fmt: skip
    for name, (frames, lengths) in features.items():
        w = lengths_to_mask(lengths, frames.shape[-1]).unsqueeze(1).double()  # (B, 1, T)
        if weights is not None:
            w = w * weights.to(frames.device, torch.float64).view(-1, 1, 1)
        x = frames.double()
        sums, squares, count = moments.get(name, FrameMoments(0.0, 0.0, 0.0))
        moments[name] = FrameMoments(sums + (x * w).sum(dim=(0, 2)).cpu(),
                                     squares + (x.square() * w).sum(dim=(0, 2)).cpu(),
                                     count + float(w.sum()))  # fmt: skip


def blended_moments(
    normalizer: torch.nn.Module, sums: torch.Tensor, squares: torch.Tensor, count: float,
    prior_frames: float,
) -> FrameMoments:
    """Per-row frame sums, sums of squares (dims,) and count of the user's audio, with the
    normaliser's own statistics added as ``prior_frames`` frames of it.

    >>> from emofuse.signal.transforms import FeatureNormalizer
    >>> norm = FeatureNormalizer(1)  # mean 0, std 1
    >>> s, q, n = blended_moments(norm, torch.tensor([40.0]), torch.tensor([200.0]), 10, 10)
    >>> norm.fit(s, q, n); round(float(norm.mean), 3), round(float(norm.std), 3)
    (2.0, 2.55)
    """  # fmt: skip
    mean, std = normalizer.mean.double().cpu(), normalizer.std.double().cpu()
    return FrameMoments(sums.double() + prior_frames * mean,
                        squares.double() + prior_frames * (std.square() + mean.square()),
                        count + prior_frames)  # fmt: skip


def logit_scale(pipeline: EmotionPipeline, adapted_share: float) -> float:
    """The factor on ``pipeline``'s logits once ``adapted_share`` (0-1) of its statistics are
    the user's own. A model file may carry the temperature its classifier was divided by
    (``extra["temperature"]``), calibrated for clips that meet the training statistics on an
    unseen corpus; standardised with the audio's own statistics the untempered head is the
    calibrated one (results/loco4/recipes.json: ECE 0.063 untempered, 0.176 tempered, adapted
    to each speaker), so the temperature relaxes to 1 with the share."""
    temperature = float(pipeline.extra.get("temperature", 1.0))
    return temperature / (1 + (temperature - 1) * (1 - adapted_share))


def adapt_pipeline(
    pipeline: EmotionPipeline,
    paths: Sequence[str | os.PathLike],
    *,
    min_seconds: float = MIN_SECONDS,
    prior_seconds: float | None = None,
    silence_db: float = -60.0,
    on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
    keep: Callable[[np.ndarray], np.ndarray] | None = None,
) -> AdaptedPipeline:
    """A copy of ``pipeline`` whose normalisers are fitted on the frames of ``paths`` and its
    own statistics as ``prior_seconds`` of them (None: :data:`FOLDER_PRIOR_SECONDS`), and a
    report (``files``, ``seconds`` used, ``skipped_silent``, ``prior_seconds``). Unreadable
    files go to ``on_error`` (raised when it is None); silent ones are skipped. ``keep``: the
    part of each wave to read (the speech of a speech-only model, :func:`speech_keeper`), all
    of it when None.

    Raises:
        AdaptationError: less than ``min_seconds`` of non-silent audio.
    """
    prior_seconds = FOLDER_PRIOR_SECONDS if prior_seconds is None else prior_seconds
    device = next(pipeline.parameters()).device
    rate = pipeline.sample_rate
    chunk = round(CHUNK_SECONDS * rate)
    moments: Moments = {}
    used, seconds, silent = 0, 0.0, 0
    for path in paths:
        try:
            wave = load_audio(path, rate)
        except AudioError as error:
            if on_error is None:
                raise
            on_error(path, error)
            continue
        if level_db(wave) < silence_db:
            silent += 1
            continue
        if keep is not None:
            wave = keep(wave)
        used, seconds = used + 1, seconds + wave.size / rate
        for start in range(0, wave.size, chunk):
            if wave.size - start < rate // 10:  # a tail under 0.1 s adds nothing reliable
                continue
            # padded to whole seconds (masked): few shapes, the heap does not fragment
            piece, length = padded([wave[start : start + chunk]], multiple=rate)
            with torch.inference_mode():
                add_frame_moments(moments, pipeline.frontend(
                    torch.from_numpy(piece).to(device), torch.from_numpy(length).to(device)))
    if seconds < min_seconds:
        raise AdaptationError(
            f"adaptation needs at least {min_seconds:g} s of non-silent audio, got "
            f"{seconds:.1f} s from {used} file(s) ({silent} silent skipped)"
        )
    adapted = copy.deepcopy(pipeline)
    adapted.fit_normalizers({
        name: blended_moments(pipeline.normalizers[name], *moments[name],
                              prior_seconds * pipeline.kinds[name].frame_rate)
        for name in moments
    })  # fmt: skip
    scale = logit_scale(pipeline, seconds / (seconds + prior_seconds))
    with torch.no_grad():
        adapted.net.classifier.weight.mul_(scale)
        adapted.net.classifier.bias.mul_(scale)
    # its own model now: bfloat16 agreement is not measured on it (auto runs it in float32)
    adapted.extra = {k: v for k, v in pipeline.extra.items() if k != "bf16_agreement"}
    if "temperature" in adapted.extra:
        adapted.extra["temperature"] = adapted.extra["temperature"] / scale
    report = {"files": used, "seconds": round(seconds, 1), "skipped_silent": silent,
              "prior_seconds": prior_seconds}  # fmt: skip
    return AdaptedPipeline(adapted.eval(), report)


class RunningAdaptation:
    """One recording adapting to itself: normalisation statistics of the speech heard so far,
    blended with the model's training statistics weighing ``prior_seconds`` (shrinkage).

    :meth:`normalised` standardises frames with the current blend; :meth:`update` then adds
    frames heard, each window weighted (the share of it that is new, so overlapping windows
    count once). Before any update it is the model as trained, so a recording's first window
    is predicted as without adaptation; after minutes of speech the statistics are the
    recording's own (its speaker, microphone and room). Memory: a few vectors per feature.
    """

    def __init__(self, pipeline: EmotionPipeline, prior_seconds: float = PRIOR_SECONDS) -> None:
        self.normalizers = copy.deepcopy(pipeline.normalizers)
        self._prior = copy.deepcopy(pipeline.normalizers)
        self._rates = {n: k.frame_rate for n, k in pipeline.kinds.items()}
        self._moments: Moments = {}
        self.seconds = 0.0
        self.prior_seconds = prior_seconds

    @property
    def share(self) -> float:
        """How much of the current statistics are the recording's own (0 before any update)."""
        return self.seconds / (self.seconds + self.prior_seconds) if self.seconds else 0.0

    def normalised(self, features: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
        """Raw frames of every feature -> frames standardised with the current statistics."""
        return {name: (norm(features[name][0], features[name][1]), features[name][1])
                for name, norm in self.normalizers.items()}  # fmt: skip

    @torch.no_grad()
    def update(
        self, features: dict[str, tuple[torch.Tensor, torch.Tensor]], weights: torch.Tensor
    ) -> None:
        """Add the valid frames of each window (B,) with its weight in [0, 1], then re-blend."""
        add_frame_moments(self._moments, features, weights)
        first = next(iter(self._moments))
        self.seconds = self._moments[first][2] / self._rates[first]
        for name, (sums, squares, count) in self._moments.items():
            prior_frames = self.prior_seconds * self._rates[name]
            self.normalizers[name].fit(
                *blended_moments(self._prior[name], sums, squares, count, prior_frames)
            )


def speech_keeper(
    pipeline: EmotionPipeline,
    vad: SpeechDetector | None = None,
    settings: VADSettings | None = None,
) -> Callable[[np.ndarray], np.ndarray] | None:
    """What :func:`adapt_pipeline` should read of each wave: the speech ``vad`` (default:
    Silero VAD, loaded here) finds, for a speech-only model; None (all of it) for the others."""
    if not pipeline.extra.get("speech_only"):
        return None
    from emofuse.inference.speech import speech_of

    vad, settings = vad or SpeechDetector.load(), settings or VADSettings()
    return lambda wave: speech_of(wave, pipeline.sample_rate, vad, settings)


def adapt_recognizer(
    recognizer: EmotionRecognizer,
    paths: Sequence[str | os.PathLike],
    *,
    min_seconds: float = MIN_SECONDS,
    prior_seconds: float | None = None,
    on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
) -> EmotionRecognizer:
    """:meth:`EmotionRecognizer.adapt`: a recogniser like ``recognizer`` whose pipeline is
    :func:`adapt_pipeline`'s (a speech-only model adapts on the speech its detector finds)."""
    from emofuse.inference.backends import BackendUnsupported, TorchBackend
    from emofuse.inference.recognizer import EmotionRecognizer

    backend = recognizer.backend
    if not backend.can_adapt:
        raise BackendUnsupported("adaptation needs the torch backend (a model file, not ONNX)")
    vad, settings = recognizer.vad, recognizer.vad_settings
    keep = speech_keeper(backend.pipeline, vad, settings) if vad is not None else None
    pipeline, report = adapt_pipeline(
        backend.pipeline, paths, min_seconds=min_seconds, silence_db=recognizer.silence_db,
        prior_seconds=prior_seconds, on_error=on_error, keep=keep,
    )  # fmt: skip
    torch_backend = TorchBackend(pipeline, str(backend.device), backend.precision_choice.requested)
    adapted = EmotionRecognizer(torch_backend, silence_db=recognizer.silence_db, vad=vad or False,
                                vad_settings=settings)  # fmt: skip
    adapted.adaptation = report
    return adapted
