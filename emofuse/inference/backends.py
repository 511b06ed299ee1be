"""What runs the model behind a recogniser: the :class:`Backend` protocol and
:class:`TorchBackend` (an :class:`~emofuse.pipeline.EmotionPipeline`); the ONNX one is
:class:`emofuse.inference.onnx.OnnxBackend`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from emofuse.device import resolve_device
from emofuse.inference.adapt import RunningAdaptation, logit_scale
from emofuse.inference.precision import PrecisionChoice, choose_precision
from emofuse.inference.windows import padded
from emofuse.pipeline import EmotionPipeline

__all__ = ["Backend", "BackendUnsupported", "TorchBackend", "window_probabilities"]


class BackendUnsupported(ValueError):
    """A capability the backend does not have (e.g. embeddings from an ONNX export)."""


class Backend(Protocol):
    """What runs the model: padded mono waveforms at ``sample_rate`` -> class probabilities.

    Every capability a caller may use is declared here. A backend without one says so in its
    flag (``can_embed``, ``can_adapt``) and raises :class:`BackendUnsupported` if asked anyway.

    Attributes:
        name: ``torch`` or ``onnx``.
        labels: class names, in output order.
        sample_rate: the rate the model takes, Hz.
        window_seconds, hop_seconds: the evaluation windows the model was validated with.
        speech_only: the model was trained on the speech the voice activity detector finds, so
            a clip's other samples are dropped before it runs.
        batch_windows: windows per forward pass by default, or None (the recogniser's choice).
        metadata: what the model file stores besides its weights (for ``GET /v1/model``).
        normalised_per: ``speaker`` when the model was trained with each speaker standardised
            by their own statistics (so a recording adapts to itself), else None.
        precision_choice: the precision asked for, the one it runs in and why.
        can_embed: :meth:`embeddings` works.
        can_adapt: :meth:`adapting_probabilities` works and ``pipeline`` is the model's
            :class:`~emofuse.pipeline.EmotionPipeline` (whose normalisation can be re-estimated).
        pipeline: the torch pipeline, or None.
    """

    name: str
    labels: tuple[str, ...]
    sample_rate: int
    window_seconds: float
    hop_seconds: float
    speech_only: bool
    batch_windows: int | None
    metadata: dict[str, Any]
    normalised_per: str | None
    precision_choice: PrecisionChoice
    can_embed: bool
    can_adapt: bool
    pipeline: EmotionPipeline | None

    def probabilities(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """float32 (B, S) zero-padded waveforms, int64 (B,) lengths -> softmax (B, C)."""
        ...

    def embeddings(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """As :meth:`probabilities` -> pooled representations (B, E)."""
        ...

    def adapting_probabilities(
        self,
        waveforms: np.ndarray,
        lengths: np.ndarray,
        adaptation: RunningAdaptation | Sequence[RunningAdaptation],
        weights: np.ndarray,
    ) -> np.ndarray:
        """As :meth:`probabilities`, each window standardised by a recording's statistics so
        far (see :meth:`TorchBackend.adapting_probabilities`)."""
        ...


class TorchBackend:
    """An :class:`EmotionPipeline` (moved to ``device``; ``auto``: CUDA when present).

    ``precision``: ``auto`` (default; :func:`~emofuse.inference.precision.choose_precision`),
    ``fp32`` or ``bf16``. bfloat16 runs matrix products and convolutions in bfloat16
    (``torch.autocast``): on hardware with bfloat16 units (AMX, AVX512-BF16, CUDA) faster for the
    accurate model, with slightly different probabilities (the measured speed-up and agreement:
    docs/benchmarks.md); where bfloat16 is emulated it is slower.
    """

    name = "torch"
    can_embed = True
    can_adapt = True

    def __init__(
        self, pipeline: EmotionPipeline, device: str = "auto", precision: str = "auto"
    ) -> None:
        self.device = resolve_device(device)
        agreement = pipeline.extra.get("bf16_agreement")
        self.precision_choice = choose_precision(precision, self.device.type, agreement)
        self.pipeline = pipeline.to(self.device).eval()
        self.labels = tuple(pipeline.labels)
        self.sample_rate = pipeline.sample_rate
        self.window_seconds = pipeline.windows.window_seconds
        self.hop_seconds = pipeline.windows.hop_seconds
        self.speech_only = bool(pipeline.extra.get("speech_only", False))

    @property
    def precision(self) -> str:
        """The precision it runs in: ``fp32`` or ``bf16``."""
        return self.precision_choice.used

    @property
    def normalised_per(self) -> str | None:
        return self.pipeline.extra.get("normalised_per")

    @property
    def metadata(self) -> dict[str, Any]:
        """The model file's ``extra`` values, the feature kinds and the trained parameters."""
        return {**self.pipeline.extra, "features": [spec.kind for spec in self.pipeline.features],
                "trained_parameters": self.pipeline.net.num_parameters()}  # fmt: skip

    @property
    def batch_windows(self) -> int | None:
        """Windows per forward pass by default: one for a pretrained encoder on the CPU (its
        padded batches cost more than they save, and fragment memory:
        ``bench/real_folders.py``), else None (the recogniser's ``BATCH_SECONDS``)."""
        encoder = any(True for _ in self.pipeline.frontend.parameters())
        return 1 if encoder and self.device.type == "cpu" else None

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16")

    def probabilities(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self._autocast():
            logits = self.pipeline(
                torch.from_numpy(waveforms).to(self.device),
                torch.from_numpy(lengths).to(self.device),
            )  # (B, C)
            return logits.float().softmax(dim=1).cpu().numpy()

    def adapting_probabilities(
        self, waveforms: np.ndarray, lengths: np.ndarray,
        adaptation: RunningAdaptation | Sequence[RunningAdaptation], weights: np.ndarray,
    ) -> np.ndarray:
        """As :meth:`probabilities` for windows in recording order, each standardised with
        ``adaptation``'s statistics of the windows before it, then added to them with its
        weight (B,): the answers do not depend on how windows are batched. A sequence gives
        each window its own recording's statistics (windows of several live streams at once).
        """  # fmt: skip
        with torch.inference_mode(), self._autocast():
            features = self.pipeline.frontend(
                torch.from_numpy(waveforms).to(self.device),
                torch.from_numpy(lengths).to(self.device),
            )
            normalised: dict[str, list] = {name: [] for name in features}
            scales = []  # the temperature relaxes as the statistics become the recording's
            for i in range(len(lengths)):
                own = adaptation if isinstance(adaptation, RunningAdaptation) else adaptation[i]
                window = {name: (x[i : i + 1], n[i : i + 1]) for name, (x, n) in features.items()}
                for name, (x, _) in own.normalised(window).items():
                    normalised[name].append(x)
                scales.append(logit_scale(self.pipeline, own.share))
                own.update(window, torch.from_numpy(weights[i : i + 1]))
            inputs = {name: (torch.cat(parts), features[name][1])
                      for name, parts in normalised.items()}  # fmt: skip
            logits = self.pipeline.net(inputs).float()  # (B, C)
            logits = logits * torch.tensor(scales, device=logits.device)[:, None]
            return logits.softmax(dim=1).cpu().numpy()

    def embeddings(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """float32 (B, S) zero-padded waveforms, (B,) lengths -> pooled representations (B, E)."""
        with torch.inference_mode(), self._autocast():
            pooled = self.pipeline.embed(
                torch.from_numpy(waveforms).to(self.device),
                torch.from_numpy(lengths).to(self.device),
            )  # (B, E)
            return pooled.float().cpu().numpy()


def window_probabilities(backend: Backend, windows: list[np.ndarray]) -> np.ndarray:
    """Windows of any lengths -> ``backend``'s probabilities (N, C), in one batch padded to
    whole seconds (:func:`~emofuse.inference.windows.padded`)."""
    if not windows:
        return np.zeros((0, len(backend.labels)), np.float32)
    return backend.probabilities(*padded(windows, multiple=backend.sample_rate))
