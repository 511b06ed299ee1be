"""The bundled pretrained model as a user gets it: package data, card, example clips."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch

from emofuse.corpora.labels import get_task
from emofuse.features import default_features
from emofuse.inference.recognizer import EmotionRecognizer
from emofuse.pipeline import EvalWindows, load_bundled_pipeline

PRETRAINED = resources.files("emofuse") / "pretrained"
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.flac"))


@pytest.mark.parametrize("name, limit", [("accurate", 40_000_000), ("fast", 10_000_000)])
def test_bundled_models_are_small_package_data_with_a_card(name, limit):
    assert PRETRAINED.joinpath(f"{name}.pt").is_file()
    with resources.as_file(PRETRAINED / f"{name}.pt") as path:
        assert path.stat().st_size < limit
    card = PRETRAINED.joinpath("MODEL_CARD.md").read_text()
    for needle in ("EmoDB", "RAVDESS", "EMOVO", "ASED", "CC BY-NC-SA", "Leave one corpus out",
                   "Whisper", "MIT", f"{name}.pt"):  # fmt: skip
        assert needle in card


@pytest.mark.parametrize("name, least", [("accurate", 10_000), ("fast", 100_000)])
def test_bundled_models_have_the_bundled7_labels(name, least):
    pipeline = load_bundled_pipeline(name)
    assert pipeline.labels == get_task("bundled7").labels
    assert least < pipeline.net.num_parameters() < 2_000_000  # accurate: a linear head


def test_the_accurate_model_carries_its_truncated_encoder_in_float16():
    with resources.as_file(PRETRAINED / "accurate.pt") as path:
        payload = torch.load(path, weights_only=True)
    state = payload["state_dict"]
    encoder = {k: v for k, v in state.items() if k.startswith("frontend.")}
    floats = [v for v in encoder.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    pipeline = load_bundled_pipeline("accurate")
    (whisper,) = [s for s in pipeline.features if s.kind == "whisper"]
    depth = max(whisper.settings["layers"])
    assert len(pipeline.frontend.extractors[whisper.name].encoder.layers) == depth < 6


def test_the_fast_model_is_the_paper_network_trained_per_speaker():
    with resources.as_file(PRETRAINED / "fast.pt") as path:
        payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == 3
    pipeline = load_bundled_pipeline("fast")
    assert pipeline.features == default_features()  # the paper's two features, default settings
    assert pipeline.windows == EvalWindows()  # 3 s windows, hop 1.5 s
    assert pipeline.extra["normalised_per"] == "speaker"  # its timelines adapt to themselves
    assert not pipeline.training


@pytest.mark.skipif(len(EXAMPLES) != 4, reason="the examples/ folder is not beside the package")
@pytest.mark.parametrize("name, least", [("accurate", 3), ("fast", 2)])
def test_example_clips_get_their_acted_emotions(name, least):
    """Packaging sanity check, no accuracy: the clips are EmoDB, which both models trained on
    (the fast model on at most 800 clips a corpus, speaker 16 of the happy clip held out for
    validation, 6 epochs: it gets two of the four); chance would get about one in seven."""
    predictions = EmotionRecognizer.load(name).predict_many(EXAMPLES)
    acted = [p.stem.rsplit("-", 1)[1] for p in EXAMPLES]
    hits = sum(pred.label == label for pred, label in zip(predictions, acted, strict=True))
    assert hits >= least, [(p.label, p.confidence) for p in predictions]
