"""Files written before the features were called features (version 2: ``streams``) still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emofuse.config import ConfigError, load_config, save_config
from emofuse.inference import EmotionRecognizer, TorchBackend
from emofuse.pipeline import load_model
from emofuse.pipeline.modelfile import FORMAT_VERSION, PRETRAINED_DIR
from emofuse.testing import synthetic_voice

DATA = Path(__file__).parent / "data"


def test_a_model_file_written_before_the_rename_gives_the_same_probabilities():
    """``model-v2-streams.pt`` was written by emofuse before the rename (a tiny three-feature
    model, format version 2, its list under ``streams``); its probabilities on a synthetic voice
    were saved then, by that code."""
    path = DATA / "model-v2-streams.pt"
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == 2 and "streams" in payload and "features" not in payload
    pipeline = load_model(path)
    assert [s.name for s in pipeline.features] == ["mfcc", "logmel", "prosody"]
    recognizer = EmotionRecognizer(TorchBackend(pipeline, device="cpu"), vad=False)
    prediction = recognizer.predict(synthetic_voice(2.0), sample_rate=16000)
    got = np.array([prediction.probabilities[k] for k in recognizer.labels])
    np.testing.assert_array_equal(got, np.load(DATA / "model-v2-streams-probabilities.npy"))


@pytest.mark.parametrize("name", ["accurate", "fast"])
def test_the_bundled_models_carry_their_measured_bf16_agreement(name):
    """Re-saved (format 3) with ``bench/precision.py --save-into-models``: the same weights,
    plus the share of equal labels per shared corpus that ``--precision auto`` reads."""
    payload = torch.load(PRETRAINED_DIR / f"{name}.pt", weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    agreement = load_model(name).extra["bf16_agreement"]
    assert set(agreement) == {"emodb", "ravdess", "emovo", "ased"}
    assert all(0.9 < share <= 1.0 for share in agreement.values())


def test_resaved_model_files_are_the_current_version(tmp_path):
    from emofuse.pipeline import save_pipeline

    save_pipeline(load_model(DATA / "model-v2-streams.pt"), tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION == 3
    assert "features" in payload and "streams" not in payload


def test_a_version_2_config_loads_and_saves_as_features(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("streams:\n  - {kind: mfcc, branch: {channels: 16}}\n  - {kind: prosody}\n")
    config = load_config(path)
    assert [s.name for s in config.features] == ["mfcc", "prosody"]
    save_config(config, tmp_path / "new.yaml")
    text = (tmp_path / "new.yaml").read_text()
    assert "features:" in text and "streams" not in text
    assert load_config(tmp_path / "new.yaml") == config


def test_streams_and_features_together_are_refused(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("streams: [{kind: mfcc}]\nfeatures: [{kind: logmel}]\n")
    with pytest.raises(ConfigError, match="both 'streams'.*'features'"):
        load_config(path)


def test_version_1_switches_with_a_features_list_are_refused(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text("model: {branches: mfcc}\nfeatures: [{kind: mfcc}]\n")
    with pytest.raises(ConfigError, match="branches are version-1 switches"):
        load_config(path)
