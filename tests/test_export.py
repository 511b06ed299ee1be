"""ONNX export: the exported graph gives the torch pipeline's probabilities; files and errors."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (emofuse[onnx])")

from emofuse.cli import main  # noqa: E402
from emofuse.features import FeatureSpec, default_features, feature_spec  # noqa: E402
from emofuse.inference.onnx import (  # noqa: E402
    OnnxBackend,
    OnnxModelError,
    _ExportGraph,
    export_onnx,
    sidecar_path,
)
from emofuse.model import ModelConfig  # noqa: E402
from emofuse.pipeline import EmotionPipeline, EvalWindows, save_pipeline  # noqa: E402
from emofuse.testing import TINY_LABELS, synthetic_voice, tiny_pipeline  # noqa: E402

TOLERANCE = 1e-4
SECONDS = {"0.5 s": 0.5, "3 s": 3.0, "10 s": 10.0, "12345 samples": 12345 / 16000, "5 ms": 0.005}


@pytest.fixture(scope="module")
def pipeline() -> EmotionPipeline:
    return tiny_pipeline()


@pytest.fixture(scope="module")
def onnx_path(pipeline, tmp_path_factory):
    return export_onnx(pipeline, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def _torch_probabilities(pipeline: EmotionPipeline, waves: np.ndarray, lengths: np.ndarray):
    with torch.no_grad():
        logits = pipeline(torch.from_numpy(waves), torch.from_numpy(lengths))
    return torch.softmax(logits, dim=-1).numpy()


def _padded_batch(seconds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    clips = [synthetic_voice(s, seed=i) for i, s in enumerate(seconds)]
    lengths = np.array([clip.size for clip in clips], dtype=np.int64)
    waves = np.zeros((len(clips), lengths.max()), dtype=np.float32)
    for row, clip in zip(waves, clips, strict=True):
        row[: clip.size] = clip
    return waves, lengths


@pytest.mark.parametrize("name", SECONDS)
def test_onnx_equals_torch_per_clip_length(pipeline, onnx_path, name):
    waves, lengths = _padded_batch([SECONDS[name]])
    onnx = OnnxBackend(onnx_path, num_threads=1).probabilities(waves, lengths)
    reference = _torch_probabilities(pipeline, waves, lengths)
    assert onnx.shape == (1, len(TINY_LABELS))
    assert np.abs(onnx - reference).max() < TOLERANCE


def test_onnx_equals_torch_on_padded_batch(pipeline, onnx_path):
    waves, lengths = _padded_batch([3.0, 0.5, 12345 / 16000, 10.0])
    onnx = OnnxBackend(onnx_path, num_threads=1).probabilities(waves, lengths)
    assert np.abs(onnx - _torch_probabilities(pipeline, waves, lengths)).max() < TOLERANCE
    alone = _torch_probabilities(pipeline, waves[1:2, : lengths[1]], lengths[1:2])
    assert np.abs(onnx[1] - alone[0]).max() < TOLERANCE  # padding does not change an item


def test_export_graph_equals_pipeline_in_torch(pipeline):
    """The export-only changes (padding, pairwise max, custom BiLSTM op) change no output."""
    waves, lengths = _padded_batch([1.0, 0.3, 0.77])
    with torch.no_grad():
        exported = _ExportGraph(pipeline).eval()(torch.from_numpy(waves), torch.from_numpy(lengths))
    reference = _torch_probabilities(pipeline, waves, lengths)
    assert np.abs(exported.numpy() - reference).max() < 1e-6


def test_sidecar_describes_the_model(onnx_path):
    assert sidecar_path(onnx_path).name == "tiny.onnx.json"
    meta = json.loads(sidecar_path(onnx_path).read_text())
    assert meta["labels"] == list(TINY_LABELS)
    assert meta["sample_rate"] == 16000
    assert meta["inputs"] == ["waveform", "lengths"] and meta["outputs"] == ["probabilities"]
    specs = [FeatureSpec.from_dict(s) for s in meta["features"]]
    assert specs == tiny_pipeline().features
    assert [s.name for s in specs] == ["mfcc", "logmel"]
    assert ModelConfig.from_dict(meta["model_config"]).lstm_hidden == 16
    assert meta["eval_windows"] == {"window_seconds": 3.0, "hop_fraction": 0.5}
    backend = OnnxBackend(onnx_path)
    assert backend.labels == TINY_LABELS and backend.sample_rate == 16000
    assert (backend.window_seconds, backend.hop_seconds) == (3.0, 1.5)


def test_failed_export_writes_nothing(pipeline, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_onnx(pipeline, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_backend_errors_name_the_file(onnx_path, tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(OnnxModelError, match="missing.onnx: no such ONNX model file"):
        OnnxBackend(missing)
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(onnx_path, lonely)
    with pytest.raises(OnnxModelError, match="lonely.onnx.json: missing sidecar"):
        OnnxBackend(lonely)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf")
    shutil.copy(sidecar_path(onnx_path), sidecar_path(corrupt))
    with pytest.raises(OnnxModelError, match="corrupt.onnx: not a readable ONNX model"):
        OnnxBackend(corrupt)
    sidecar_path(lonely).write_text("{not json")
    with pytest.raises(OnnxModelError, match="lonely.onnx.json: not an emofuse ONNX sidecar"):
        OnnxBackend(lonely)


def test_backend_without_onnxruntime_says_what_to_install(onnx_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'emofuse\[onnx\]'"):
        OnnxBackend(onnx_path)


def test_cli_exports_a_default_size_model(tmp_path, capsys):
    """The full-size layers (ModelConfig defaults, random weights) export correctly too."""
    torch.manual_seed(0)
    labels = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
    pipeline = EmotionPipeline(default_features(), ModelConfig(n_classes=7), labels).eval()
    norms = pipeline.normalizers
    with torch.no_grad():  # typical feature statistics, so the softmax is not saturated
        norms["mfcc"].mean.copy_(torch.linspace(-300, 0, 40))
        norms["mfcc"].std.fill_(20.0)
        norms["logmel"].mean.fill_(-6.0)
        norms["logmel"].std.fill_(3.0)
    save_pipeline(pipeline, tmp_path / "model.pt")
    out = tmp_path / "export" / "model.onnx"
    assert main(["export", "--onnx", str(out), "--model", str(tmp_path / "model.pt")]) == 0
    assert str(out) in capsys.readouterr().out
    assert json.loads(sidecar_path(out).read_text())["labels"] == list(labels)
    waves, lengths = _padded_batch([3.0])
    onnx = OnnxBackend(out, num_threads=1).probabilities(waves, lengths)
    assert np.abs(onnx - _torch_probabilities(pipeline, waves, lengths)).max() < TOLERANCE


def test_cli_export_of_a_missing_model_is_one_error_line(tmp_path, capsys):
    status = main(["export", "--onnx", str(tmp_path / "m.onnx"), "--model", str(tmp_path / "x.pt")])
    assert status == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emofuse: error: ")
    assert "x.pt" in lines[0]
    assert not (tmp_path / "m.onnx").exists()


def test_a_prosody_model_exports_with_its_third_feature(tmp_path):
    pipeline = tiny_pipeline(prosody=True)
    path = export_onnx(pipeline, tmp_path / "prosody.onnx")
    waves, lengths = _padded_batch([1.5, 0.5, 12345 / 16000])
    onnx = OnnxBackend(path, num_threads=1).probabilities(waves, lengths)
    assert np.abs(onnx - _torch_probabilities(pipeline, waves, lengths)).max() < TOLERANCE
    meta = json.loads(sidecar_path(path).read_text())
    assert [s["kind"] for s in meta["features"]] == ["mfcc", "logmel", "prosody"]


def test_a_single_feature_model_with_other_windows_exports(tmp_path):
    """One feature (no fusion) at another hop; the sidecar carries the model's windows."""
    torch.manual_seed(0)
    features = [feature_spec("logmel", n_mels=32, hop_length=200, channels=8)]
    pipeline = EmotionPipeline(features, ModelConfig(d_model=16, n_heads=2, lstm_hidden=8),
                               TINY_LABELS, windows=EvalWindows(2.0, 0.25)).eval()  # fmt: skip
    with torch.no_grad():
        pipeline.normalizers["logmel"].mean.fill_(-6.0)
        pipeline.normalizers["logmel"].std.fill_(3.0)
    path = export_onnx(pipeline, tmp_path / "one.onnx")
    waves, lengths = _padded_batch([1.5, 0.5, 12345 / 16000])
    backend = OnnxBackend(path, num_threads=1)
    onnx = backend.probabilities(waves, lengths)
    assert np.abs(onnx - _torch_probabilities(pipeline, waves, lengths)).max() < TOLERANCE
    assert (backend.window_seconds, backend.hop_seconds) == (2.0, 0.5)
