"""The whole recogniser as one module: waveform -> features -> normalisation -> network.

A saved model is one file holding the feature settings, the model settings, the label names
and the weights (normalisation statistics included); :func:`load_pipeline` reads it with
``weights_only=True``, so loading runs no pickled code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from emofuse.signal.transforms import FeatureConfig, FeatureExtractor, FeatureNormalizer
from emofuse.model import EmotionNet, ModelConfig
from emofuse.signal.prosody import N_PROSODY

__all__ = [
    "EmotionPipeline",
    "save_pipeline",
    "load_pipeline",
    "load_bundled_pipeline",
    "ModelFileError",
]

FORMAT = "emofuse-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or not an emofuse model."""


class EmotionPipeline(nn.Module):
    """Features, training-fold normalisation and :class:`EmotionNet` in one module."""

    def __init__(
        self,
        feature_config: FeatureConfig,
        model_config: ModelConfig,
        labels: list[str] | tuple[str, ...],
    ) -> None:
        super().__init__()
        if len(labels) != model_config.n_classes:
            raise ValueError(
                f"{len(labels)} label names for a model with {model_config.n_classes} classes"
            )
        if (feature_config.n_mfcc, feature_config.n_mels) != (
            model_config.n_mfcc,
            model_config.n_mels,
        ):
            raise ValueError(
                f"features give {feature_config.n_mfcc} MFCC / {feature_config.n_mels} mels but "
                f"the model expects {model_config.n_mfcc} / {model_config.n_mels}"
            )
        if feature_config.prosody != model_config.prosody:
            raise ValueError(
                f"features.prosody is {feature_config.prosody} but model.prosody is "
                f"{model_config.prosody}; set both"
            )
        self.feature_config = feature_config
        self.model_config = model_config
        self.labels = tuple(labels)
        self.extractor = FeatureExtractor(feature_config)
        self.mfcc_norm = FeatureNormalizer(feature_config.n_mfcc)
        self.logmel_norm = FeatureNormalizer(feature_config.n_mels)
        self.prosody_norm = FeatureNormalizer(N_PROSODY) if feature_config.prosody else None
        self.net = EmotionNet(model_config)

    def _streams(self) -> Iterator[tuple[FeatureNormalizer | None, slice | None]]:
        """(normaliser or None, its rows in the stacked features) for MFCC, log-Mel, prosody."""
        norms = (self.mfcc_norm, self.logmel_norm, self.prosody_norm)
        return zip(norms, self.feature_config.stream_rows, strict=True)

    def fit_normalizers(self, sums: Tensor, squares: Tensor, count: int) -> None:
        """Set every stream's statistics from per-row sums and squares (n_rows,) over frames."""
        for norm, rows in self._streams():
            if norm is not None:
                norm.fit(sums[rows], squares[rows], count)

    def forward_features(self, features: Tensor, frames: Tensor) -> Tensor:
        """Raw stacked features (B, n_rows, T), frame lengths (B,) -> logits (B, C).

        Rows as :meth:`emofuse.signal.transforms.FeatureExtractor.rows` stacks them.
        """
        mfcc, logmel, prosody = (
            None if norm is None else norm(features[:, rows], frames)  # zero past each length
            for norm, rows in self._streams()
        )
        return self.net(mfcc, logmel, frames, prosody=prosody)

    def forward(self, waveforms: Tensor, lengths: Tensor) -> Tensor:
        """Padded waveforms (B, samples), lengths (B,) -> logits (B, C)."""
        features, frames = self.extractor.rows(waveforms, lengths)
        return self.forward_features(features, frames)

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "feature_config": self.feature_config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "labels": list(self.labels),
        }


def save_pipeline(pipeline: EmotionPipeline, path: str | os.PathLike, **extra: object) -> None:
    """Write the model file atomically (temporary file, then rename); ``extra`` is stored too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**pipeline.metadata(), "extra": extra, "state_dict": pipeline.state_dict()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _one_line(error: Exception, limit: int = 300) -> str:
    """``Type: message`` on one line, cut at ``limit`` characters (torch's can be long)."""
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_pipeline(path: str | os.PathLike, map_location: str = "cpu") -> EmotionPipeline:
    """Read a model file written by :func:`save_pipeline`; eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise ModelFileError(f"{path}: not a readable emofuse model ({_one_line(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an emofuse model file")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written by a newer emofuse (format {payload['format_version']}); upgrade"
        )
    try:
        pipeline = EmotionPipeline(
            FeatureConfig.from_dict(payload["feature_config"]),
            ModelConfig.from_dict(payload["model_config"]),
            payload["labels"],
        )
        pipeline.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # a damaged model file
        raise ModelFileError(f"{path}: damaged emofuse model file ({_one_line(error)})") from None
    pipeline.extra = payload.get("extra", {})
    return pipeline.eval()


def load_bundled_pipeline(map_location: str = "cpu") -> EmotionPipeline:
    """The pretrained model shipped as package data (``emofuse/pretrained/bundled.pt``)."""
    from importlib import resources

    bundled = resources.files("emofuse") / "pretrained" / "bundled.pt"
    if not bundled.is_file():
        raise ModelFileError(
            "no bundled model is installed (emofuse/pretrained/bundled.pt); "
            "pass the path of a model file"
        )
    with resources.as_file(bundled) as file:
        return load_pipeline(file, map_location)
