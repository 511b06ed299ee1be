"""The bundled pretrained model as a user gets it: package data, card, example clips."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch

from emofuse.corpora.labels import get_task
from emofuse.inference.recognizer import EmotionRecognizer
from emofuse.pipeline import EvalWindows, load_bundled_pipeline
from emofuse.signal.streams import default_streams

PRETRAINED = resources.files("emofuse") / "pretrained"
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.flac"))


def test_bundled_model_is_small_package_data_with_a_card():
    assert PRETRAINED.joinpath("bundled.pt").is_file()
    with resources.as_file(PRETRAINED / "bundled.pt") as path:
        assert path.stat().st_size < 10_000_000
    card = PRETRAINED.joinpath("MODEL_CARD.md").read_text()
    for needle in ("EmoDB", "RAVDESS", "EMOVO", "CC BY-NC-SA", "Leave one corpus out"):
        assert needle in card


def test_bundled_model_has_the_bundled7_labels():
    pipeline = load_bundled_pipeline()
    assert pipeline.labels == get_task("bundled7").labels
    assert 300_000 < pipeline.net.num_parameters() < 2_000_000


def test_bundled_model_is_a_version_1_file_read_as_the_paper_streams():
    with resources.as_file(PRETRAINED / "bundled.pt") as path:
        payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == 1 and "feature_config" in payload
    pipeline = load_bundled_pipeline()
    assert pipeline.streams == default_streams()  # the paper's two streams, default settings
    assert pipeline.windows == EvalWindows()  # version 1 files evaluated 3 s windows, hop 1.5 s
    assert not pipeline.training


@pytest.mark.skipif(len(EXAMPLES) != 4, reason="the examples/ folder is not beside the package")
def test_example_clips_get_their_acted_emotions():
    """Packaging sanity check: three of the clips were training data, so this is no accuracy."""
    predictions = EmotionRecognizer.load().predict_many(EXAMPLES)
    acted = [p.stem.rsplit("-", 1)[1] for p in EXAMPLES]
    hits = sum(pred.label == label for pred, label in zip(predictions, acted, strict=True))
    assert hits >= 3, [(p.label, p.confidence) for p in predictions]
