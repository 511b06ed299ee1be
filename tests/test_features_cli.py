"""``emofuse features``: feature files (npy, csv, eGeMAPS) and the statistics printout."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main
from emofuse.config import load_config
from emofuse.feature_files import output_names
from emofuse.pipeline.cache import FeatureCache
from emofuse.testing import synthetic_voice


@pytest.fixture(autouse=True)
def _no_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "env-cache"))


def _voice(path: Path, seconds: float = 0.5, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synthetic_voice(seconds, seed=seed), 16000)
    return path


def _errors(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert all(line.startswith("emofuse: error: ") for line in lines), err
    return lines


def test_npy_equals_the_feature_computation(tmp_path, capsys):
    clip = _voice(tmp_path / "in" / "clip.wav")
    out = tmp_path / "out"
    assert main(["features", str(clip), "--out", str(out)]) == 0
    expected = FeatureCache(load_config(None).features).compute(clip)
    assert sorted(p.name for p in out.iterdir()) == ["clip.logmel.npy", "clip.mfcc.npy"]
    for feature, frames in expected.items():
        saved = np.load(out / f"clip.{feature}.npy")
        assert saved.dtype == np.float32
        assert saved.shape == frames.T.shape  # (T, dims): frames as rows
        np.testing.assert_allclose(saved, frames.T, rtol=1e-6, atol=1e-6)
    assert "1 of 1 files" in capsys.readouterr().out


def test_model_features(tmp_path):
    from emofuse.testing import save_tiny_pipeline

    model = save_tiny_pipeline(tmp_path / "m.pt", prosody=True)
    clip = _voice(tmp_path / "clip.wav")
    assert main(["features", str(clip), "--model", str(model), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "clip.prosody.npy").is_file()
    assert np.load(tmp_path / "o" / "clip.prosody.npy").shape[1] == 3


def test_csv_columns(tmp_path):
    clip = _voice(tmp_path / "clip.wav", seconds=0.3)
    out = tmp_path / "out"
    assert main(["features", str(clip), "--out", str(out), "--format", "csv"]) == 0
    frames = FeatureCache(load_config(None).features).compute(clip)["mfcc"]  # (40, T)
    with open(out / "clip.mfcc.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame_time", *(f"mfcc_{i}" for i in range(40))]
    table = np.array(rows[1:], dtype=np.float64)
    assert table.shape == (frames.shape[1], 41)
    np.testing.assert_allclose(table[:, 0], np.arange(frames.shape[1]) * 0.01, atol=1e-9)
    np.testing.assert_allclose(table[:, 1:], frames.T, rtol=1e-6, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("opensmile") is None, reason="needs opensmile")
def test_egemaps_table(tmp_path):
    clips = [_voice(tmp_path / "in" / f"{n}.wav", seconds=1.0, seed=i)
             for i, n in enumerate("ab")]  # fmt: skip
    out = tmp_path / "out"
    assert main(["features", str(tmp_path / "in"), "--out", str(out), "--egemaps"]) == 0
    with open(out / "egemaps.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "file" and len(rows[0]) == 89
    assert "F0semitoneFrom27.5Hz_sma3nz_amean" in rows[0]
    assert [r[0] for r in rows[1:]] == [str(c) for c in clips]
    assert np.isfinite(np.array([r[1:] for r in rows[1:]], dtype=float)).all()


def test_egemaps_without_opensmile(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "opensmile", None)  # import opensmile -> ImportError
    clip = _voice(tmp_path / "clip.wav")
    assert main(["features", str(clip), "--out", str(tmp_path / "o"), "--egemaps"]) == 1
    (line,) = _errors(capsys)
    assert "pip install 'emofuse[baseline]'" in line


def test_a_bad_file_among_good_ones(tmp_path, capsys):
    good = [_voice(tmp_path / "in" / f"{n}.wav", seed=i) for i, n in enumerate("ab")]
    (tmp_path / "in" / "notes.wav").write_text("not audio")
    (tmp_path / "in" / "empty.wav").write_bytes(b"")
    nan = tmp_path / "in" / "nan.wav"
    sf.write(nan, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    out = tmp_path / "out"
    assert main(["features", str(tmp_path / "in"), "--out", str(out)]) == 1
    errors = _errors(capsys)
    assert len(errors) == 3
    for bad in ("notes.wav", "empty.wav", "nan.wav"):
        assert any(str(tmp_path / "in" / bad) in line for line in errors), bad
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{p.stem}.{s}.npy" for p in good for s in ("mfcc", "logmel"))


def test_same_stem_in_two_folders(tmp_path, capsys):
    a = _voice(tmp_path / "a" / "x.wav", seed=1)
    b = _voice(tmp_path / "b" / "x.wav", seed=2)
    out = tmp_path / "out"
    assert main(["features", str(a), str(b), "--out", str(out)]) == 0
    cache = FeatureCache(load_config(None).features)
    for path, name in ((a, "a__x"), (b, "b__x")):
        saved = np.load(out / f"{name}.mfcc.npy")
        np.testing.assert_allclose(saved, cache.compute(path)["mfcc"].T, rtol=1e-6, atol=1e-6)
    assert output_names(["x.wav", "x.flac"]) == {"x.wav": "x_wav", "x.flac": "x_flac"}
    assert output_names(["d/y.wav", "./d/y.wav"]) == {"d/y.wav": "y"}


def test_statistics_of_a_folder(tmp_path, capsys):
    clips = [_voice(tmp_path / "in" / f"{n}.wav", seed=i) for i, n in enumerate("ab")]
    (tmp_path / "in" / "bad.wav").write_text("no")
    assert main(["features", str(tmp_path / "in")]) == 1
    captured = capsys.readouterr()
    assert all(f"{clip}\n  mfcc     shape (40, 51)" in captured.out for clip in clips)
    assert str(tmp_path / "in" / "bad.wav") in captured.err
    assert main(["features", str(clips[0]), "--egemaps"]) == 1
    assert "need --out" in _errors(capsys)[0]
