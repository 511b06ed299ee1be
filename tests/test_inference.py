"""Tests of emofuse.inference.recognizer with tiny random-weight models: behaviour, not accuracy."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.files import find_audio_files
from emofuse.inference.recognizer import EmotionRecognizer, TorchBackend
from emofuse.pipeline import EvalWindows, ModelFileError, load_pipeline, modelfile, save_pipeline
from emofuse.signal.audio import AudioError
from emofuse.testing import save_tiny_pipeline, synthetic_voice, tiny_pipeline
from emofuse.training.batches import windows

RATE = 16000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def recognizer(model_path) -> EmotionRecognizer:
    return EmotionRecognizer.load(model_path, device="cpu", vad=False)


def _direct(wave: np.ndarray) -> np.ndarray:
    """Softmax of one EmotionPipeline forward on the whole (already prepared) clip."""
    with torch.no_grad():
        logits = tiny_pipeline()(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
    return logits.softmax(dim=1)[0].numpy()


def _probs(prediction) -> np.ndarray:
    return np.array(list(prediction.probabilities.values()))


def _write(path: Path, wave: np.ndarray, rate: int = RATE) -> Path:
    sf.write(path, wave, rate, subtype="FLOAT")
    return path


def test_single_window_matches_pipeline_forward(recognizer):
    wave = synthetic_voice(2.0)
    prediction = recognizer.predict(wave, sample_rate=RATE)
    expected = _direct(wave - wave.mean())
    assert list(prediction.probabilities) == list(recognizer.labels)
    np.testing.assert_allclose(_probs(prediction), expected, atol=1e-6)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert prediction.label == recognizer.labels[int(expected.argmax())]
    assert prediction.confidence == pytest.approx(expected.max(), abs=1e-6)
    assert not prediction.silent and prediction.duration == pytest.approx(2.0)
    assert prediction.to_dict()["probabilities"] == prediction.probabilities


def test_long_clip_averages_3s_windows_with_half_hop(recognizer):
    wave = synthetic_voice(7.0, seed=3)  # windows at 0, 1.5, 3 s and one ending at 7 s
    parts = windows(wave.size, 3 * RATE, 3 * RATE // 2)  # training's rule
    assert [size for _, size in parts] == [3 * RATE] * 4
    cuts = [wave[start : start + size] for start, size in parts]
    expected = np.mean([_direct(c - c.mean()) for c in cuts], axis=0)
    prediction = recognizer.predict(wave, sample_rate=RATE)
    np.testing.assert_allclose(_probs(prediction), expected, atol=1e-6)


def test_windows_come_from_the_model_file(tmp_path):
    pipeline = tiny_pipeline()
    pipeline.windows = EvalWindows(2.0, 0.25)  # validated with 2 s windows every 0.5 s
    save_pipeline(pipeline, tmp_path / "m.pt")
    recognizer = EmotionRecognizer.load(tmp_path / "m.pt", device="cpu", vad=False)
    assert (recognizer.backend.window_seconds, recognizer.backend.hop_seconds) == (2.0, 0.5)
    wave = synthetic_voice(3.2, seed=4)
    parts = windows(wave.size, 2 * RATE, RATE // 2)
    assert [start for start, _ in parts] == [0, 8000, 16000, 19200]
    cuts = [wave[start : start + size] for start, size in parts]
    expected = np.mean([_direct(c - c.mean()) for c in cuts], axis=0)
    np.testing.assert_allclose(_probs(recognizer.predict(wave, sample_rate=RATE)), expected,
                               atol=1e-6)  # fmt: skip
    segments = list(recognizer.timeline(_write(tmp_path / "w.wav", wave)))
    assert len(segments) == 4 and segments[0].end == pytest.approx(1.25)


def test_path_and_array_give_the_same_result(recognizer, tmp_path):
    wave = synthetic_voice(4.0, seed=1)
    from_file = recognizer.predict(_write(tmp_path / "a.wav", wave))
    from_array = recognizer.predict(wave, sample_rate=RATE)
    np.testing.assert_allclose(_probs(from_file), _probs(from_array), atol=1e-6)
    assert from_file.source == str(tmp_path / "a.wav") and from_array.source is None


def test_stereo_8khz_and_integer_input(recognizer, tmp_path):
    left, right = synthetic_voice(2.0, 8000, seed=1), synthetic_voice(2.0, 8000, pitch=220)
    stereo = np.stack([left, right], axis=1)  # (samples, channels)
    mono = recognizer.predict((left + right) / 2, sample_rate=8000)
    np.testing.assert_allclose(
        _probs(recognizer.predict(stereo, sample_rate=8000)), _probs(mono), atol=1e-6
    )
    from_file = recognizer.predict(_write(tmp_path / "stereo8k.wav", stereo, 8000))
    np.testing.assert_allclose(_probs(from_file), _probs(mono), atol=1e-5)
    assert from_file.duration == pytest.approx(2.0)
    pcm = (left * 32767).astype(np.int16)
    np.testing.assert_allclose(
        _probs(recognizer.predict(pcm, sample_rate=8000)),
        _probs(recognizer.predict(pcm / 32768.0, sample_rate=8000)),
        atol=1e-6,
    )


def test_bad_array_input(recognizer):
    with pytest.raises(ValueError, match="sample_rate"):
        recognizer.predict(synthetic_voice(1.0))
    with pytest.raises(ValueError, match="transpose"):
        recognizer.predict(np.zeros((2, RATE)), sample_rate=RATE)
    with pytest.raises(ValueError, match="non-finite"):
        recognizer.predict(np.full(RATE, np.nan), sample_rate=RATE)


def test_short_clip_is_tiled_to_half_a_second(recognizer):
    wave = synthetic_voice(0.1)  # 1600 samples
    prediction = recognizer.predict(wave, sample_rate=RATE)
    assert not prediction.silent and prediction.duration == pytest.approx(0.1)
    tiled = np.tile(wave - wave.mean(), 5)  # 8000 samples = 0.5 s
    np.testing.assert_allclose(_probs(prediction), _direct(tiled), atol=1e-6)


def test_silence_is_reported_not_given_an_emotion(model_path):
    recognizer = EmotionRecognizer.load(model_path, device="cpu", vad=False)
    for quiet in (np.zeros(2 * RATE), 1e-4 * synthetic_voice(2.0) + 0.2):  # -98 dBFS plus DC
        prediction = recognizer.predict(quiet, sample_rate=RATE)
        assert prediction.silent and prediction.label == "no speech"
        assert prediction.probabilities == {} and prediction.confidence == 0.0
    sensitive = EmotionRecognizer.load(model_path, device="cpu", silence_db=-100.0, vad=False)
    assert not sensitive.predict(1e-4 * synthetic_voice(2.0), sample_rate=RATE).silent


def test_dc_offset_is_removed(recognizer):
    wave = synthetic_voice(5.0, seed=2)
    plain = recognizer.predict(wave, sample_rate=RATE)
    shifted = recognizer.predict(wave + 0.3, sample_rate=RATE)
    assert shifted.label == plain.label
    np.testing.assert_allclose(_probs(shifted), _probs(plain), atol=1e-4)


def test_clipped_audio_is_answered(recognizer):
    clipped = np.clip(20 * synthetic_voice(3.0), -1.0, 1.0)
    prediction = recognizer.predict(clipped, sample_rate=RATE)
    assert not prediction.silent
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)


def test_predict_many_matches_predict_and_survives_bad_files(recognizer, tmp_path):
    waves = [synthetic_voice(s, seed=i) for i, s in enumerate((1.0, 4.2, 0.2, 8.0))]
    paths = [_write(tmp_path / f"{i}.wav", w) for i, w in enumerate(waves)]
    _write(tmp_path / "silent.wav", np.zeros(RATE, np.float32))
    (tmp_path / "bad.wav").write_text("not audio")
    items = [paths[0], paths[1], tmp_path / "bad.wav", tmp_path / "silent.wav"]
    items += [tmp_path / "missing.wav", paths[2], paths[3]]
    errors = []
    results = recognizer.predict_many(
        items, batch_size=3, on_error=lambda p, e: errors.append((p, e))
    )
    assert [r is None for r in results] == [False, False, True, False, True, False, False]
    assert [p for p, _ in errors] == [tmp_path / "bad.wav", tmp_path / "missing.wav"]
    assert all(isinstance(e, AudioError) for _, e in errors)
    assert results[3].silent
    for item, result in zip(items, results, strict=True):
        if result is not None:
            assert result.source == str(item)
            single = recognizer.predict(item)
            assert result.label == single.label and result.duration == single.duration
            np.testing.assert_allclose(_probs(result), _probs(single), atol=1e-5)


def test_timeline_covers_the_file_and_finds_the_silence(recognizer, tmp_path):
    wave = np.concatenate(
        [synthetic_voice(25.0), np.zeros(20 * RATE, np.float32), synthetic_voice(26.0, seed=1)]
    )  # voice 0-25 s, silence 25-45 s, voice 45-71 s
    path = _write(tmp_path / "long.wav", wave)
    segments = list(recognizer.timeline(path, adapt=False))
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(71.0)
    for a, b in zip(segments, segments[1:], strict=False):
        assert a.end == b.start and a.start < a.end
    for s in segments:
        if 25.0 <= s.start and s.end <= 45.0:
            assert s.silent and s.label == "no speech" and s.probabilities == {}
        elif s.end <= 25.0 or s.start >= 45.0:
            assert not s.silent and s.label in recognizer.labels
            assert sum(s.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    # A window starts every 1.5 s; segment k is the stretch nearest to window k's centre.
    k = 4
    assert (segments[k].start, segments[k].end) == pytest.approx((k * 1.5 + 0.75, k * 1.5 + 2.25))
    window = wave[int(k * 1.5 * RATE) : int((k * 1.5 + 3) * RATE)]
    np.testing.assert_allclose(
        list(segments[k].probabilities.values()),
        _probs(recognizer.predict(window, sample_rate=RATE)),
        atol=1e-6,
    )
    small = list(recognizer.timeline(path, block_seconds=7.3, batch_size=5, adapt=False))
    assert len(small) == len(segments)
    for a, b in zip(segments, small, strict=True):
        assert (a.start, a.end, a.label, a.silent) == (b.start, b.end, b.label, b.silent)
        np.testing.assert_allclose(
            list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4
        )


def test_timeline_adapts_to_its_own_recording(recognizer, tmp_path):
    """The default: each window is standardised with the statistics of the speech before it
    (shrunk to the training statistics), whatever the batching; the first is as unadapted."""
    wave = np.concatenate([0.3 * synthetic_voice(40.0), np.zeros(3 * RATE, np.float32),
                           0.3 * synthetic_voice(30.0, seed=2)])  # fmt: skip
    path = _write(tmp_path / "quiet-room.wav", wave)
    plain = [s for s in recognizer.timeline(path, adapt=False) if not s.silent]
    adapted = [s for s in recognizer.timeline(path, adapt=True) if not s.silent]
    rebatched = [s for s in recognizer.timeline(path, batch_size=3, block_seconds=11.0,
                                                adapt=True) if not s.silent]  # fmt: skip
    assert [(s.start, s.end) for s in adapted] == [(s.start, s.end) for s in plain]
    np.testing.assert_allclose(_probs(adapted[0]), _probs(plain[0]), atol=1e-6)
    gaps = [np.abs(_probs(a) - _probs(p)).max() for a, p in zip(adapted, plain, strict=True)]
    assert max(gaps[len(gaps) // 2 :]) > 1e-3  # later windows moved with the statistics
    for a, b in zip(adapted, rebatched, strict=True):
        np.testing.assert_allclose(_probs(a), _probs(b), atol=1e-4)
    # by default only a model trained per speaker adapts (its file says so)
    default = [s for s in recognizer.timeline(path) if not s.silent]
    np.testing.assert_allclose(_probs(default[-1]), _probs(plain[-1]), atol=1e-6)
    recognizer.backend.pipeline.extra = {"normalised_per": "speaker"}
    try:
        speaker_trained = [s for s in recognizer.timeline(path) if not s.silent]
    finally:
        recognizer.backend.pipeline.extra = {}
    np.testing.assert_allclose(_probs(speaker_trained[-1]), _probs(adapted[-1]), atol=1e-6)


def test_timeline_of_a_short_file_is_one_segment(recognizer, tmp_path):
    path = _write(tmp_path / "short.wav", synthetic_voice(2.0))
    (segment,) = recognizer.timeline(path)
    assert (segment.start, segment.end) == (0.0, 2.0)
    assert segment.to_dict()["probabilities"] == recognizer.predict(path).probabilities


def test_timeline_checks_arguments_when_called(recognizer, tmp_path):
    with pytest.raises(ValueError, match="hop"):
        recognizer.timeline(tmp_path / "unused.wav", window_seconds=1.0, hop_seconds=2.0)


def test_timeline_takes_the_old_window_and_hop_names_with_a_warning(recognizer):
    wave = synthetic_voice(4.0)
    new = list(recognizer.timeline(wave, RATE, window_seconds=1.0, hop_seconds=0.5))
    with pytest.warns(DeprecationWarning, match="deprecated; use (window|hop)_seconds="):
        old = list(recognizer.timeline(wave, RATE, window=1.0, hop=0.5))
    assert old == new
    with pytest.raises(TypeError, match="window_seconds"):
        recognizer.timeline(wave, RATE, window=1.0, window_seconds=1.0)
    with pytest.raises(TypeError, match="windw"):
        recognizer.timeline(wave, RATE, windw=1.0)


def test_load_without_bundled_model_raises_clearly(monkeypatch, tmp_path):
    monkeypatch.setattr(modelfile, "PRETRAINED_DIR", tmp_path)  # an install without it
    with pytest.raises(ModelFileError, match="bundled accurate model is not installed"):
        EmotionRecognizer.load()


def test_load_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        EmotionRecognizer.load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown backend"):
        EmotionRecognizer.load(tmp_path / "missing.pt", backend="tensorrt")


def test_onnx_backend_is_selected_through_the_interface(model_path, monkeypatch):
    """A stand-in ``emofuse.inference.onnx`` with the agreed ``OnnxBackend(path)`` interface."""
    opened = []

    def fake_onnx_backend(path, num_threads=None, precision="auto"):
        opened.append((path, num_threads))
        return TorchBackend(load_pipeline(model_path), device="cpu")

    fake = types.ModuleType("emofuse.inference.onnx")
    fake.OnnxBackend = fake_onnx_backend
    monkeypatch.setitem(sys.modules, "emofuse.inference.onnx", fake)
    recognizer = EmotionRecognizer.load("model.onnx", threads=1, vad=False)  # backend: auto
    assert opened == [("model.onnx", 1)] and recognizer.labels == tiny_pipeline().labels
    assert recognizer.sample_rate == RATE
    assert recognizer.predict(synthetic_voice(1.0), sample_rate=RATE).label in recognizer.labels


def test_find_audio_files_searches_folders(tmp_path):
    for name in ("b.wav", "sub/a.FLAC", "sub/deeper/c.ogg", "notes.txt", "sub/x.npy"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_audio_files([tmp_path, "given.txt"])
    assert found == [
        str(tmp_path / "b.wav"),
        str(tmp_path / "sub/a.FLAC"),
        str(tmp_path / "sub/deeper/c.ogg"),
        "given.txt",
    ]


def test_a_stretch_without_speech_is_written_as_soon_as_its_end_is_known():
    """Windows waiting for a batch go through the model when a "no speech" stretch arrives,
    so the stretch is written when it is known, not when the batch fills."""
    from emofuse.inference.timeline import TimelineEngine
    from emofuse.signal.vad_segmenter import Stretch
    from emofuse.testing import synthetic_voice, tiny_pipeline

    class Given:
        """A segmenter that finds the stretches it is told to."""

        samples, found = 0, []

        def feed(self, block):
            found, self.found = self.found, []
            return found

        def open_speech(self):
            return None

    backend = TorchBackend(tiny_pipeline(), device="cpu")
    voice, segmenter = synthetic_voice(2.0), Given()
    engine = TimelineEngine(backend, segmenter, window_samples=8000, hop_samples=4000,
                            batch_size=1000, silence_db=-60.0)  # fmt: skip
    segmenter.found = [Stretch(0, 32000, True, voice)]
    assert [e for e in engine.feed(voice) if e.type == "segment"] == []  # waiting for a batch
    segmenter.found = [Stretch(32000, 64000, False, None)]
    written = [e.label == "no speech" for e in engine.feed(voice) if e.type == "segment"]
    assert written == [False] * 7 + [True]  # 2 s: 7 windows, then the stretch without speech


def test_an_encoder_model_on_the_cpu_runs_one_window_per_forward_pass(recognizer):
    from emofuse.features import feature_spec
    from emofuse.model import ModelConfig
    from emofuse.pipeline import EmotionPipeline
    from emofuse.testing import TINY_LABELS

    whisper = feature_spec("whisper", layers=[1], width=64, heads=4, n_layers=2, weights="")
    encoder = EmotionPipeline([whisper], ModelConfig(n_classes=len(TINY_LABELS), temporal="none"),
                              TINY_LABELS, pretrained=False)  # fmt: skip
    assert TorchBackend(encoder, device="cpu").batch_windows == 1
    assert EmotionRecognizer(TorchBackend(encoder, device="cpu"), vad=False)._batch_size(None) == 1
    assert recognizer.backend.batch_windows is None  # no encoder: about 30 s of windows
    assert recognizer._batch_size(None) == 10 and recognizer._batch_size(4) == 4


def test_prefetch_holds_a_budget_of_audio_not_only_a_count_of_files():
    """Long files are read ahead up to the budget (one at least, plus the one being read),
    whatever the file count."""
    import threading

    from emofuse.inference.prefetch import prefetch

    computed, taken = [], threading.Event()

    def read(i: int) -> np.ndarray:
        computed.append(i)
        return np.zeros(100, np.float32)

    results = prefetch(read, [(i,) for i in range(10)], depth=32, weigh=len, budget=250)
    first = next(results)
    for _ in range(50):  # give the reader time to run ahead as far as it may
        if len(computed) >= 4:
            break
        taken.wait(0.02)
    taken.wait(0.2)
    # one taken, two held (200 <= 250) and one read that waits for room: not 32 ahead
    assert first.size == 100 and len(computed) == 4
    assert len(list(results)) == 9


@pytest.mark.parametrize("rate", [4000, 384_000, 16000.0])
def test_arrays_take_the_one_sample_rate_range(recognizer, rate):
    """Arrays, live streams, ``emofuse live --rate`` and the service share 8,000-192,000 Hz."""
    with pytest.raises(ValueError, match=f"from 8000 to 192000 Hz, got {rate}"):
        recognizer.predict(synthetic_voice(1.0), sample_rate=rate)
