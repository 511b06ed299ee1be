"""The features redesign, done when: a new feature kind is one class plus one config entry;
features at other frame rates stay aligned; the cache keeps one folder per feature; version-1
configs and model files still load; the front end is frozen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor, nn

import emofuse.pipeline.cache
from emofuse.config import ExperimentConfig, TrainConfig, load_config, save_config
from emofuse.features import (
    FEATURE_KINDS,
    FeatureFrontEnd,
    FeatureKind,
    branch_spec,
    default_features,
    feature_spec,
    frame_rates,
    register_feature_kind,
)
from emofuse.migrate import V1_STATE_RENAMES, state_dict_from_v1
from emofuse.model import ModelConfig
from emofuse.pipeline import (
    EmotionPipeline,
    load_bundled_pipeline,
    load_pipeline,
    pipeline_from_config,
    save_pipeline,
)
from emofuse.pipeline.cache import FeatureCache
from emofuse.signal.audio import load_audio
from emofuse.signal.functional import frame_lengths
from emofuse.testing import synthetic_voice, tiny_pipeline
from emofuse.training.batches import FeatureSet, random_crops, utterance_windows
from emofuse.training.train import fit

SR = 16000
REPO = Path(__file__).resolve().parents[1]
LABELS = ["neutral", "happy", "sad"]


# --------------------------------------------------------------------------- a toy feature kind


@dataclass(frozen=True)
class LoudnessSettings:
    sample_rate: int = 16000
    hop_length: int = 160
    win_length: int = 400


class Loudness(nn.Module):
    """Frame RMS in dB: (B, S), lengths -> (B, 1, 1 + S // hop), frame lengths."""

    def __init__(self, settings: LoudnessSettings) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, waveforms: Tensor, lengths: Tensor, memo: dict | None = None):
        s = self.settings
        half = s.win_length // 2
        padded = nn.functional.pad(waveforms, (half, half))  # centred frames, zero padding
        frames = padded.unfold(-1, s.win_length, s.hop_length)  # (B, T, win)
        power = frames.square().mean(dim=-1).clamp_min(1e-10)  # (B, T)
        T = 1 + waveforms.shape[-1] // s.hop_length
        return 10 * torch.log10(power[:, None, :T]), frame_lengths(lengths, s.hop_length)


class LoudnessKind(FeatureKind):
    kind = "loudness"
    settings_type = LoudnessSettings
    branch_type = "conv1d"
    default_channels = 8

    @property
    def dims(self) -> int:
        return 1

    def extractor(self) -> nn.Module:
        return Loudness(self.settings)

    def apply_gain(self, frames: Tensor, gain: Tensor) -> None:
        frames += gain[:, None, None] * 10 / math.log(10)


@pytest.fixture
def loudness():
    register_feature_kind(LoudnessKind)
    yield LoudnessKind
    del FEATURE_KINDS["loudness"]


CONFIG_YAML = """\
features:
  - {kind: mfcc, settings: {n_mfcc: 13}, branch: {channels: 16}}
  - {kind: logmel, settings: {n_mels: 32}, branch: {channels: 8}}
  - {kind: loudness, name: level, settings: {HOP}}
model: {d_model: 16, n_heads: 2, lstm_hidden: 8}
train: {epochs: 2, batch_size: 4, crop_seconds: 0.5, eval_window_seconds: 0.5, warmup_epochs: 1,
        device: cpu, seed: 0, time_masks: 1, time_mask_frames: 5, freq_masks: 1,
        freq_mask_bins: 4, gain_db: 3.0}
"""


def _config(tmp_path: Path, hop: int = 160) -> ExperimentConfig:
    path = tmp_path / "loudness.yaml"
    path.write_text(CONFIG_YAML.replace("{HOP}", f"{{hop_length: {hop}}}"))
    return load_config(path)


