"""The whole recogniser as one module: waveform -> feature frames -> normalisation -> network.

:class:`EmotionPipeline` iterates over its features (:mod:`emofuse.features`): the front
end computes each feature's frames, each feature's normaliser standardises them with
training-fold statistics, and :class:`~emofuse.model.EmotionNet` reads them by name. It also
carries the evaluation windows the model was validated with, so inference cuts audio the same
way. Saving and loading: :mod:`emofuse.pipeline.modelfile`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from torch import Tensor, nn

from emofuse.config import ExperimentConfig
from emofuse.features import FeatureFrontEnd, FeatureSpec, branch_spec
from emofuse.model import EmotionNet, ModelConfig

__all__ = ["EmotionPipeline", "EvalWindows", "FeatureMoments", "pipeline_from_config"]

# feature name -> (per-row sums (dims,), per-row sums of squares (dims,), frame count)
FeatureMoments = Mapping[str, tuple[Tensor, Tensor, int]]


@dataclass(frozen=True)
class EvalWindows:
    """How an utterance is evaluated: windows of ``window_seconds`` every ``window_seconds *
    hop_fraction``, their posteriors averaged (the last window ends at the end)."""

    window_seconds: float = 3.0
    hop_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not self.window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {self.window_seconds}")
        if not 0 < self.hop_fraction <= 1:
            raise ValueError(f"hop_fraction must be in (0, 1], got {self.hop_fraction}")

    @property
    def hop_seconds(self) -> float:
        return self.window_seconds * self.hop_fraction

    def to_dict(self) -> dict:
        return asdict(self)


class EmotionPipeline(nn.Module):
    """Feature front end, per-feature normalisers and :class:`EmotionNet` in one module.

    ``forward``: padded waveforms (B, S), lengths (B,) -> logits (B, C).
    ``forward_features``: ``{name: (raw frames (B, dims, T_s), frame lengths (B,))}`` -> logits.
    """

    def __init__(
        self,
        features: Sequence[FeatureSpec],
        model_config: ModelConfig,
        labels: Sequence[str],
        *,
        windows: EvalWindows = EvalWindows(),
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        if len(labels) != model_config.n_classes:
            raise ValueError(
                f"{len(labels)} label names for a model with {model_config.n_classes} classes"
            )
        self.model_config = model_config
        self.labels = tuple(labels)
        self.windows = windows
        self.frontend = FeatureFrontEnd(features, pretrained=pretrained)  # checks the list
        self.features = self.frontend.specs
        self.kinds = self.frontend.kinds
        self.normalizers = nn.ModuleDict({n: k.normalizer() for n, k in self.kinds.items()})
        self.net = EmotionNet(model_config, [branch_spec(s) for s in self.features])
        self._check_step_rates()
        self.extra: dict[str, Any] = {}  # what a model file stores besides the weights

    def _check_step_rates(self) -> None:
        """Every feature must reach the fusion at the same steps per second."""
        rates = {
            name: kind.frame_rate / self.net.branches[name].time_stride
            for name, kind in self.kinds.items()
        }
        if len(set(rates.values())) > 1:
            detail = ", ".join(f"{n} {r:g}/s" for n, r in rates.items())
            raise ValueError(
                f"features reach the fusion at different rates ({detail}): each feature's frame "
                "rate divided by its branch's time stride must be equal"
            )

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    def fit_normalizers(self, moments: FeatureMoments) -> None:
        """Set every feature's statistics from its per-row sums and squares over frames."""
        for name, norm in self.normalizers.items():
            norm.fit(*moments[name])

    def forward_features(self, features: Mapping[str, tuple[Tensor, Tensor]]) -> Tensor:
        """Raw frames of every feature -> logits (B, C)."""
        return self.net(self.normalised(features))

    def normalised(self, features: Mapping[str, tuple[Tensor, Tensor]]) -> dict:
        """Raw frames of every feature -> standardised frames (zero past lengths), lengths."""
        return {name: (norm(features[name][0], features[name][1]), features[name][1])
                for name, norm in self.normalizers.items()}  # fmt: skip

    def forward(self, waveforms: Tensor, lengths: Tensor) -> Tensor:
        """Padded waveforms (B, samples), lengths (B,) -> logits (B, C)."""
        return self.forward_features(self.frontend(waveforms, lengths))

    def embed(self, waveforms: Tensor, lengths: Tensor) -> Tensor:
        """Padded waveforms (B, samples), lengths (B,) -> pooled representations (B, E)."""
        return self.net.embed(self.normalised(self.frontend(waveforms, lengths)))

    def summary(self) -> str:
        """The features (kind, rows, frame rate), labels, windows, then the network's layers."""
        lines = ["features:"]
        for spec in self.features:
            kind = self.kinds[spec.name]
            lines.append(
                f"  {spec.name}: {spec.kind}, {kind.dims} rows at {kind.frame_rate:g} "
                f"frames/s, branch {kind.branch_type} x{spec.branch['channels']}"
            )
        frozen = sum(p.numel() for p in self.frontend.parameters())
        if frozen:
            lines.append(f"frozen front end (pretrained, not trained): {frozen:,} parameters")
        w = self.windows
        lines += [f"labels: {', '.join(self.labels)}",
                  f"evaluation: {w.window_seconds:g} s windows every {w.hop_seconds:g} s",
                  self.net.summary()]  # fmt: skip
        return "\n".join(lines)


def pipeline_from_config(
    config: ExperimentConfig, labels: Sequence[str] | None = None
) -> EmotionPipeline:
    """An untrained pipeline of ``config`` (features, model, evaluation windows); ``labels``
    default to ``class_0 ... class_{n-1}`` for ``config.model.n_classes``."""
    if labels is None:
        labels = [f"class_{i}" for i in range(config.model.n_classes)]
    model = replace(config.model, n_classes=len(labels))
    windows = EvalWindows(config.train.eval_window_seconds, config.train.eval_hop_fraction)
    return EmotionPipeline(config.features, model, labels, windows=windows)
