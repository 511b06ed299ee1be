"""Tests of emofuse.config: YAML round trip and clear errors for bad files and values."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from emofuse.config import (
    ConfigError,
    CorpusSpec,
    DataConfig,
    ExperimentConfig,
    TrainConfig,
    load_config,
    save_config,
)
from emofuse.features import FeatureSpec, default_features, feature_spec
from emofuse.model import ModelConfig

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, text: str):
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    assert load_config(None) == ExperimentConfig()


def test_round_trip_of_every_section(tmp_path):
    config = ExperimentConfig(
        features=[
            feature_spec("mfcc", n_mels=48, n_mfcc=20, log_offset=1e-7, channels=32),
            feature_spec("logmel", name="mel", n_mels=48, log_offset=1e-7),
            feature_spec("prosody", channels=8),
        ],
        model=ModelConfig(n_classes=7, fusion="concat", pooling="attention"),
        train=TrainConfig(epochs=3, lr=3e-4, seed=17, device="cpu", mixup_alpha=0.2),
        data=DataConfig(
            corpora=[CorpusSpec("emodb", "/data/emodb"), CorpusSpec("ravdess", "rav")],
            task="emodb7",
            protocol="loso-speaker",
        ),
    )
    path = tmp_path / "config.yaml"
    save_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    assert loaded.train.seed == 17
    assert isinstance(loaded.data.corpora[0], CorpusSpec)
    # Writing the loaded config again gives the same text.
    again = tmp_path / "again.yaml"
    save_config(loaded, again)
    assert again.read_text() == path.read_text()


def test_partial_file_fills_defaults(tmp_path):
    path = _write(tmp_path, "train: {epochs: 5}\nmodel:\n  fusion: sum\n")
    config = load_config(path)
    assert config.train == TrainConfig(epochs=5)
    assert config.model == ModelConfig(fusion="sum")
    assert config.features == default_features()
    assert config.data == DataConfig()


def test_empty_file_and_empty_sections_give_defaults(tmp_path):
    assert load_config(_write(tmp_path, "")) == ExperimentConfig()
    assert load_config(_write(tmp_path, "train:\nmodel:\n")) == ExperimentConfig()


@pytest.mark.parametrize(
    "text, key",
    [
        ("trian: {epochs: 3}\n", "trian"),
        ("train: {epochz: 3}\n", "epochz"),
        ("model: {fusoin: sum}\n", "fusoin"),
        ("features: {n_mel: 40}\n", "n_mel"),
        ("features: [{kind: logmel, settings: {n_mel: 40}}]\n", "n_mel"),
        ("features: [{kind: logmel, branch: {width: 4}}]\n", "width"),
        ("features: [{kind: logmel, setting: {}}]\n", "setting"),
        ("model: {branches: both}\nfeatures: [{kind: mfcc}]\n", "features"),
        ("data: {taks: emodb7}\n", "taks"),
        ("data: {corpora: [{name: emodb, root: x, rot: y}]}\n", "rot"),
    ],
)
def test_unknown_keys_name_the_key_and_the_file(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("train: {epochs: -1}\n", ["train.epochs", "-1"]),
        ("train: {epochs: 0}\n", ["train.epochs"]),
        ("train: {lr: 0.0}\n", ["train.lr"]),
        ("train: {patience: -2}\n", ["train.patience"]),
        ("train: {eval_hop_fraction: 1.5}\n", ["eval_hop_fraction"]),
        ("train: {label_smoothing: 1.0}\n", ["label_smoothing"]),
        ("train: {device: tpu}\n", ["train.device", "tpu"]),
        ("train: {epochs: ten}\n", ["train.epochs", "ten"]),
        ("train: {batch_size: 16.5}\n", ["train.batch_size", "16.5"]),
        ("train: {lr: 1e-3}\n", ["train.lr", "1e-3"]),  # YAML 1.1 reads 1e-3 as a string
        ("train: {class_weighted: 'no'}\n", ["train.class_weighted"]),
        ("model: {d_model: 100, n_heads: 3}\n", ["d_model", "n_heads"]),
        ("features: {n_mfcc: 80}\n", ["n_mfcc"]),
        ("features: [{kind: mfcc, settings: {n_mfcc: 80}}]\n", ["mfcc", "n_mfcc"]),
        ("features: [{kind: chroma}]\n", ["unknown feature kind 'chroma'", "logmel"]),
        ("features: [{name: a b, kind: mfcc}]\n", ["identifier"]),
        ("features: [{kind: mfcc}, {kind: mfcc}]\n", ["distinct names"]),
        ("features: []\n", ["one or more features"]),
        ("features: 3\n", ["'features' must be a list"]),
        ("features: [mfcc]\n", ["must be a mapping"]),
        ("features: [{kind: mfcc, branch: {channels: 0}}]\n", ["channels"]),
        (
            "features: [{kind: mfcc}, "
            "{kind: logmel, settings: {sample_rate: 8000, f_max: 4000.0}}]\n",
            ["different sample rates"],
        ),
        ("features: {prosody: true}\n", ["features.prosody is True but model.prosody is False"]),
        ("model: {branches: all}\n", ["branches"]),
        ("data: {corpora: [emodb]}\n", ["data.corpora"]),
        ("data: {corpora: [{name: emodb}]}\n", ["root"]),
        ("data: {corpora: [{name: emodb, root: x, max_utterances: 0}]}\n", ["max_utterances"]),
        ("data: {corpora: [{name: emodb, root: x, max_utterances: 1.5}]}\n", ["max_utterances"]),
    ],
)
def test_bad_values_raise_config_error_naming_them(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message or message.startswith("train.")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "section", ["train: [1, 2]\n", "train: 5\n", "model: text\n", "train: 0\n"]
)
def test_non_mapping_section(tmp_path, section):
    path = _write(tmp_path, section)
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(path)


def test_top_level_not_a_mapping(tmp_path):
    path = _write(tmp_path, "- train\n- model\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections, got list"):
        load_config(path)


def test_invalid_yaml(tmp_path):
    path = _write(tmp_path, "train: {epochs: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "line 2" in str(info.value)
    assert "\n" not in str(info.value)  # the CLI prints errors as one line


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="no such config file") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_config_error_is_a_value_error():
    """The CLI reports ValueErrors as one-line user errors."""
    assert issubclass(ConfigError, ValueError)


def test_train_config_checks_direct_construction_and_replace():
    with pytest.raises(ConfigError, match="train.batch_size must be positive"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="train.epochs"):
        replace(TrainConfig(), epochs=-3)
    # bool is an int subclass: ``epochs: true`` would silently mean one epoch.
    with pytest.raises(ConfigError, match="train.epochs"):
        TrainConfig(epochs=True)
    assert TrainConfig(lr=1, gain_db=0).lr == 1  # ints are fine where floats are expected


def test_features_section(tmp_path):
    path = _write(
        tmp_path,
        """\
