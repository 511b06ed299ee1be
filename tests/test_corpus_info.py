"""``emofuse corpus info``: counts after the label task (default or ``--task``), and
``model summary`` of the bundled models."""

from __future__ import annotations

import warnings

import fake_corpora
import pytest

from emofuse.cli import main
from emofuse.corpora import CorpusWarning


@pytest.fixture
def iemocap_root(tmp_path):
    return fake_corpora.make_iemocap(tmp_path / "iemocap")


def _info(capsys, *argv: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)  # the fake tree's label without audio
        assert main(["corpus", "info", *argv]) == 0
    return capsys.readouterr().out


def test_merged_class_and_speaker_counts(iemocap_root, capsys):
    out = _info(capsys, "--corpus", "iemocap", "--root", str(iemocap_root), "--task", "iemocap4")
    raw, task = out.split("\ntask iemocap4: ")
    # Before the task: hap and exc apart, the unlabelled codes by name.
    assert "excited 5, happy 5" in raw and "<none:fru> 5" in raw
    # Per session: neu, hap+exc, ang, sad; session 1 also has one scripted sad turn (1F).
    assert task.startswith("26 utterances kept\n")
    assert "class: neutral 5, happy 10, angry 5, sad 6\n" in task
    assert "merged: excited->happy 5\n" in task
    assert "speaker: 1F 4, 1M 2, 2F 3, 2M 2, 3F 3, 3M 2, 4F 3, 4M 2, 5F 3, 5M 2\n" in task
    assert "session: 1 6, 2 5, 3 5, 4 5, 5 5\n" in task
    assert "left out iemocap:fru: 5" in task and "left out iemocap:xxx: 5" in task


def test_default_task_without_task_option(iemocap_root, capsys):
    root = str(iemocap_root)
    out = _info(capsys, "--corpus", "iemocap", "--root", root)
    assert "task iemocap4: 26 utterances kept" in out and "happy 10" in out
    assert "default task of iemocap" in out
    explicit = _info(capsys, "--corpus", "iemocap", "--root", root, "--task", "iemocap4")
    assert out.startswith(explicit)


def test_other_task_and_corpus_without_sessions(tmp_path, capsys):
    root = fake_corpora.make_emodb(tmp_path / "emodb")
    out = _info(capsys, "--corpus", "emodb", "--root", str(root), "--task", "emovo7")
    assert "task emovo7: 7 utterances kept" in out and "left out bored: 1" in out
    assert "session" not in out  # EmoDB has no sessions


def test_generic_corpus_has_no_default_task(tmp_path, capsys):
    root = fake_corpora.make_generic_folder(tmp_path / "generic")
    out = _info(capsys, "--corpus", "generic", "--root", str(root))
    assert "no default label task" in out and "utterances kept" not in out


def test_model_summary_default_and_fast_differ(capsys):
    from emofuse.pipeline import load_model

    assert main(["model", "summary"]) == 0
    default = capsys.readouterr().out
    assert main(["model", "summary", "--model", "fast"]) == 0
    fast = capsys.readouterr().out
    assert default != fast
    assert "whisper" in default and "whisper" not in fast
    for out, model in ((default, None), (fast, "fast")):
        labels = load_model(model).labels
        assert f"labels: {', '.join(labels)}\n" in out
