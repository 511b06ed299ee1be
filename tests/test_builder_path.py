"""The builder's path, hardened: speech detection in predict and timelines, streamed output,
``--output``, ``--threads``, ``.onnx`` models, ``python -m emofuse``, help texts.

Real speech comes from the clips in ``examples/`` (EmoDB); the synthetic voice of
:mod:`emofuse.testing` is not speech to a voice activity detector.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.cli import main
from emofuse.inference.recognizer import NO_SPEECH, EmotionRecognizer, TorchBackend
from emofuse.signal.audio import load_audio
from emofuse.testing import save_tiny_pipeline, synthetic_voice, tiny_pipeline

RATE = 16000
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.flac"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(save_tiny_pipeline(tmp_path_factory.mktemp("model") / "tiny.pt"))


@pytest.fixture(scope="module")
def recognizer() -> EmotionRecognizer:
    return EmotionRecognizer(TorchBackend(tiny_pipeline(), device="cpu"))  # with VAD


def _noise(db: float, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    wave = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    return (wave / np.sqrt(np.mean(wave**2)) * 10 ** (db / 20)).astype(np.float32)


def _non_speech() -> dict[str, np.ndarray]:
    t = np.arange(3 * RATE) / RATE
    clicks = np.zeros(3 * RATE, np.float32)
    clicks[:: RATE // 2] = 0.9
    return {
        "silence": np.zeros(3 * RATE, np.float32),
        "noise -55 dBFS": _noise(-55),
        "noise -45 dBFS": _noise(-45),
        "noise -20 dBFS": _noise(-20),
        "hum 50 Hz": (0.1 * np.sin(2 * np.pi * 50 * t)).astype(np.float32),
        "clicks": clicks,
    }


def test_examples_are_real_speech():
    assert len(EXAMPLES) == 4, "the example clips in examples/ are the tests' real speech"


@pytest.mark.parametrize("name", list(_non_speech()))
def test_non_speech_gets_no_emotion_and_a_reason(recognizer, name):
    prediction = recognizer.predict(_non_speech()[name], sample_rate=RATE)
    assert prediction.label == NO_SPEECH and prediction.silent and prediction.probabilities == {}
    expected = "silent" if name == "silence" else "no speech detected"
    assert prediction.reason.startswith(expected)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_real_speech_is_not_dropped(recognizer, path):
    prediction = recognizer.predict(path)
    assert prediction.label in recognizer.labels and prediction.reason is None
    quiet = recognizer.predict(0.05 * load_audio(path), sample_rate=RATE)  # -26 dB quieter
    assert quiet.label in recognizer.labels


def test_without_vad_noise_is_answered(model):
    plain = EmotionRecognizer.load(model, vad=False)
    assert plain.vad is None and plain.predict(_noise(-45), sample_rate=RATE).label in plain.labels


def test_timeline_is_cut_at_speech_boundaries(recognizer, tmp_path):
    speech = load_audio(EXAMPLES[0])
    gap = np.zeros(4 * RATE, np.float32)
    wave = np.concatenate([speech, gap, _noise(-40, 4.0), speech])
    sf.write(tmp_path / "mix.wav", wave, RATE)
    segments = list(recognizer.timeline(tmp_path / "mix.wav", window_seconds=1.0, hop_seconds=0.5))
    assert segments[0].start == 0 and segments[-1].end == pytest.approx(wave.size / RATE)
    pairs = zip(segments, segments[1:], strict=False)
    assert all(a.end == pytest.approx(b.start) for a, b in pairs)
    lo, hi = speech.size / RATE + 0.5, (speech.size + 2 * gap.size) / RATE - 0.5  # gap + noise
    middle = [s for s in segments if s.end > lo and s.start < hi]
    assert middle and all(s.label == NO_SPEECH for s in middle)
    assert middle[0].start < lo and middle[-1].end > hi
    assert len(middle) <= 2, "a stretch without speech is one segment, not one per hop"
    spoken = [s for s in segments if s.label != NO_SPEECH]
    assert sum(s.end - s.start for s in spoken) > 1.5 * speech.size / RATE * 0.8
    assert all(set(s.probabilities) == set(recognizer.labels) for s in spoken)


def test_predictions_stream_before_all_files_are_read(model, tmp_path, monkeypatch):
    from emofuse.inference import recognizer as module

    paths = []
    for i in range(60):
        paths.append(tmp_path / f"{i:02d}.wav")
        sf.write(paths[-1], synthetic_voice(1.0, seed=i), RATE)
    read = []
    original = module.load_audio
    monkeypatch.setattr(module, "load_audio", lambda p, rate: read.append(p) or original(p, rate))
    plain = EmotionRecognizer.load(model, vad=False)
    first = next(plain.iter_predictions(paths, batch_size=1))
    assert first[0] == 0 and len(read) < len(paths)
    results = plain.predict_many(paths, batch_size=7)
    assert [p.source for p in results] == [str(p) for p in paths]
    two = plain.predict_many(paths, batch_size=3, workers=2)  # batches in two threads at once
    for a, b in zip(two, results, strict=True):
        assert a.label == b.label and a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def _predict(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["predict", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def test_jsonl_rows_and_rounding(capsys, model):
    status, out, _ = _predict(capsys, *map(str, EXAMPLES), "--model", model, "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and [r["file"] for r in records] == list(map(str, EXAMPLES))
    for record in records:
        assert record["duration"] == round(record["duration"], 3)
        assert all(p == round(p, 4) for p in record["probabilities"].values())


def test_csv_times_are_rounded(capsys, model):
    args = (str(EXAMPLES[0]), "--model", model, "--timeline", "--format", "csv", "--hop", "0.7")
    status, out, _ = _predict(capsys, *args)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and rows
    for row in rows:
        for key in ("start", "end"):
            assert len(row[key].partition(".")[2]) <= 3, row[key]


def test_output_file_is_written_whole(capsys, model, tmp_path):
    out = tmp_path / "rows.csv"
    status, stdout, _ = _predict(capsys, *map(str, EXAMPLES), "--model", model,
                                 "--format", "csv", "--output", str(out))  # fmt: skip
    assert status == 0 and stdout == ""
    assert len(list(csv.DictReader(out.open()))) == len(EXAMPLES)
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]  # no temporary file left


def test_interrupted_output_keeps_the_old_file_and_the_rows_so_far(capsys, model, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    out = tmp_path / "rows.csv"
    out.write_text("old results\n")
    original = EmotionRecognizer.iter_predictions

    def interrupted(self, *args, **kwargs):
        for n, item in enumerate(original(self, *args, **kwargs)):
            if n == 2:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(EmotionRecognizer, "iter_predictions", interrupted)
    status, _, err = _predict(capsys, *map(str, EXAMPLES), "--model", model,
                              "--format", "csv", "--output", str(out))  # fmt: skip
    assert status == 130 and out.read_text() == "old results\n"
    partial = tmp_path / "rows.csv.partial"
    assert str(partial) in err and len(list(csv.DictReader(partial.open()))) == 2


@pytest.mark.parametrize("option", ["--output", "--plot"])
def test_an_output_folder_is_checked_before_any_work(capsys, model, tmp_path, monkeypatch, option):
    """A missing folder is made (as for every emofuse output); one that cannot be made fails
    before the model is even loaded."""
    status, _, _ = _predict(capsys, str(EXAMPLES[0]), "--model", model, option,
                            str(tmp_path / "new" / "out.png"))  # fmt: skip
    assert status == 0 and (tmp_path / "new" / "out.png").stat().st_size > 0

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(EmotionRecognizer, "load", refuse)
    (tmp_path / "file").write_text("a file where a folder should be")
    target = str(tmp_path / "file" / "out.png")
    status, _, err = _predict(capsys, str(EXAMPLES[0]), "--model", model, option, target)
    assert status == 1 and f"cannot make folder {tmp_path / 'file'}" in err


def test_long_file_points_to_the_timeline(capsys, model, tmp_path):
    sf.write(tmp_path / "long.wav", np.tile(load_audio(EXAMPLES[0]), 20), RATE)
    status, _, err = _predict(capsys, str(tmp_path / "long.wav"), "--model", model)
    assert status == 0 and "--timeline" in err and "long.wav" in err


def test_onnx_file_without_backend_is_not_unpickled(capsys, tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    status, _, err = _predict(capsys, str(EXAMPLES[0]), "--model", str(fake))
    assert status == 1 and "UnpicklingError" not in err and "model.onnx" in err
    with pytest.raises(ValueError, match="ONNX export"):
        EmotionRecognizer.load(fake, backend="torch")


def test_threads_option(capsys, model, monkeypatch):
    """Many files: --threads batches at once, one torch thread each; a timeline: one batch on
    --threads torch threads."""
    seen = []
    original = EmotionRecognizer.iter_predictions

    def recorded(self, *args, **kwargs):
        seen.append((kwargs["workers"], torch.get_num_threads()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EmotionRecognizer, "iter_predictions", recorded)
    before = torch.get_num_threads()
    try:
        status, out, _ = _predict(capsys, *map(str, EXAMPLES), "--model", model, "--threads", "2",
                                  "--batch-size", "1")  # fmt: skip
        assert status == 0 and seen == [(2, 1)] and len(out.splitlines()) == 1 + len(EXAMPLES)
        status, _, _ = _predict(capsys, str(EXAMPLES[0]), "--model", model, "--threads", "2",
                                "--timeline")  # fmt: skip
        assert status == 0 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    status, _, err = _predict(capsys, str(EXAMPLES[0]), "--model", model, "--threads", "0")
    assert status == 1 and "--threads must be positive" in err


@pytest.mark.parametrize("command", [
    ["predict"], ["export"], ["adapt"], ["features"], ["model", "summary"], ["corpus", "info"],
    ["crossval"], ["compare"], ["train"], ["ensemble"], ["serve"],
])  # fmt: skip
def test_every_command_takes_threads(capsys, command):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert "--threads" in capsys.readouterr().out


def test_help_names_every_choice_and_default(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("jsonl", "(default: accurate)", "onnxruntime for a .onnx file",
                     "--no-vad", "--output"):  # fmt: skip
        assert expected in text
    with pytest.raises(SystemExit):
        main(["crossval", "--help"])
    assert "loco" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "prosody" in capsys.readouterr().out


def test_python_dash_m_emofuse_runs_from_the_folder_above_a_clone(tmp_path):
    """Run beside a folder named ``emofuse`` (the clone), ``import emofuse`` must still find the
    package, with its version and bundled models."""
    (tmp_path / "emofuse").symlink_to(REPO, target_is_directory=True)
    version = subprocess.run([sys.executable, "-m", "emofuse", "--version"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert version.returncode == 0 and version.stdout.startswith("emofuse "), version.stderr
    code = "from emofuse.pipeline import load_model; print(load_model('fast').labels[0])"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert loaded.returncode == 0 and loaded.stdout.strip() == "neutral", loaded.stderr


def test_export_prints_no_torchvision_notes(model, tmp_path):
    """torch's ONNX exporter logs "torchvision is not installed. Skipping torchvision::nms" (and
    three more) the first time it runs in a process; emofuse export keeps them quiet."""
    out = tmp_path / "tiny.onnx"
    command = [sys.executable, "-m", "emofuse", "export", "--model", model, "--onnx", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and out.stat().st_size > 0, run.stderr
    assert "torchvision" not in run.stderr and run.stderr.strip() == "", run.stderr


def test_timeline_of_an_array_equals_that_of_its_file(recognizer, tmp_path):
    wave = np.concatenate([load_audio(EXAMPLES[1]), np.zeros(2 * RATE, np.float32)])
    sf.write(tmp_path / "clip.wav", wave, RATE, subtype="FLOAT")
    from_file = list(recognizer.timeline(tmp_path / "clip.wav", window_seconds=1.0,
                                         hop_seconds=0.5))  # fmt: skip
    from_array = list(recognizer.timeline(wave, RATE, window_seconds=1.0, hop_seconds=0.5))
    assert [(s.start, s.end, s.label) for s in from_array] == [
        (s.start, s.end, s.label) for s in from_file
    ]
    with pytest.raises(ValueError, match="sample_rate is for arrays"):
        recognizer.timeline(tmp_path / "clip.wav", RATE)
