"""The model file: one versioned file holding the features, the model settings, the label names,
the evaluation windows and the weights (normalisation statistics included).

:func:`load_pipeline` reads it with ``weights_only=True``, so loading runs no pickled code.
Version 3 is written. Older versions are read through :mod:`emofuse.migrate`: version 2 called
the feature list ``streams``; version 1 had one ``feature_config`` and switches in the model
config.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from emofuse.features import FeatureSpec
from emofuse.files import atomic_path
from emofuse.migrate import features_from_v1, features_from_v2, state_dict_from_v1
from emofuse.model import ModelConfig
from emofuse.pipeline.pipeline import EmotionPipeline, EvalWindows

__all__ = [
    "save_pipeline",
    "load_pipeline",
    "load_bundled_pipeline",
    "load_model",
    "BUNDLED_MODELS",
    "ModelFileError",
    "FORMAT",
    "FORMAT_VERSION",
]

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
# The models shipped as package data (emofuse/pretrained/<name>.pt), the default first:
# accurate (a frozen Whisper base encoder feature) and fast (the paper's network).
BUNDLED_MODELS = ("accurate", "fast")
FORMAT = "emofuse-model"
FORMAT_VERSION = 3


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or not an emofuse model."""


def _metadata(pipeline: EmotionPipeline) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "features": [s.to_dict() for s in pipeline.features],
        "model_config": pipeline.model_config.to_dict(),
        "labels": list(pipeline.labels),
        "eval_windows": pipeline.windows.to_dict(),
    }


def save_pipeline(pipeline: EmotionPipeline, path: str | os.PathLike, **extra: object) -> None:
    """Write the model file atomically; ``extra`` (plain values) is stored too. Pretrained
    front-end weights (a Whisper encoder) are stored in float16, loaded back as float32."""
    state = {
        key: value.half() if key.startswith("frontend.") and value.is_floating_point() else value
        for key, value in pipeline.state_dict().items()
    }
    payload = {**_metadata(pipeline), "extra": extra, "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _one_line(error: Exception, limit: int = 300) -> str:
    """``Type: message`` on one line, cut at ``limit`` characters (torch's can be long)."""
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive (since torch 1.6)


def _required_keys(payload: dict) -> tuple[str, ...]:
    version = payload.get("format_version", 1)
    if version == 1:
        return ("feature_config", "model_config", "labels", "state_dict")
    features = "streams" if version == 2 else "features"
    return (features, "model_config", "labels", "eval_windows", "state_dict")


def _why_unloadable(path: Path, head: bytes, error: Exception) -> str:
    """What a file that ``torch.load`` refused is, for a user: torch's own messages describe
    its formats (or advise ``weights_only=False``, which would run pickled code), not the file."""
    if not head:
        return "not an emofuse model file (empty file)"
    if not head.startswith(_ZIP_MAGIC):
        return "not an emofuse model file"  # text, audio, ...: torch reads it as a legacy pickle
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "damaged or truncated model file (an incomplete zip archive)"
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        return "not an emofuse model file (a zip archive that is no torch file)"
    if isinstance(error, pickle.UnpicklingError):  # weights_only refused a pickled object
        return (
            "not an emofuse model file (a torch file holding Python objects beyond tensors and "
            "plain values, which emofuse does not load)"
        )
    return f"damaged emofuse model file ({_one_line(error)})"


def _read_payload(path: Path, map_location: str) -> object:
    """``torch.load`` with ``weights_only=True``; every failure as one ``ModelFileError`` line."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise ModelFileError(f"{path}: {_why_unloadable(path, head, error)}") from None


def _from_payload(payload: dict) -> EmotionPipeline:
    """Build the pipeline of a version 1, 2 or 3 payload and load its weights."""
    state = payload["state_dict"]
    if payload.get("format_version", 1) == 2:
        payload = features_from_v2(payload)
    if payload.get("format_version", 1) == 1:
        features, model = features_from_v1(payload["feature_config"], payload["model_config"])
        names = {s.name for s in features}
        state = {  # version 1 kept a normaliser for MFCC and log-Mel even in one-branch models
            k: v
            for k, v in state_dict_from_v1(state).items()
            if not k.startswith("normalizers.") or k.split(".")[1] in names
        }
        windows = EvalWindows()
    else:
        features = [FeatureSpec.from_dict(s) for s in payload["features"]]
        model = payload["model_config"]
        windows = EvalWindows(**payload["eval_windows"])
    pipeline = EmotionPipeline(
        features, ModelConfig.from_dict(model), payload["labels"], windows=windows, pretrained=False
    )
    pipeline.load_state_dict(state)
    return pipeline


def load_pipeline(path: str | os.PathLike, map_location: str = "cpu") -> EmotionPipeline:
    """Read a model file written by :func:`save_pipeline` (any version); eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix.lower() == ".onnx":
        raise ModelFileError(
            f"{path}: an ONNX model; run it with the onnx backend "
            "(--backend onnx, or EmotionRecognizer.load(path, backend='onnx'))"
        )
    payload = _read_payload(path, map_location)
    if not isinstance(payload, dict):
        raise ModelFileError(
            f"{path}: not an emofuse model file (a torch file holding a {type(payload).__name__})"
        )
    if payload.get("format") != FORMAT:
        raise ModelFileError(
            f"{path}: not an emofuse model file (a torch file without the {FORMAT!r} format mark)"
        )
    if not isinstance(payload.get("format_version", 1), int):
        raise ModelFileError(f"{path}: damaged emofuse model file (format_version is not a number)")
    if payload.get("format_version", 1) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written by a newer emofuse (format {payload['format_version']}); upgrade"
        )
    missing = [key for key in _required_keys(payload) if key not in payload]
    if missing:
        raise ModelFileError(f"{path}: damaged emofuse model file (missing {', '.join(missing)})")
    try:
        pipeline = _from_payload(payload)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # a damaged model file
        raise ModelFileError(f"{path}: damaged emofuse model file ({_one_line(error)})") from None
    pipeline.extra = payload.get("extra", {})
    return pipeline.eval()


def load_bundled_pipeline(
    name: str = BUNDLED_MODELS[0], map_location: str = "cpu"
) -> EmotionPipeline:
    """A pretrained model shipped as package data (``emofuse/pretrained/<name>.pt``):
    ``accurate`` (default) or ``fast``.

    Found beside this module, not through ``importlib.resources.files("emofuse")``: run from the
    folder above a clone, ``emofuse`` can import as a namespace package whose files are elsewhere.
    """
    if name not in BUNDLED_MODELS:
        raise ModelFileError(
            f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED_MODELS)}"
        )
    bundled = PRETRAINED_DIR / f"{name}.pt"
    if not bundled.is_file():
        raise ModelFileError(
            f"the bundled {name} model is not installed (emofuse/pretrained/{name}.pt); "
            "pass the path of a model file"
        )
    return load_pipeline(bundled, map_location)


def load_model(
    model: str | os.PathLike | None = None, map_location: str = "cpu"
) -> EmotionPipeline:
    """``None`` or a bundled model's name (``accurate``, ``fast``) -> that bundled model; else the
    model file at ``model``."""
    if model is None or (str(model) in BUNDLED_MODELS and not Path(model).exists()):
        return load_bundled_pipeline(str(model or BUNDLED_MODELS[0]), map_location)
    return load_pipeline(model, map_location)
