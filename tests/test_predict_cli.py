"""Tests of ``emofuse predict``, run in-process through ``emofuse.cli.main``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from cli_output import error_lines

from emofuse.cli import main
from emofuse.pipeline import modelfile
from emofuse.testing import TINY_LABELS, save_tiny_pipeline, synthetic_voice

RATE = 16000


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(save_tiny_pipeline(tmp_path_factory.mktemp("model") / "tiny.pt"))


@pytest.fixture
def audio(tmp_path) -> dict[str, str]:
    """Two voices (one in a sub-folder, as FLAC) and a silent file."""
    (tmp_path / "sub").mkdir()
    files = {
        "a": (tmp_path / "a.wav", synthetic_voice(2.0)),
        "b": (tmp_path / "sub" / "b.flac", synthetic_voice(4.0, seed=1)),
        "quiet": (tmp_path / "quiet.wav", np.zeros(RATE, np.float32)),
    }
    for path, wave in files.values():
        sf.write(path, wave, RATE)
    return {name: str(path) for name, (path, _) in files.items()}


def _run(capsys, *args: str) -> tuple[int, str, list[str]]:
    """``emofuse predict ARGS --no-vad`` (the synthetic voices are not speech to a VAD)."""
    status = main(["predict", *args, "--no-vad"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, error_lines(captured.err)


def test_table(capsys, model, audio):
    status, out, err = _run(capsys, audio["a"], audio["quiet"], "--model", model)
    assert status == 0 and err == []
    header, *rows = out.strip().splitlines()
    assert header.split()[:4] == ["file", "seconds", "label", "confidence"]
    assert rows[0].startswith(audio["a"]) and rows[0].split()[2] in TINY_LABELS
    assert rows[1].split()[1:] == ["1.00", "no", "speech", "-", "silent", "(below", "-60", "dBFS)"]


def test_json(capsys, model, audio):
    status, out, _ = _run(capsys, audio["b"], audio["a"], "--model", model, "--format", "json")
    records = json.loads(out)
    assert status == 0 and [r["file"] for r in records] == [audio["b"], audio["a"]]
    for record in records:
        assert set(record["probabilities"]) == set(TINY_LABELS)
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)  # rounded
        assert record["confidence"] == max(record["probabilities"].values())
        assert record["silent"] is False


def test_csv_has_a_column_per_label(capsys, model, audio):
    args = (audio["a"], audio["quiet"], "--model", model, "--format", "csv", "--batch-size", "1")
    status, out, _ = _run(capsys, *args)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and len(rows) == 2
    assert set(TINY_LABELS) <= set(rows[0]) and rows[0]["file"] == audio["a"]
    assert sum(float(rows[0][k]) for k in TINY_LABELS) == pytest.approx(1.0, abs=1e-3)
    assert rows[1]["label"] == "no speech" and rows[1]["silent"] == "1"


def test_bad_files_are_reported_and_the_others_finish(capsys, model, audio, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("hello")
    bad = [str(tmp_path / name) for name in ("empty.wav", "text.wav", "missing.wav")]
    args = (audio["a"], *bad, audio["b"], "--model", model, "--format", "json")
    status, out, err = _run(capsys, *args)
    assert status == 1
    assert [r["file"] for r in json.loads(out)] == [audio["a"], audio["b"]]
    assert len(err) == 3
    for line, path in zip(err, bad, strict=True):
        assert line.startswith(f"emofuse: error: {path}: ")


def test_directory_input(capsys, model, audio, tmp_path):
    (tmp_path / "notes.txt").write_text("not audio, not looked at")
    status, out, err = _run(capsys, str(tmp_path), "--model", model, "--format", "json")
    assert status == 0 and err == []
    assert [r["file"] for r in json.loads(out)] == [audio["a"], audio["quiet"], audio["b"]]


def test_empty_directory_is_an_error(capsys, model, audio, tmp_path):
    (tmp_path / "nothing").mkdir()
    status, out, err = _run(capsys, str(tmp_path / "nothing"), audio["a"], "--model", model)
    assert status == 1 and "no audio files" in err[0] and audio["a"] in out


def test_timeline_rows_and_plot(capsys, model, tmp_path):
    wave = np.concatenate([synthetic_voice(6.0), np.zeros(6 * RATE, np.float32)])
    sf.write(tmp_path / "long.wav", wave, RATE)
    png = tmp_path / "timeline.png"
    args = (str(tmp_path / "long.wav"), "--model", model, "--timeline", "--format", "csv")
    status, out, err = _run(capsys, *args, "--plot", str(png), "--window", "2", "--hop", "1")
    assert status == 0 and err == []
    rows = list(csv.DictReader(io.StringIO(out)))
    assert float(rows[0]["start"]) == 0.0 and float(rows[-1]["end"]) == pytest.approx(12.0)
    assert all(a["end"] == b["start"] for a, b in zip(rows, rows[1:], strict=False))
    assert rows[-1]["label"] == "no speech" and rows[0]["label"] in TINY_LABELS
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    status, out, _ = _run(capsys, str(tmp_path / "long.wav"), "--model", model, "--timeline")
    header, *lines = out.strip().splitlines()
    assert status == 0 and header.split()[:5] == ["file", "start", "end", "label", "confidence"]
    assert len(lines) == len(list(csv.DictReader(io.StringIO(out)))) and len(lines) > 3


def test_plot_needs_one_file(capsys, model, audio):
    status, _, err = _run(capsys, audio["a"], audio["b"], "--model", model, "--plot", "x.png")
    assert status == 1 and err == ["emofuse: error: --plot needs exactly one audio file, got 2"]


def test_model_errors_are_one_line(capsys, audio, tmp_path, monkeypatch):
    status, _, err = _run(capsys, audio["a"], "--model", str(tmp_path / "nope.pt"))
    assert status == 1 and len(err) == 1 and "no such model file" in err[0]
    monkeypatch.setattr(modelfile, "PRETRAINED_DIR", tmp_path)  # an install without it
    status, _, err = _run(capsys, audio["a"])
    assert status == 1 and len(err) == 1 and "bundled accurate model is not installed" in err[0]


def test_predict_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    for option in ("--format", "--timeline", "--window", "--hop", "--plot", "--model"):
        assert option in out


def test_output_into_a_closed_pipe_is_quiet(model, audio):
    """`emofuse predict ... | head -1`: the reader leaves early; no error message, status 141."""
    command = [sys.executable, "-m", "emofuse.cli", "predict", audio["a"], "--model", model]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command writes anything
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141 and b"error" not in err, err


def test_adapt_to_inputs_says_what_it_used(capsys, model, audio, tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, 0.3 * synthetic_voice(62.0, seed=4), RATE)
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    plain = _run(capsys, audio["a"], str(long), "--model", model, "--format", "json")
    status, out, err = _run(capsys, audio["a"], str(long), str(broken), "--model", model,
                            "--format", "json", "--adapt-to-inputs")  # fmt: skip
    assert status == 1  # the broken file is still reported, after the others
    assert any("adapted to the inputs: 2 files, 64 s" in line for line in err)
    assert any("broken.wav" in line for line in err)
    adapted, before = json.loads(out), json.loads(plain[1])
    assert [r["file"] for r in adapted] == [r["file"] for r in before]
    assert adapted[0]["probabilities"] != before[0]["probabilities"]


def test_adapt_to_inputs_refuses_too_little_audio(capsys, model, audio):
    status, out, err = _run(capsys, audio["a"], "--model", model, "--adapt-to-inputs")
    assert status != 0 and out == ""
    assert any("at least 60 s" in line and "2.0 s from 1 file" in line for line in err)
