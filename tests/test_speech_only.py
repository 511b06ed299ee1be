"""Speech-only models: the recogniser reads only the speech the VAD finds, training reads the
same frames, and the model file and the ONNX sidecar carry the flag."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.config import ConfigError, TrainConfig
from emofuse.inference.recognizer import EmotionRecognizer, TorchBackend
from emofuse.signal.vad import CHUNK
from emofuse.signal.vad_segmenter import VADSettings
from emofuse.testing import synthetic_voice, tiny_pipeline
from emofuse.training.speech import SpeechRegions, speech_frames

RATE = 16000


class HalfSpeech:
    """A stand-in voice activity detector: speech in the first half of every wave."""

    def probabilities(self, waves):
        out = []
        for wave in waves:
            chunks = -(-wave.size // CHUNK)
            probs = np.zeros(chunks, np.float32)
            probs[: chunks // 2] = 0.99
            out.append(probs)
        return out


class Recording(TorchBackend):
    """The torch backend, remembering the lengths of the windows it was given."""

    seen: list[int]

    def probabilities(self, waveforms, lengths):
        self.seen = [*getattr(self, "seen", []), *map(int, lengths)]
        return super().probabilities(waveforms, lengths)


@pytest.mark.parametrize("speech_only", [False, True])
def test_a_speech_only_model_reads_only_the_speech(speech_only):
    pipeline = tiny_pipeline()
    pipeline.extra = {"speech_only": speech_only}
    backend = Recording(pipeline, device="cpu")
    recognizer = EmotionRecognizer(backend, vad=HalfSpeech(), vad_settings=VADSettings())
    prediction = recognizer.predict(synthetic_voice(1.6), sample_rate=RATE)
    assert prediction.duration == pytest.approx(1.6)  # the clip's length, not the speech's
    if speech_only:
        assert max(backend.seen) < 0.7 * 1.6 * RATE
    else:
        assert max(backend.seen) == round(1.6 * RATE)


def test_speech_frames_keep_the_frames_inside_the_regions():
    frames = np.arange(20, dtype=np.float32).reshape(1, 20)  # 50 frames/s: 0.4 s
    kept = speech_frames(frames, np.array([[0, 3200]]), 50.0)  # the first 0.2 s
    assert kept.tolist() == [list(range(10))]
    assert speech_frames(frames, np.zeros((0, 2), np.int64), 50.0).shape == (1, 20)


def test_speech_regions_are_cached(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(path, synthetic_voice(1.0), RATE)
    regions = SpeechRegions(tmp_path / "cache")
    monkeypatch.setattr(regions, "_detector", HalfSpeech())
    first = regions(path)
    assert first.shape[1] == 2 and first.dtype == np.int64
    monkeypatch.setattr(regions, "_detector", None)
    monkeypatch.setattr("emofuse.training.speech.SpeechDetector.load", lambda: 1 / 0)
    np.testing.assert_array_equal(regions(path), first)  # read back, no detector needed


def test_speech_only_needs_a_logistic_head():
    with pytest.raises(ConfigError, match="speech_only"):
        TrainConfig(speech_only=True)
    assert TrainConfig(speech_only=True, head="logistic").speech_only


def test_the_flag_travels_in_the_model_file(tmp_path):
    from emofuse.pipeline import load_pipeline, save_pipeline

    save_pipeline(tiny_pipeline(), tmp_path / "m.pt", speech_only=True)
    assert TorchBackend(load_pipeline(tmp_path / "m.pt"), device="cpu").speech_only
    save_pipeline(tiny_pipeline(), tmp_path / "old.pt")
    assert not TorchBackend(load_pipeline(tmp_path / "old.pt"), device="cpu").speech_only


def test_adaptation_reads_the_speech_of_a_speech_only_model():
    from emofuse.inference.adapt import speech_keeper

    plain, speech_only = tiny_pipeline(), tiny_pipeline()
    speech_only.extra = {"speech_only": True}
    assert speech_keeper(plain, HalfSpeech(), VADSettings()) is None
    keep = speech_keeper(speech_only, HalfSpeech(), VADSettings())
    wave = synthetic_voice(1.6)
    assert 0 < keep(wave).size < 0.7 * wave.size