def _clips(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        wave = synthetic_voice(0.6 + 0.1 * (i % 4), pitch=120.0 + 60 * (i % 3), seed=i)
        path = folder / f"clip{i}.wav"
        sf.write(path, wave * (0.3 + 0.3 * (i % 3)), SR)
        paths.append(path)
    return paths


def _feature_set(cache: FeatureCache, paths: list[Path]) -> FeatureSet:
    labels = [i % 3 for i in range(len(paths))]
    return FeatureSet.from_arrays(cache.get_many(paths), labels, [p.stem for p in paths],
                                  frame_rates(cache.features))  # fmt: skip


def test_a_new_feature_kind_is_one_class_and_one_config_entry(tmp_path, loudness):
    config = _config(tmp_path)
    assert [(s.name, s.kind) for s in config.features] == [
        ("mfcc", "mfcc"), ("logmel", "logmel"), ("level", "loudness")]  # fmt: skip
    assert config.features[2].branch == {"channels": 8}  # the kind's default
    save_config(config, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == config

    # The pipeline runs on waveforms.
    pipeline = pipeline_from_config(config, LABELS).eval()
    assert pipeline.names == ("mfcc", "logmel", "level")
    assert branch_spec(config.features[2]).in_dims == 1
    waves = torch.from_numpy(np.stack([synthetic_voice(0.5), synthetic_voice(0.5, seed=1)]))
    with torch.no_grad():
        logits = pipeline(waves, torch.tensor([8000, 6000]))
        frames, lengths = pipeline.frontend(waves, torch.tensor([8000, 6000]))["level"]
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert frames.shape == (2, 1, 51) and lengths.tolist() == [51, 38]

    # fit on cached frames, then the model file round trip.
    paths = _clips(tmp_path, 10)
    cache = FeatureCache(config.features, tmp_path / "cache")
    train, val = _feature_set(cache, paths[:7]), _feature_set(cache, paths[7:])
    assert {p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()} == {
        "mfcc", "logmel", "loudness"}  # fmt: skip
    result = fit(train, val, LABELS, config, tmp_path / "out", progress=False)
    assert len(result.history) == 2 and all(np.isfinite(h["train_loss"]) for h in result.history)
    level = torch.cat(train.features["level"], dim=1)
    torch.testing.assert_close(result.pipeline.normalizers["level"].mean, level.mean(dim=1))
    save_pipeline(result.pipeline, tmp_path / "m.pt")
    loaded = load_pipeline(tmp_path / "m.pt")
    assert loaded.features == config.features
    with torch.no_grad():
        torch.testing.assert_close(loaded(waves, torch.tensor([8000, 6000])),
                                   result.pipeline(waves, torch.tensor([8000, 6000])))  # fmt: skip
    assert load_pipeline(tmp_path / "out" / "model.pt").names == ("mfcc", "logmel", "level")


def test_an_unregistered_kind_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown feature kind 'loudness'"):
        _config(tmp_path)


def test_a_kind_name_is_registered_once(loudness):
    register_feature_kind(LoudnessKind)  # the same class again is fine

    class Other(LoudnessKind):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_feature_kind(Other)


# --------------------------------------------------------------------------- other frame rates


def test_features_at_other_frame_rates_are_cut_at_the_same_seconds(tmp_path, loudness):
    specs = [feature_spec("mfcc", n_mfcc=13), feature_spec("loudness", hop_length=320)]
    assert frame_rates(specs) == {"mfcc": 100.0, "loudness": 50.0}
    paths = _clips(tmp_path, 3)
    data = _feature_set(FeatureCache(specs, tmp_path / "cache"), paths)
    assert data.reference == "mfcc"
    for i in range(3):
        full_mfcc, full_level = data.features["mfcc"][i], data.features["loudness"][i]
        assert full_level.shape[1] == 1 + (full_mfcc.shape[1] - 1) // 2  # 1 + samples // 320

    batch = random_crops(data, torch.arange(3), 0.4, torch.Generator().manual_seed(0))
    mfcc, mfcc_frames = batch.features["mfcc"]
    level, level_frames = batch.features["loudness"]
    assert mfcc_frames.tolist() == [40, 40, 40] and level_frames.tolist() == [20, 20, 20]
    for i in range(3):  # the crop's start in seconds is the same in both features
        full = data.features["mfcc"][i]
        start = next(s for s in range(full.shape[1]) if torch.equal(full[:, s : s + 40], mfcc[i]))
        lo = round(start / 2)
        assert torch.equal(level[i], data.features["loudness"][i][:, lo : lo + 20])

    full_mfcc, full_level = data.features["mfcc"][2], data.features["loudness"][2]
    parts = utterance_windows(data, 2, 0.3, 0.5)  # 0.8 s: 81 MFCC frames, 41 loudness frames
    assert len(parts) == 5
    for p in parts:
        assert p["mfcc"].shape[1] == 30
        start = next(s for s in range(81) if torch.equal(full_mfcc[:, s : s + 30], p["mfcc"]))
        first = p["loudness"][:, :1]
        lo = next(s for s in range(41) if torch.equal(full_level[:, s : s + 1], first))
        assert abs(2 * lo - start) <= 1  # the same start, to half a 50 Hz frame
        assert abs(p["loudness"].shape[1] - 15) <= 1  # the same length, to one 50 Hz frame


# emofuse bug (reported): training/batches.py ``_cut`` rounds both ends of the mapped span with
# round() (half to even), so equal windows of the reference feature map to 14, 15 or 16 frames
# of a half-rate feature depending on where they start.
def test_equal_windows_give_equal_frame_counts_in_a_slower_feature(tmp_path, loudness):
    specs = [feature_spec("mfcc", n_mfcc=13), feature_spec("loudness", hop_length=320)]
    data = _feature_set(FeatureCache(specs, tmp_path / "cache"), _clips(tmp_path, 3))
    sizes = {p["loudness"].shape[1] for p in utterance_windows(data, 2, 0.3, 0.5)}
    assert sizes == {15}


def test_the_pipeline_refuses_features_that_reach_the_fusion_at_different_rates(loudness):
    """Every branch strides time by 4: a 50 Hz feature gives 12.5 steps/s, the 100 Hz ones 25;
    fusing them frame by frame would pair different seconds, so the pipeline refuses."""
    specs = [feature_spec("mfcc"), feature_spec("loudness", hop_length=320)]
    model = ModelConfig(n_classes=3, d_model=16, n_heads=2, lstm_hidden=8)
    with pytest.raises(ValueError, match="different rates.*mfcc 25/s, loudness 12.5/s"):
        EmotionPipeline(specs, model, LABELS)
    # All features at 50 Hz: one grid, and the net runs on it.
    specs = [feature_spec("mfcc", hop_length=320, channels=16),
             feature_spec("loudness", hop_length=320)]  # fmt: skip
    pipeline = EmotionPipeline(specs, model, LABELS).eval()
    waves = torch.from_numpy(synthetic_voice(1.0))[None]
    with torch.no_grad():
        features = pipeline.frontend(waves, torch.tensor([SR]))
        logits = pipeline(waves, torch.tensor([SR]))
    assert {n: tuple(x.shape) for n, (x, _) in features.items()} == {
        "mfcc": (1, 40, 51), "loudness": (1, 1, 51)}  # fmt: skip
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


# --------------------------------------------------------------------------- the cache


@pytest.fixture
def count_computes(monkeypatch):
    """Names of the features each ``FeatureCache.compute`` call extracted."""
    calls: list[list[str]] = []
    original = FeatureCache.compute

    def counting(self, path, features=None):
        calls.append([s.name for s in (features or self.features)])
        return original(self, path, features)

    monkeypatch.setattr(FeatureCache, "compute", counting)
    return calls


def test_adding_a_feature_computes_only_that_feature(tmp_path, count_computes):
    (clip,) = _clips(tmp_path, 1)
    root = tmp_path / "cache"
    two = FeatureCache(default_features(), root)
    first = two.get(clip)
    assert count_computes == [["mfcc", "logmel"]]
    entries = {s.name: two.entries(s, clip)[0][0] for s in two.features}
    mtimes = {n: e.stat().st_mtime_ns for n, e in entries.items()}

    three = FeatureCache([*default_features(), feature_spec("prosody")], root)
    out = three.get(clip)
    assert count_computes[1:] == [["prosody"]]  # one decode, the new feature only
    assert {n: e.stat().st_mtime_ns for n, e in entries.items()} == mtimes
    for name in ("mfcc", "logmel"):
        np.testing.assert_array_equal(out[name], first[name])
    assert out["prosody"].shape == (3, first["mfcc"].shape[1])
    three.get(clip)
    assert len(count_computes) == 2  # all hits now


def test_changed_settings_use_a_new_folder(tmp_path, count_computes):
    (clip,) = _clips(tmp_path, 1)
    root = tmp_path / "cache"
    default = FeatureCache(default_features(), root)
    default.get(clip)
    changed = FeatureCache([feature_spec("mfcc"), feature_spec("logmel", n_mels=32)], root)
    out = changed.get(clip)
    assert count_computes[1:] == [["logmel"]]
    mel = default.entries(default.features[1], clip)[0][0]
    mel32 = changed.entries(changed.features[1], clip)[0][0]
    assert mel.parent != mel32.parent and mel.is_file() and mel32.is_file()
    assert mel.parent.name.startswith("logmel-") and mel32.parent.name.startswith("logmel-")
    mfcc_entry = default.entries(default.features[0], clip)[0][0]
    assert changed.entries(changed.features[0], clip)[0][0] == mfcc_entry
    assert out["logmel"].shape[0] == 32
    assert sorted(p.name.split("-")[0] for p in root.iterdir()) == ["logmel", "logmel", "mfcc"]


def test_the_cache_decodes_once_for_all_missing_features(tmp_path, monkeypatch):
    (clip,) = _clips(tmp_path, 1)
    decodes = []

    def counting(path, rate):
        decodes.append(path)
        return load_audio(path, rate)

    monkeypatch.setattr(emofuse.pipeline.cache, "load_audio", counting)
    FeatureCache([*default_features(), feature_spec("prosody")], tmp_path / "c").get(clip)
    assert len(decodes) == 1


# --------------------------------------------------------------------------- version 1


def test_the_bundled_fast_model_loads_as_the_paper_features():
    pipeline = load_bundled_pipeline("fast")
    assert pipeline.features == default_features() and len(pipeline.labels) == 7
    with torch.no_grad():
        logits = pipeline(torch.from_numpy(synthetic_voice(1.0))[None], torch.tensor([SR]))
    assert torch.isfinite(logits).all()


def test_every_committed_config_loads():
    paths = sorted(REPO.glob("configs/*.yaml")) + sorted(REPO.glob("results/**/config.yaml"))
    if not paths:
        pytest.skip("no committed configs beside the package")
    for path in paths:
        config = load_config(path)
        assert pipeline_from_config(config).net.num_parameters() > 0, path


def _to_v1(state: dict) -> dict:
    """A version-2 pipeline state dict with its keys renamed back to version 1."""
    renamed = {}
    for key, value in state.items():
        for old, new in V1_STATE_RENAMES:
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        renamed[key] = value
    return renamed


@pytest.mark.parametrize("prosody", [False, True])
def test_a_hand_written_version_1_model_file_loads_and_equals_todays_save(tmp_path, prosody):
    pipeline = tiny_pipeline(prosody=prosody)
    state = _to_v1(pipeline.state_dict())
    assert "mfcc_norm.mean" in state and "net.mfcc_branch.stem.weight" in state
    assert "net.fusion.mfcc_to_logmel.attn.in_proj_weight" in state
    assert ("net.fusion.prosody_to_spectral.norm.weight" in state) == prosody
    assert not any(k.startswith(("normalizers.", "net.branches.")) for k in state)
    assert state_dict_from_v1(state).keys() == pipeline.state_dict().keys()
    model = {k: v for k, v in pipeline.model_config.to_dict().items()}
    model.update(branches="both", prosody=prosody, n_mfcc=40, n_mels=64, mfcc_channels=16,
                 logmel_channels=8, **({"prosody_channels": 8} if prosody else {}))  # fmt: skip
    features = {"sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160,
                "n_mels": 64, "f_min": 20.0, "f_max": 8000.0, "n_mfcc": 40,
                "log_offset": 1e-6, "prosody": prosody}  # fmt: skip
    payload = {"format": "emofuse-model", "format_version": 1, "feature_config": features,
               "model_config": model, "labels": list(pipeline.labels), "extra": {"epoch": 4},
               "state_dict": state}  # fmt: skip
    torch.save(payload, tmp_path / "v1.pt")
    v1 = load_pipeline(tmp_path / "v1.pt")
    assert v1.extra == {"epoch": 4} and v1.features == pipeline.features
    assert v1.model_config == pipeline.model_config
    save_pipeline(v1, tmp_path / "v3.pt")
    v3 = load_pipeline(tmp_path / "v3.pt")
    assert torch.load(tmp_path / "v3.pt", weights_only=True)["format_version"] == 3
    for a, b in ((v1, pipeline), (v3, pipeline)):
        assert a.state_dict().keys() == b.state_dict().keys()
        for key, value in b.state_dict().items():
            assert torch.equal(a.state_dict()[key], value), key
    waves = torch.from_numpy(synthetic_voice(1.3))[None]
    with torch.no_grad():
        expected = pipeline(waves, torch.tensor([waves.shape[1]]))
        torch.testing.assert_close(v1(waves, torch.tensor([waves.shape[1]])), expected,
                                   atol=0, rtol=0)  # fmt: skip
        torch.testing.assert_close(v3(waves, torch.tensor([waves.shape[1]])), expected,
                                   atol=0, rtol=0)  # fmt: skip


def test_a_version_1_single_branch_file_drops_the_unused_normaliser(tmp_path):
    torch.manual_seed(0)
    specs = [feature_spec("mfcc", channels=16)]
    model = ModelConfig(n_classes=3, d_model=16, n_heads=2, lstm_hidden=8)
    pipeline = EmotionPipeline(specs, model, LABELS)
    state = _to_v1(pipeline.state_dict())
    state["logmel_norm.mean"], state["logmel_norm.std"] = torch.zeros(64), torch.ones(64)
    model = {**pipeline.model_config.to_dict(), "branches": "mfcc", "mfcc_channels": 16}
    torch.save({"format": "emofuse-model", "format_version": 1, "feature_config": {},
                "model_config": model, "labels": LABELS, "state_dict": state},
               tmp_path / "v1.pt")  # fmt: skip
    loaded = load_pipeline(tmp_path / "v1.pt")
    assert loaded.names == ("mfcc",) and list(loaded.normalizers) == ["mfcc"]


# --------------------------------------------------------------------------- the frozen front end


def test_the_front_end_has_no_trainable_parameters():
    frontend = FeatureFrontEnd([*default_features(), feature_spec("prosody")])
    assert not [n for n, p in frontend.named_parameters() if p.requires_grad]
    pipeline = tiny_pipeline(prosody=True)
    trainable = [n for n, p in pipeline.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("net.") for n in trainable)
    assert not any(k.startswith("frontend.") for k in pipeline.state_dict())  # nothing stored


def test_fit_leaves_the_front_end_unchanged(tmp_path):
    config = ExperimentConfig(
        features=[feature_spec("mfcc", channels=16), feature_spec("logmel", channels=8)],
        model=ModelConfig(d_model=16, n_heads=2, lstm_hidden=8),
        train=TrainConfig(
            epochs=1,
            batch_size=4,
            crop_seconds=0.5,
            eval_window_seconds=0.5,
            warmup_epochs=1,
            device="cpu",
        ),  # fmt: skip
    )
    paths = _clips(tmp_path, 8)
    cache = FeatureCache(config.features, tmp_path / "cache")
    data = _feature_set(cache, paths)
    before = pipeline_from_config(config, LABELS).frontend
    reference = {k: v.clone() for k, v in before.named_buffers()}
    result = fit(data, data, LABELS, config, tmp_path / "out", progress=False)
    after = dict(result.pipeline.frontend.named_buffers())
    assert after.keys() == reference.keys() and after
    for key, value in reference.items():
        assert torch.equal(after[key], value), key
    waves = torch.from_numpy(synthetic_voice(0.7))[None]
    lengths = torch.tensor([waves.shape[1]])
    with torch.no_grad():
        trained = result.pipeline.frontend(waves, lengths)
        fresh = before(waves, lengths)
    for name in trained:
        assert torch.equal(trained[name][0], fresh[name][0]), name
