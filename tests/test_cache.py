"""Tests of emofuse.pipeline.cache: hits skip decoding, stale entries are never read, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

import emofuse.pipeline.cache
from emofuse.signal.audio import load_audio
from emofuse.pipeline.cache import FeatureCache, default_cache_dir
from emofuse.signal.transforms import FeatureConfig, FeatureExtractor

SR = 16000


def _write_tone(path, freq: float = 440.0, seconds: float = 0.3, amplitude: float = 0.3):
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


@pytest.fixture
def clip(tmp_path):
    return _write_tone(tmp_path / "clip.wav")


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts the calls of ``load_audio`` made by the cache."""
    calls = []

    def counting(path, sample_rate=16000):
        calls.append(path)
        return load_audio(path, sample_rate)

    monkeypatch.setattr(emofuse.pipeline.cache, "load_audio", counting)
    return calls


def test_features_equal_the_extractor(tmp_path, clip):
    config = FeatureConfig()
    features = FeatureCache(config, tmp_path / "cache").get(clip)
    wave = torch.from_numpy(load_audio(clip, SR))
    with torch.no_grad():
        mfcc, logmel, frames = FeatureExtractor(config)(wave[None], torch.tensor([wave.numel()]))
    assert features.dtype == np.float32
    assert features.shape == (config.n_mfcc + config.n_mels, int(frames[0]))
    np.testing.assert_array_equal(features[: config.n_mfcc], mfcc[0].numpy())
    np.testing.assert_array_equal(features[config.n_mfcc :], logmel[0].numpy())


def test_miss_computes_and_stores_then_hit_does_not_decode(tmp_path, clip, monkeypatch):
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache")
    assert not cache.entry(clip).exists()
    first = cache.get(clip)
    assert cache.entry(clip).is_file()
    np.testing.assert_array_equal(np.load(cache.entry(clip)), first)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cache hit decoded the audio")

    monkeypatch.setattr(emofuse.pipeline.cache, "load_audio", no_decoding)
    second = FeatureCache(FeatureConfig(), tmp_path / "cache").get(clip)  # a fresh object
    np.testing.assert_array_equal(second, first)


def test_changed_file_is_recomputed(tmp_path, clip, count_decodes):
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache")
    before = cache.get(clip)
    old_entry = cache.entry(clip)
    stat = clip.stat()
    # Same length, other content; keep the size equal so only the mtime can tell.
    _write_tone(clip, freq=1200.0)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert clip.stat().st_size == stat.st_size
    assert cache.entry(clip) != old_entry
    after = cache.get(clip)
    assert len(count_decodes) == 2
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, cache.compute(clip))


def test_changed_size_is_recomputed(tmp_path, clip, count_decodes):
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache")
    cache.get(clip)
    stat = clip.stat()
    _write_tone(clip, seconds=0.5)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, other size
    after = cache.get(clip)
    assert len(count_decodes) == 2
    assert after.shape[1] == 1 + int(0.5 * SR) // 160


def test_other_feature_config_uses_another_folder(tmp_path, clip, count_decodes):
    root = tmp_path / "cache"
    default = FeatureCache(FeatureConfig(), root)
    other = FeatureCache(FeatureConfig(n_mels=40, n_mfcc=20), root)
    assert default.folder != other.folder
    assert default.folder.parent == other.folder.parent == root
    a, b = default.get(clip), other.get(clip)
    assert len(count_decodes) == 2
    assert a.shape[0] == 104 and b.shape[0] == 60
    # The same settings built anew map to the same folder.
    assert FeatureCache(FeatureConfig(), root).folder == default.folder
    # A change that keeps the feature shape still gets its own folder.
    assert FeatureCache(FeatureConfig(log_offset=1e-5), root).folder != default.folder


def test_writes_are_atomic(tmp_path, clip, monkeypatch):
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache")
    clips = [clip] + [_write_tone(tmp_path / f"c{i}.wav", freq=300.0 + 100 * i) for i in range(3)]
    cache.get_many(clips)
    names = sorted(p.name for p in cache.folder.iterdir())
    assert len(names) == 4
    assert all(n.endswith(".npy") and ".tmp" not in n for n in names)

    # A crash while writing leaves no entry behind (and no half-written file under its name).
    def failing_save(path, array):
        with open(path, "wb") as f:
            f.write(b"\x93NUMPY half")
        raise OSError("disk full")

    fresh = _write_tone(tmp_path / "fresh.wav", freq=700.0)
    monkeypatch.setattr(emofuse.pipeline.cache.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        cache.get(fresh)
    assert not cache.entry(fresh).exists()


def test_get_many_keeps_order(tmp_path):
    clips = [_write_tone(tmp_path / f"{i}.wav", seconds=0.1 + 0.05 * i) for i in range(3)]
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache")
    out = cache.get_many(clips)
    assert [a.shape[1] for a in out] == [1 + int((0.1 + 0.05 * i) * SR) // 160 for i in range(3)]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("EMOFUSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "emofuse" / "features"


def test_env_var_sets_the_root(monkeypatch, tmp_path, clip):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "env"))
    cache = FeatureCache(FeatureConfig())
    cache.get(clip)
    assert cache.folder.parent == tmp_path / "env"
    assert len(list(cache.folder.glob("*.npy"))) == 1
