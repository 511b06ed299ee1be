"""One job per verb: ``predict`` (files), ``live`` (standard input), ``archive`` (Ray); the old
spellings ``predict --stream -`` and ``predict --ray --out`` still run, with a warning."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from cli_output import error_lines

import emofuse.cli.deprecated as deprecated
from emofuse.cli import build_parser, main
from emofuse.testing import save_tiny_pipeline, synthetic_voice


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("model") / "tiny.pt")


def _live(capsys, monkeypatch, pcm: bytes, *argv: str) -> tuple[int, list[dict], str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_old_stream_spelling_runs_live_with_a_warning(capsys, monkeypatch, model):
    pcm = (synthetic_voice(4.0, seed=3) * 32767).astype("<i2").tobytes()
    options = ["--model", str(model), "--no-vad", "--threads", "1"]
    status, new, err = _live(capsys, monkeypatch, pcm, "live", *options)
    assert status == 0 and error_lines(err) == [] and any(e["type"] == "segment" for e in new)
    status, old, err = _live(capsys, monkeypatch, pcm, "predict", "-", "--stream", *options)
    assert status == 0 and old == new
    assert "predict --stream - is deprecated" in err and "emofuse live --rate 16000" in err


def test_old_ray_spelling_runs_archive_with_a_warning(capsys, monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(deprecated, "cmd_archive", lambda args: seen.update(vars(args)) or 0)
    status = main(["predict", str(tmp_path), "--ray", "--out", "parts", "--ray-workers", "3"])
    assert status == 0
    assert (seen["source"], seen["output"], seen["workers"], seen["ray"]) == (
        str(tmp_path), "parts", 3, "local")  # fmt: skip
    err = capsys.readouterr().err
    assert "is deprecated" in err and "emofuse archive FOLDER_OR_MANIFEST --output FOLDER" in err


def test_each_verb_shows_only_its_own_options():
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices  # the subcommand parsers
    predict = verbs["predict"].format_help()
    for old in ("--stream", "--ray", "--out ", "--rate", "s16le"):
        assert old not in predict
    assert "--pcm" in verbs["live"].format_help()
    assert "--output" in verbs["archive"].format_help()


def test_archive_checks_its_address(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["archive", str(tmp_path), "--output", "x", "--ray", str(tmp_path)])
    assert "not a Ray address" in capsys.readouterr().err


def test_live_takes_only_standard_input(capsys):
    with pytest.raises(SystemExit):
        main(["live", "a.wav"])
    assert "invalid choice: 'a.wav'" in capsys.readouterr().err


def test_every_verb_loads_its_model_through_load_recognizer():
    cli = Path(deprecated.__file__).parent
    loads = {p.name for p in cli.glob("*.py") if re.search(r"EmotionRecognizer\.load\(",
                                                          p.read_text())}  # fmt: skip
    assert loads == {"common.py"}
