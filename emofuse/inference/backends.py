"""What runs the model behind a recogniser: the :class:`Backend` protocol and
:class:`TorchBackend` (an :class:`~emofuse.pipeline.EmotionPipeline`); the ONNX one is
:class:`emofuse.inference.onnx.OnnxBackend`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from emofuse.device import resolve_device
from emofuse.inference.adapt import RunningAdaptation, logit_scale
from emofuse.inference.windows import padded
from emofuse.pipeline import EmotionPipeline

__all__ = ["Backend", "PRECISIONS", "TorchBackend", "window_probabilities"]


class Backend(Protocol):
    """What runs the model: padded mono waveforms at ``sample_rate`` -> class probabilities.

    ``window_seconds`` / ``hop_seconds``: the evaluation windows the model was validated with.
    ``speech_only``: the model was trained on the speech the voice activity detector finds, so
    a clip's other samples are dropped before it runs.
    """

    labels: tuple[str, ...]
    sample_rate: int
    window_seconds: float
    hop_seconds: float
    speech_only: bool

    def probabilities(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """float32 (B, S) zero-padded waveforms, int64 (B,) lengths -> softmax (B, C)."""
        ...


PRECISIONS = ("fp32", "bf16")


class TorchBackend:
    """An :class:`EmotionPipeline` (moved to ``device``; ``auto``: CUDA when present).

    ``precision="bf16"`` runs matrix products and convolutions in bfloat16 (``torch.autocast``):
    on CPUs with bfloat16 units (AMX, AVX512-BF16) faster for the accurate model, with slightly
    different probabilities (the measured speed-up and agreement: docs/benchmarks.md);
    on CPUs without bfloat16 units it is slower.
    """

    def __init__(
        self, pipeline: EmotionPipeline, device: str = "auto", precision: str = "fp32"
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected fp32 or bf16")
        self.device = resolve_device(device)
        self.precision = precision
        self.pipeline = pipeline.to(self.device).eval()
        self.labels = tuple(pipeline.labels)
        self.sample_rate = pipeline.sample_rate
        self.window_seconds = pipeline.windows.window_seconds
        self.hop_seconds = pipeline.windows.hop_seconds
        self.speech_only = bool(getattr(pipeline, "extra", {}).get("speech_only", False))

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
        each window its own recording's statistics (windows of several streams at once).
        """  # fmt: skip
        with torch.inference_mode(), self._autocast():
            streams = self.pipeline.frontend(
                torch.from_numpy(waveforms).to(self.device),
                torch.from_numpy(lengths).to(self.device),
            )
            normalised: dict[str, list] = {name: [] for name in streams}
            scales = []  # the temperature relaxes as the statistics become the recording's
            for i in range(len(lengths)):
                own = adaptation if isinstance(adaptation, RunningAdaptation) else adaptation[i]
                window = {name: (x[i : i + 1], n[i : i + 1]) for name, (x, n) in streams.items()}
                for name, (x, _) in own.normalised(window).items():
                    normalised[name].append(x)
                scales.append(logit_scale(self.pipeline, own.share))
                own.update(window, torch.from_numpy(weights[i : i + 1]))
            inputs = {name: (torch.cat(parts), streams[name][1])
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
