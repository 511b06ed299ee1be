"""Tests of the ``emofuse`` command, run in-process through ``emofuse.cli.main``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fake_corpora
import pytest

from emofuse import __version__
from emofuse.cli import main
from emofuse.features import branch_spec, feature_spec
from emofuse.model import EmotionNet, ModelConfig

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = """\
features:
  - {kind: mfcc, branch: {channels: 16}}
  - {kind: logmel, branch: {channels: 8}}
model: {d_model: 16, n_heads: 2, lstm_hidden: 16}
train: {epochs: 5, batch_size: 8, crop_seconds: 0.4, eval_window_seconds: 0.4, warmup_epochs: 1,
        device: cpu, seed: 1}
"""


@pytest.fixture(autouse=True)
def _no_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "env-cache"))


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("emofuse: error: ")
    return lines[0]


def test_model_summary_prints_total_parameters(capsys):
    assert main(["model", "summary", "--model", "fast"]) == 0
    out = capsys.readouterr().out
    total = EmotionNet(ModelConfig(n_classes=7)).num_parameters()  # the fast model's size
    last = out.strip().splitlines()[-1]
    assert last.startswith("total") and last.endswith(f"{total:,}")
    assert "branches" in out and "classifier" in out
    assert "mfcc: mfcc, 40 rows at 100 frames/s" in out  # the fast model's features
    assert "frozen front end" not in out


def test_model_summary_describes_the_accurate_model_by_default(capsys):
    assert main(["model", "summary"]) == 0
    out = capsys.readouterr().out
    assert "whisper: whisper, 1536 rows at 50 frames/s, branch layers x256" in out
    assert "frozen front end (pretrained, not trained):" in out
    assert "evaluation: 10 s windows every 5 s" in out


def test_model_summary_of_a_model_file(tmp_path, capsys):
    from emofuse.testing import save_tiny_pipeline

    path = save_tiny_pipeline(tmp_path / "m.pt", prosody=True)
    assert main(["model", "summary", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "prosody: prosody, 3 rows at 100 frames/s, branch conv1d x8" in out
    assert main(["model", "summary", "--model", str(path), "--config", str(path)]) == 1
    assert "not both" in _error_line(capsys)


def test_model_summary_with_config(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    assert main(["model", "summary", "--config", str(config)]) == 0
    branches = [branch_spec(feature_spec("mfcc", channels=16)),
                branch_spec(feature_spec("logmel", channels=8))]  # fmt: skip
    model = ModelConfig(d_model=16, n_heads=2, lstm_hidden=16)
    total = EmotionNet(model, branches).num_parameters()
    assert capsys.readouterr().out.strip().endswith(f"{total:,}")


def test_features_prints_shapes(tmp_path, capsys):
    clip = fake_corpora.write_audio(tmp_path / "clip.wav", seconds=0.25)
    assert main(["features", str(clip)]) == 0
    out = capsys.readouterr().out
    frames = 1 + 4000 // 160
    assert out.startswith(f"{clip}\n")
    assert f"mfcc     shape (40, {frames})" in out
    assert f"logmel   shape (64, {frames})" in out
    config = tmp_path / "three.yaml"
    config.write_text("features: [{kind: mfcc}, {kind: prosody, name: pros}]\n")
    assert main(["features", str(clip), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"pros     shape (3, {frames})" in out and "logmel" not in out


def test_features_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.wav"
    assert main(["features", str(missing)]) == 1
    line = _error_line(capsys)
    assert str(missing) in line and "no such file" in line


def test_features_not_audio(tmp_path, capsys):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    assert main(["features", str(text)]) == 1
    assert str(text) in _error_line(capsys)


def test_corpus_info_counts(tmp_path, capsys):
    root = fake_corpora.make_emodb(tmp_path / "emodb")
    assert main(["corpus", "info", "--corpus", "emodb", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("8 utterances\n")
    assert "speaker: 03 2, 08 2, 09 2, 10 2" in out
    assert "angry 2" in out and "neutral 1" in out and "bored 1" in out
    assert (
        main(["corpus", "info", "--corpus", "emodb", "--root", str(root), "--task", "emodb7"]) == 0
    )
    assert "task emodb7: 8 utterances kept" in capsys.readouterr().out


def test_corpus_info_missing_root(tmp_path, capsys):
    missing = tmp_path / "no-corpus"
    assert main(["corpus", "info", "--corpus", "emodb", "--root", str(missing)]) == 1
    line = _error_line(capsys)
    assert str(missing) in line and "does not exist" in line


def test_corpus_info_unknown_corpus(tmp_path, capsys):
    assert main(["corpus", "info", "--corpus", "emodbb", "--root", str(tmp_path)]) == 1
    assert "unknown corpus 'emodbb'" in _error_line(capsys)


@pytest.fixture
def emodb_tree(tmp_path):
    root = tmp_path / "emodb"
    for i, speaker in enumerate(("03", "08", "10")):
        for j, letter in enumerate("WLEAFTN"):
            stem = f"{speaker}a0{j}{letter}a"
            fake_corpora.write_audio(root / "wav" / f"{stem}.wav", seconds=0.5, seed=10 * i + j)
    return root


def test_crossval_writes_summary(tmp_path, emodb_tree, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["crossval", "--config", str(config), "--corpus", "emodb", "--root", str(emodb_tree),
            "--epochs", "1", "--folds", "0", "--cache", str(cache), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert f"{out}/summary.md" in stdout and "1/3 folds" in stdout
    assert "speaker-independent" in (out / "summary.md").read_text()
    assert (out / "fold_00.json").is_file() and not (out / "fold_01.json").exists()
    record = json.loads((out / "fold_00.json").read_text())
    assert len(record["history"]) == 1  # --epochs overrides the file's 5
    assert list(cache.rglob("*.npy")) and not (tmp_path / "env-cache").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--epochs", "0"], ["train.epochs"]),
        (["--folds", "0,x"], ["--folds", "0,x"]),
        (["--folds", "9"], ["out of range"]),
        (["--protocol", "bogus"], ["unknown protocol 'bogus'"]),
    ],
)
def test_crossval_user_errors(tmp_path, emodb_tree, capsys, extra, words):
    argv = ["crossval", "--corpus", "emodb", "--root", str(emodb_tree), "--out",
            str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), *extra]  # fmt: skip
    assert main(argv) == 1
    line = _error_line(capsys)
    for word in words:
        assert word in line


def test_crossval_needs_a_corpus(tmp_path, capsys):
    assert main(["crossval", "--out", str(tmp_path / "out")]) == 1
    assert "no corpus configured" in _error_line(capsys)
    assert main(["crossval", "--corpus", "emodb", "--out", str(tmp_path / "out")]) == 1
    assert "--corpus needs --root" in _error_line(capsys)


@pytest.mark.parametrize(
    "text, words",
    [(None, ["no such config file"]), ("train: {epochs: 3\n", ["not valid YAML"]),
     ("trian: {}\n", ["unknown key(s) trian"])],
)  # fmt: skip
def test_bad_config_file(tmp_path, capsys, text, words):
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    assert main(["model", "summary", "--config", str(path)]) == 1
    line = _error_line(capsys)
    assert str(path) in line
    for word in words:
        assert word in line


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_version_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "emofuse.cli", "--version"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"emofuse {__version__}"