features:
  - {kind: mfcc, settings: {n_mfcc: 13}}
  - {name: mel, kind: logmel, settings: {n_mels: 40}, branch: {channels: 8}}
  - {kind: prosody}
""",
    )
    specs = load_config(path).features
    assert [(s.name, s.kind) for s in specs] == [("mfcc", "mfcc"), ("mel", "logmel"),
                                                 ("prosody", "prosody")]  # fmt: skip
    assert specs[0].settings["n_mfcc"] == 13 and specs[0].settings["n_mels"] == 64
    assert specs[0].branch == {"channels": 128}
    assert specs[1].settings["n_mels"] == 40 and specs[1].branch == {"channels": 8}
    assert specs[2] == FeatureSpec.from_dict({"kind": "prosody"})
    assert specs[2].settings == {"sample_rate": 16000, "hop_length": 160}


def test_version_1_file_loads_with_the_same_meaning_and_saves_as_today(tmp_path):
    path = _write(
        tmp_path,
        """\
features: {n_mels: 48, n_mfcc: 20, hop_length: 320, prosody: true}
model: {mfcc_channels: 32, logmel_channels: 8, prosody: true, prosody_channels: 8,
        n_mfcc: 20, n_mels: 48, fusion: sum}
train: {epochs: 3}
""",
    )
    config = load_config(path)
    assert config.features == [
        feature_spec("mfcc", n_mels=48, n_mfcc=20, hop_length=320, channels=32),
        feature_spec("logmel", n_mels=48, hop_length=320, channels=8),
        feature_spec("prosody", hop_length=320, channels=8),
    ]
    assert config.model == ModelConfig(fusion="sum") and config.train.epochs == 3
    save_config(config, tmp_path / "v3.yaml")
    text = (tmp_path / "v3.yaml").read_text()
    assert (
        "features:\n- name: mfcc" in text and "streams" not in text and "mfcc_channels" not in text
    )
    assert load_config(tmp_path / "v3.yaml") == config


@pytest.mark.parametrize(
    ("branches", "names"),
    [("both", ["mfcc", "logmel"]), ("mfcc", ["mfcc"]), ("logmel", ["logmel"])],
)
def test_version_1_branch_switch(tmp_path, branches, names):
    path = _write(tmp_path, f"model: {{branches: {branches}}}\n")
    assert [s.name for s in load_config(path).features] == names
