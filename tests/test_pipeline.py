"""Tests of emofuse.pipeline.pipeline: waveform -> logits, and the model file format."""

from __future__ import annotations

import pytest
import torch

from emofuse.features import FeatureFrontEnd, feature_spec
from emofuse.model import ModelConfig
from emofuse.pipeline import (
    EmotionPipeline,
    EvalWindows,
    ModelFileError,
    load_pipeline,
    save_pipeline,
)
from emofuse.pipeline.modelfile import FORMAT_VERSION

FEATURES = [feature_spec("mfcc", n_mfcc=8, n_mels=16, channels=16),
           feature_spec("logmel", n_mels=16, channels=8)]  # fmt: skip
TINY = ModelConfig(n_classes=3, d_model=16, n_heads=2, lstm_hidden=16)
LABELS = ("neutral", "happy", "sad")


@pytest.fixture
def pipeline():
    torch.manual_seed(0)
    p = EmotionPipeline(FEATURES, TINY, LABELS, windows=EvalWindows(2.0, 0.25))
    # Non-trivial statistics, so a lost buffer would show.
    p.fit_normalizers({
        "mfcc": (torch.arange(8.0) * 100, torch.full((8,), 1e5), 100),
        "logmel": (-torch.arange(16.0) * 50, torch.full((16,), 5e4), 100),
    })  # fmt: skip
    return p.eval()


def _waves():
    gen = torch.Generator().manual_seed(1)
    waves = 0.1 * torch.randn(2, 8000, generator=gen)
    lengths = torch.tensor([8000, 5000])
    waves[1, 5000:] = 0
    return waves, lengths


def test_forward_equals_frontend_then_forward_features(pipeline):
    waves, lengths = _waves()
    assert pipeline.names == ("mfcc", "logmel") and pipeline.sample_rate == 16000
    assert list(pipeline.normalizers) == list(pipeline.kinds) == ["mfcc", "logmel"]
    with torch.no_grad():
        logits = pipeline(waves, lengths)
        features = FeatureFrontEnd(FEATURES)(waves, lengths)
        expected = pipeline.forward_features(features)
    assert logits.shape == (2, 3)
    assert features["mfcc"][0].shape[1] == 8 and features["logmel"][0].shape[1] == 16
    torch.testing.assert_close(logits, expected, atol=0, rtol=0)


def test_fit_normalizers_sets_each_feature(pipeline):
    torch.testing.assert_close(pipeline.normalizers["mfcc"].mean, torch.arange(8.0))
    torch.testing.assert_close(pipeline.normalizers["logmel"].mean, -torch.arange(16.0) / 2)
    with pytest.raises(KeyError):
        pipeline.fit_normalizers({"mfcc": (torch.zeros(8), torch.ones(8), 1)})


def test_one_clip_alone_equals_its_slice_of_the_batch(pipeline):
    waves, lengths = _waves()
    with torch.no_grad():
        batch = pipeline(waves, lengths)
        alone = pipeline(waves[1:, :5000], lengths[1:])
    torch.testing.assert_close(alone, batch[1:], atol=1e-5, rtol=1e-5)


def test_save_load_round_trip(pipeline, tmp_path):
    path = tmp_path / "sub" / "model.pt"
    save_pipeline(pipeline, path, epoch=3, val_ua=0.5)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    loaded = load_pipeline(path)
    assert not loaded.training
    assert loaded.labels == LABELS
    assert loaded.features == FEATURES
    assert loaded.model_config == TINY
    assert loaded.windows == EvalWindows(2.0, 0.25)
    assert torch.load(path, weights_only=True)["format_version"] == FORMAT_VERSION == 3
    assert loaded.extra == {"epoch": 3, "val_ua": 0.5}
    waves, lengths = _waves()
    with torch.no_grad():
        torch.testing.assert_close(loaded(waves, lengths), pipeline(waves, lengths), atol=0, rtol=0)
    torch.testing.assert_close(loaded.normalizers["mfcc"].std, pipeline.normalizers["mfcc"].std)


def test_missing_model_file(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(ModelFileError, match="no such model file") as info:
        load_pipeline(path)
    assert str(path) in str(info.value)


def test_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello, I am not a model\n")
    with pytest.raises(ModelFileError, match="not an emofuse model file") as info:
        load_pipeline(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [
        {"weights": torch.zeros(3)},
        torch.zeros(3),
        [1, 2, 3],
        {"format": "something-else", "state_dict": {}},
    ],
)
def test_torch_file_that_is_not_an_emofuse_model(tmp_path, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="not an emofuse model file") as info:
        load_pipeline(path)
    assert str(path) in str(info.value)


def test_damaged_emofuse_model_file(tmp_path, pipeline):
    """A file that claims the format but lacks or garbles a part is a ModelFileError too."""
    save_pipeline(pipeline, tmp_path / "good.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    cases = {
        "no_state": {k: v for k, v in payload.items() if k != "state_dict"},
        "no_labels": {k: v for k, v in payload.items() if k != "labels"},
        "bad_config": {**payload, "model_config": {**payload["model_config"], "fusoin": "sum"}},
        "wrong_weights": {**payload, "state_dict": {"net.classifier.weight": torch.zeros(1)}},
        "no_features": {k: v for k, v in payload.items() if k != "features"},
        "bad_feature": {**payload, "features": [{"kind": "chroma"}]},
        "bad_windows": {**payload, "eval_windows": {"window_seconds": -1.0}},
        "v1_without_features": {**payload, "format_version": 1},
    }
    for name, broken in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(broken, path)
        with pytest.raises(ModelFileError) as info:
            load_pipeline(path)
        assert str(path) in str(info.value), name
        assert "\n" not in str(info.value), name  # the CLI prints it as one line


def test_newer_format_is_refused(tmp_path, pipeline):
    path = tmp_path / "future.pt"
    save_pipeline(pipeline, path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="newer emofuse"):
        load_pipeline(path)


def test_label_count_mismatch():
    with pytest.raises(ValueError, match="2 label names for a model with 3 classes"):
        EmotionPipeline(FEATURES, TINY, ["happy", "sad"])


def test_feature_list_is_checked():
    with pytest.raises(ValueError, match="distinct names"):
        EmotionPipeline([FEATURES[0], FEATURES[0]], TINY, LABELS)
    with pytest.raises(ValueError, match="distinct names"):
        EmotionPipeline([], TINY, LABELS)
    with pytest.raises(ValueError, match="different sample rates"):
        EmotionPipeline([feature_spec("mfcc"), feature_spec("logmel", sample_rate=8000,
                                                          f_max=4000.0)], TINY, LABELS)  # fmt: skip


def test_onnx_path_points_to_the_onnx_backend(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx")
    with pytest.raises(ModelFileError, match="onnx backend"):
        load_pipeline(path)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)
