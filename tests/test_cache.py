"""Tests of emofuse.pipeline.cache: hits skip decoding, stale entries are never read, atomic
writes, one folder per feature kind and settings."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

import emofuse.pipeline.cache
from emofuse.features import FeatureFrontEnd, default_features, feature_spec
from emofuse.pipeline.cache import FeatureCache, cached_array, default_cache_dir, file_key
from emofuse.signal.audio import load_audio

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


def _cache(root, features=None) -> FeatureCache:
    return FeatureCache(default_features() if features is None else features, root)


def _folder(cache: FeatureCache, name: str):
    """The folder of feature ``name``'s entries."""
    spec = next(s for s in cache.features if s.name == name)
    return cache.entries(spec, __file__)[0][0].parent


def test_features_equal_the_front_end(tmp_path, clip):
    specs = [*default_features(), feature_spec("prosody")]
    features = FeatureCache(specs, tmp_path / "cache").get(clip)
    wave = torch.from_numpy(load_audio(clip, SR))
    with torch.no_grad():
        expected = FeatureFrontEnd(specs)(wave[None], torch.tensor([wave.numel()]))
    assert list(features) == ["mfcc", "logmel", "prosody"]
    for name, (frames, lengths) in expected.items():
        assert features[name].dtype == np.float32
        assert features[name].shape == (frames.shape[1], int(lengths[0]))
        np.testing.assert_array_equal(features[name], frames[0].numpy())


def test_miss_computes_and_stores_then_hit_does_not_decode(tmp_path, clip, monkeypatch):
    cache = _cache(tmp_path / "cache")
    entries = {s.name: cache.entries(s, clip)[0][0] for s in cache.features}
    assert not any(e.exists() for e in entries.values())
    first = cache.get(clip)
    for name, entry in entries.items():
        assert entry.is_file()
        np.testing.assert_array_equal(np.load(entry), first[name])

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cache hit decoded the audio")

    monkeypatch.setattr(emofuse.pipeline.cache, "load_audio", no_decoding)
    second = _cache(tmp_path / "cache").get(clip)  # a fresh object
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])


def test_changed_file_is_recomputed(tmp_path, clip, count_decodes):
    cache = _cache(tmp_path / "cache")
    before = cache.get(clip)
    old_entry = cache.entries(cache.features[0], clip)[0][0]
    stat = clip.stat()
    # Same length, other content; keep the size equal so only the mtime can tell.
    _write_tone(clip, freq=1200.0)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert clip.stat().st_size == stat.st_size
    assert cache.entries(cache.features[0], clip)[0][0] != old_entry
    after = cache.get(clip)
    assert len(count_decodes) == 2
    assert not np.array_equal(before["mfcc"], after["mfcc"])
    fresh = cache.compute(clip)
    for name in after:
        np.testing.assert_array_equal(after[name], fresh[name])


def test_changed_size_is_recomputed(tmp_path, clip, count_decodes):
    cache = _cache(tmp_path / "cache")
    cache.get(clip)
    stat = clip.stat()
    _write_tone(clip, seconds=0.5)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, other size
    after = cache.get(clip)
    assert len(count_decodes) == 2
    assert after["logmel"].shape[1] == 1 + int(0.5 * SR) // 160


def test_other_feature_settings_use_another_folder(tmp_path, clip, count_decodes):
    root = tmp_path / "cache"
    default = _cache(root)
    other = _cache(root, [feature_spec("mfcc", n_mels=40, n_mfcc=20),
                          feature_spec("logmel", n_mels=40)])  # fmt: skip
    for name in ("mfcc", "logmel"):
        assert _folder(default, name) != _folder(other, name)
        assert _folder(default, name).parent == _folder(other, name).parent == root
    a, b = default.get(clip), other.get(clip)
    assert len(count_decodes) == 2
    assert (a["mfcc"].shape[0], a["logmel"].shape[0]) == (40, 64)
    assert (b["mfcc"].shape[0], b["logmel"].shape[0]) == (20, 40)
    # The same settings built anew map to the same folder; the feature's name does not count.
    assert _folder(_cache(root), "mfcc") == _folder(default, "mfcc")
    renamed = _cache(root, [feature_spec("mfcc", name="cepstra")])
    assert _folder(renamed, "cepstra") == _folder(default, "mfcc")
    # A change that keeps the feature shape still gets its own folder.
    assert _folder(_cache(root, [feature_spec("logmel", log_offset=1e-5)]), "logmel") != _folder(
        default, "logmel"
    )


def test_writes_are_atomic(tmp_path, clip, monkeypatch):
    cache = _cache(tmp_path / "cache")
    clips = [clip] + [_write_tone(tmp_path / f"c{i}.wav", freq=300.0 + 100 * i) for i in range(3)]
    cache.get_many(clips)
    for name in ("mfcc", "logmel"):
        names = sorted(p.name for p in _folder(cache, name).iterdir())
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
    for spec in cache.features:
        assert not cache.entries(spec, fresh)[0][0].exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".tmp" in p.name]


def test_get_many_keeps_order(tmp_path):
    clips = [_write_tone(tmp_path / f"{i}.wav", seconds=0.1 + 0.05 * i) for i in range(3)]
    cache = _cache(tmp_path / "cache")
    out = cache.get_many(clips)
    assert [a["mfcc"].shape[1] for a in out] == [1 + int((0.1 + 0.05 * i) * SR) // 160
                                                 for i in range(3)]  # fmt: skip


def test_cached_array_and_file_key(tmp_path, clip):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(3.0)

    entry = tmp_path / "x" / "a.npy"
    np.testing.assert_array_equal(cached_array(entry, compute), np.arange(3.0))
    np.testing.assert_array_equal(cached_array(entry, compute), np.arange(3.0))
    assert len(calls) == 1 and entry.is_file()
    key = file_key(clip)
    assert key == file_key(clip) and len(key) == 40
    assert file_key(_write_tone(tmp_path / "other.wav")) != key


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("EMOFUSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "emofuse" / "features"


def test_env_var_sets_the_root(monkeypatch, tmp_path, clip):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "env"))
    cache = FeatureCache(default_features())
    cache.get(clip)
    for name in ("mfcc", "logmel"):
        assert _folder(cache, name).parent == tmp_path / "env"
        assert len(list(_folder(cache, name).glob("*.npy"))) == 1


def test_progress_in_a_log_is_a_few_plain_lines(capsys):
    """Not a terminal (nohup, CI): about ten lines, no carriage-return redraws."""
    from emofuse.progress import progress

    assert list(progress(list(range(95)), "features")) == list(range(95))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and "\r" not in "".join(lines)
    assert lines[0].startswith("features: 10/95 files") and lines[-1].startswith("features: 95/95")
