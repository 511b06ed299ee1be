"""ONNX export of pipelines with a Whisper feature: the graph gives the torch pipeline's
probabilities for padded batches and single clips of up to 30 s."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (emofuse[onnx])")

from emofuse.features import FeatureSpec, feature_spec  # noqa: E402
from emofuse.inference.onnx import OnnxBackend, _ExportGraph, export_onnx, sidecar_path  # noqa: E402
from emofuse.model import ModelConfig  # noqa: E402
from emofuse.pipeline import EmotionPipeline  # noqa: E402
from emofuse.signal.functional import lengths_to_mask  # noqa: E402
from emofuse.signal.whisper import sinusoids  # noqa: E402
from emofuse.testing import TINY_LABELS, synthetic_voice  # noqa: E402

TOLERANCE = 1e-4
WHISPER = {"layers": [1, 2], "width": 64, "heads": 4, "n_layers": 3, "weights": ""}


def _padded_batch(seconds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    clips = [synthetic_voice(s, pitch=120 + 40 * i, seed=i) for i, s in enumerate(seconds)]
    lengths = np.array([clip.size for clip in clips], dtype=np.int64)
    waves = np.zeros((len(clips), lengths.max()), dtype=np.float32)
    for row, clip in zip(waves, clips, strict=True):
        row[: clip.size] = clip
    return waves, lengths


def _whisper_pipeline(fused: bool) -> EmotionPipeline:
    """Random Whisper weights (positions: the sinusoids), normalisers fitted on a few clips, a
    sharpened classifier (so the probabilities are far from uniform)."""
    torch.manual_seed(0)
    features = [feature_spec("whisper", **WHISPER)]
    if fused:
        features = [
            feature_spec("mfcc", channels=16),
            feature_spec("logmel", channels=8),
            *features,
        ]
    model = ModelConfig(n_classes=len(TINY_LABELS), temporal="none", pooling="attention")
    pipeline = EmotionPipeline(features, model, TINY_LABELS, pretrained=False).eval()
    waves, lengths = _padded_batch([1.0, 2.0, 0.7])
    with torch.no_grad():
        for parameter in pipeline.frontend.parameters():
            nn.init.normal_(parameter, std=0.02)
        encoder = pipeline.frontend.extractors["whisper"].encoder
        encoder.positions.copy_(torch.from_numpy(sinusoids(*encoder.positions.shape)))
        features = pipeline.frontend(torch.from_numpy(waves), torch.from_numpy(lengths))
        for name, (x, frame_lengths) in features.items():
            mask = lengths_to_mask(frame_lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)
            sums, squares = (x * mask).sum((0, 2)), (x * x * mask).sum((0, 2))
            pipeline.normalizers[name].fit(sums, squares, int(frame_lengths.sum()))
        pipeline.net.classifier.weight.mul_(10.0)  # spread the probabilities
    return pipeline


def _torch_probabilities(pipeline: EmotionPipeline, waves: np.ndarray, lengths: np.ndarray):
    with torch.no_grad():
        logits = pipeline(torch.from_numpy(waves), torch.from_numpy(lengths))
    return torch.softmax(logits, dim=-1).numpy()


@pytest.fixture(scope="module", params=["whisper", "fused"])
def exported(request, tmp_path_factory):
    pipeline = _whisper_pipeline(fused=request.param == "fused")
    path = export_onnx(pipeline, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    return pipeline, path


@pytest.mark.parametrize(
    "seconds", [[1.3, 0.4], [2.0], [12345 / 16000], [0.005]], ids=["batch", "2 s", "odd", "5 ms"]
)
def test_onnx_equals_torch(exported, seconds):
    pipeline, path = exported
    waves, lengths = _padded_batch(seconds)
    onnx = OnnxBackend(path, num_threads=1).probabilities(waves, lengths)
    reference = _torch_probabilities(pipeline, waves, lengths)
    assert onnx.shape == (len(seconds), len(TINY_LABELS))
    assert reference.max() - reference.min() > 0.05  # not a uniform output
    assert np.abs(onnx - reference).max() < TOLERANCE


def test_padding_does_not_change_an_item(exported):
    pipeline, path = exported
    waves, lengths = _padded_batch([1.3, 0.4])
    onnx = OnnxBackend(path, num_threads=1).probabilities(waves, lengths)
    alone = _torch_probabilities(pipeline, waves[1:2, : lengths[1]], lengths[1:2])
    assert np.abs(onnx[1] - alone[0]).max() < TOLERANCE


def test_export_graph_equals_pipeline_in_torch(exported):
    """The export stand-in (key mask always on, one window) changes no output."""
    pipeline, _ = exported
    for seconds in ([1.0, 0.3, 0.77], [0.9]):
        waves, lengths = _padded_batch(seconds)
        with torch.no_grad():
            graph = _ExportGraph(pipeline).eval()
            exported_probs = graph(torch.from_numpy(waves), torch.from_numpy(lengths)).numpy()
        reference = _torch_probabilities(pipeline, waves, lengths)
        assert np.abs(exported_probs - reference).max() < 1e-6


def test_sidecar_holds_the_whisper_feature(exported):
    pipeline, path = exported
    meta = json.loads(sidecar_path(path).read_text())
    specs = [FeatureSpec.from_dict(s) for s in meta["features"]]
    assert specs == pipeline.features
    whisper = next(s for s in meta["features"] if s["kind"] == "whisper")
    assert {key: whisper["settings"][key] for key in WHISPER} == WHISPER
    assert meta["max_samples"] == 30 * 16000
    backend = OnnxBackend(path)
    assert backend.labels == TINY_LABELS and backend.max_samples == 30 * 16000


def test_backend_takes_up_to_30_s(exported):
    _, path = exported
    backend = OnnxBackend(path, num_threads=1)
    waves, lengths = _padded_batch([0.5])
    wide = np.pad(waves, ((0, 0), (0, 31 * 16000)))  # padding past 30 s is trimmed
    assert np.abs(backend.probabilities(wide, lengths) - backend.probabilities(waves, lengths)
                  ).max() < 1e-6  # fmt: skip
    with pytest.raises(ValueError, match=r"up to 480000 samples \(30 s\)"):
        backend.probabilities(wide, np.array([wide.shape[1]]))
