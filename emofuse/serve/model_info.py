"""What ``GET /v1/model`` says about the model actually served: its labels, rate and windows,
what it is made of and, for a bundled model, its card and training report; for a user's model
file, the metadata stored in it (or in an ONNX export's sidecar)."""

from __future__ import annotations

import json
from pathlib import Path

from emofuse.inference.recognizer import EmotionRecognizer
from emofuse.pipeline.modelfile import BUNDLED_MODELS, PRETRAINED_DIR

__all__ = ["bundled_card", "model_description"]

# training-report fields worth a client's attention (not the per-epoch history)
TRAINING_FIELDS = ("task", "train_utterances", "train_labels", "dropped", "best_epoch", "val_ua",
                   "head", "temperature", "leave_one_corpus_out_ua")  # fmt: skip


def bundled_card(name: str, card: Path = PRETRAINED_DIR / "MODEL_CARD.md") -> str | None:
    """The bundled models' card cut to ``name``: its opening (what both share) and the
    ``## name`` section; None when the card is not installed."""
    try:
        text = card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    sections = text.split("\n## ")
    own = [s for s in sections[1:] if s.split(maxsplit=1)[0] == name]
    return "\n## ".join([sections[0].rstrip() + "\n", *own]).rstrip() + "\n"


def _training_report(name: str) -> dict | None:
    try:
        report = json.loads((PRETRAINED_DIR / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return {key: report[key] for key in TRAINING_FIELDS if key in report}


def model_description(recognizer: EmotionRecognizer, name: str | None = None) -> dict:
    """The served model: ``name`` (default: the bundled model's name or the file's name),
    ``source`` (``bundled``, ``file``, or ``object``: a recogniser built in code), labels,
    sample rate, evaluation windows, backend, voice activity detection,
    ``adapts_to_recording``, ``metadata`` (what the model file stores besides its weights),
    ``training`` and ``model_card`` (bundled models only)."""
    backend, source = recognizer.backend, recognizer.source
    bundled = source in BUNDLED_MODELS
    metadata = dict(backend.metadata)
    return {
        "name": name or (source if bundled else Path(source).name if source else "model"),
        "source": "bundled" if bundled else "file" if source else "object",
        "labels": list(recognizer.labels),
        "sample_rate": recognizer.sample_rate,
        "window_seconds": backend.window_seconds,
        "hop_seconds": backend.hop_seconds,
        "backend": backend.name,
        "precision": backend.precision_choice.to_dict(),
        "vad": recognizer.vad is not None,
        "adapts_to_recording": backend.normalised_per == "speaker",
        "metadata": metadata,
        "training": _training_report(source) if bundled else None,
        "model_card": bundled_card(source) if bundled else None,
    }
