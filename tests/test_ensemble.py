"""Ensembles of finished cross-validation runs: posterior averaging, checks, outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.cli import main
from emofuse.experiments.ensemble import ensemble_crossval
from emofuse.experiments.records import RecordError, load_run, read_record
from emofuse.files import write_json

LABELS = ["anger", "neutral"]
# Two folds, four test utterances each: two per class.
TRUE = [0, 0, 1, 1]


def _posteriors(right_on: int, confident: float = 0.9, doubtful: float = 0.6) -> list[list[float]]:
    """Confidently right on class ``right_on``, narrowly wrong on the other class."""
    rows = []
    for y in TRUE:
        p = confident if y == right_on else 1 - doubtful
        rows.append([p, 1 - p] if y == 0 else [1 - p, p])
    return rows


def _write_run(folder, posteriors, *, system="emofuse", seed=0, corpus="emodb", speakers=None):
    """A complete run folder in run_crossval's format, 2 folds with the given posteriors."""
    folder.mkdir(parents=True)
    speakers = speakers or [["emodb:03"], ["emodb:08"]]
    for fold in range(2):
        predicted = np.argmax(posteriors, axis=1)
        recall = [np.mean(predicted[np.array(TRUE) == c] == c) for c in (0, 1)]
        write_json(
            {
                "fold": fold,
                "system": system,
                "name": f"speaker-{fold}",
                "description": "d",
                "speaker_overlap": False,
                "test_speakers": speakers[fold],
                "n_test": 4,
                "wa": float(np.mean(predicted == TRUE)),
                "ua": float(np.mean(recall)),
                "macro_f1": 0.0,
                "confusion": [[0, 0], [0, 0]],
                "best_epoch": 1,
                "val_ua": 0.5,
                "train_seconds": 10.0,
                "predictions": [
                    {"id": f"u{fold}{i}", "label": y, "posteriors": p}
                    for i, (y, p) in enumerate(zip(TRUE, posteriors, strict=True))
                ],
            },  # fmt: skip
            folder / f"fold_{fold:02d}.json",
        )
    summary = {
        "system": system, "corpus": corpus, "task": "t", "labels": LABELS,
        "protocol": "loso-speaker", "n_folds": 2, "seed": seed, "mean": {"ua": 0.5},
    }  # fmt: skip
    write_json(summary, folder / "summary.json")
    return folder


@pytest.fixture
def two_runs(tmp_path):
    a = _write_run(tmp_path / "a", _posteriors(right_on=0))
    b = _write_run(tmp_path / "b", _posteriors(right_on=1), system="egemaps-svm")
    return a, b


def test_complementary_runs_average_to_a_better_ensemble(two_runs, tmp_path):
    a, b = two_runs
    summary = ensemble_crossval([a, b], tmp_path / "ens")
    assert summary["member_mean_ua"] == [0.5, 0.5]
    assert summary["mean"]["ua"] == 1.0 and summary["mean"]["wa"] == 1.0
    fold = json.loads((tmp_path / "ens" / "fold_00.json").read_text())
    expected = (np.array(_posteriors(0)) + np.array(_posteriors(1))) / 2
    got = np.array([p["posteriors"] for p in fold["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert fold["system"] == "ensemble" and fold["member_ua"] == [0.5, 0.5]
    assert [m["system"] for m in summary["members"]] == ["emofuse", "egemaps-svm"]
    for name in ("summary.json", "summary.md", "confusion.png", "fold_01.json"):
        assert (tmp_path / "ens" / name).exists()
    # The ensemble folder is itself a complete run: it can join another ensemble.
    assert load_run(tmp_path / "ens")[0]["n_folds"] == 2


def test_weights_are_normalised_and_a_zero_weight_drops_a_run(two_runs, tmp_path):
    a, b = two_runs
    only_a = ensemble_crossval([a, b], tmp_path / "ens", weights=[3, 0])
    assert only_a["mean"]["ua"] == 0.5
    assert [m["weight"] for m in only_a["members"]] == [1.0, 0.0]


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]])
def test_bad_weights_are_refused(two_runs, tmp_path, weights):
    with pytest.raises(ValueError, match="weights must be 2 non-negative"):
        ensemble_crossval(list(two_runs), tmp_path / "ens", weights=weights)


def test_runs_on_other_folds_are_refused(two_runs, tmp_path):
    a, _ = two_runs
    other = _write_run(tmp_path / "c", _posteriors(1), speakers=[["emodb:03"], ["emodb:09"]])
    with pytest.raises(ValueError, match="fold 1: .*c was tested on"):
        ensemble_crossval([a, other], tmp_path / "ens")
    emovo = _write_run(tmp_path / "d", _posteriors(1), corpus="emovo")
    with pytest.raises(ValueError, match="has corpus 'emovo'"):
        ensemble_crossval([a, emovo], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()


def test_incomplete_runs_and_bad_lists_are_refused(two_runs, tmp_path):
    a, b = two_runs
    (b / "fold_01.json").unlink()
    with pytest.raises(ValueError, match=f"{b} is not a complete cross-validation run"):
        ensemble_crossval([a, b], tmp_path / "ens")
    with pytest.raises(ValueError, match="at least 2 runs"):
        ensemble_crossval([a], tmp_path / "ens")
    with pytest.raises(ValueError, match="given twice"):
        ensemble_crossval([a, a], tmp_path / "ens")


def test_an_output_folder_of_other_results_is_kept(two_runs, tmp_path):
    a, b = two_runs
    ensemble_crossval([a, b], tmp_path / "ens")
    ensemble_crossval([a, b], tmp_path / "ens")  # the same ensemble again: rewritten
    before = (tmp_path / "ens" / "summary.json").read_text()
    with pytest.raises(ValueError, match="already holds other results"):
        ensemble_crossval([a, b], tmp_path / "ens", weights=[2, 1])
    with pytest.raises(ValueError, match=r"already holds other results \(emofuse"):
        ensemble_crossval([a, b], a)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "fold_00.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds fold results"):
        ensemble_crossval([a, b], partial)
    assert (partial / "fold_00.json").read_text() == "{}"
    assert (tmp_path / "ens" / "summary.json").read_text() == before


def test_cli_ensemble(two_runs, tmp_path, capsys):
    a, b = two_runs
    assert main(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]) == 0
    out = capsys.readouterr().out
    assert "runs UA 50.0 / 50.0 -> ensemble" in out and "UA 100.0 +- 0.0" in out
    text = (tmp_path / "ens" / "summary.md").read_text()
    assert "| **mean +- std** | | | 50.0 / 50.0 | **100.0 +- 0.0** | **100.0 +- 0.0** |" in text
    assert main(["ensemble", str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "missing is not a complete cross-validation run" in capsys.readouterr().err


def test_an_svm_run_joins_with_its_calibrated_probabilities(tmp_path):
    """The SVM's posteriors are one-hot decisions; its stored probabilities are averaged."""
    a = _write_run(tmp_path / "a", _posteriors(right_on=0))
    votes = [[1.0, 0.0]] * 4  # decides "anger" everywhere
    b = _write_run(tmp_path / "b", votes, system="egemaps-svm")
    for path in b.glob("fold_*.json"):
        record = json.loads(path.read_text())
        for p, probs in zip(record["predictions"], _posteriors(right_on=1), strict=True):
            p["probabilities"] = probs
        write_json(record, path)
    summary = ensemble_crossval([a, b], tmp_path / "ens")
    assert summary["mean"]["ua"] == 1.0  # with the one-hot votes it would be 0.5


COMMITTED = Path(__file__).parent.parent / "results"


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="needs the committed results/")
def test_committed_fold_files_read_and_write_back_unchanged():
    paths = sorted(COMMITTED.rglob("fold_*.json"))
    assert paths
    for path in paths:
        data = json.loads(path.read_text())
        again = read_record(path).to_json()
        if "system" not in data:  # written before systems existed: the network's
            assert again.pop("system") == "emofuse"
        assert list(again.items()) == list(data.items()), path


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="needs the committed results/")
def test_an_ensemble_of_committed_runs_reproduces_its_committed_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(COMMITTED.parent)  # member runs are recorded as given
    expected = json.loads((COMMITTED / "accuracy" / "emodb-hybrid" / "summary.json").read_text())
    summary = ensemble_crossval(["results/emodb", "results/emodb-egemaps-svm"], tmp_path)
    for values in (summary, expected):
        values.pop("machine")
    assert json.loads(json.dumps(summary)) == expected


def test_a_record_with_unknown_keys_is_refused(two_runs):
    a, _ = two_runs
    path = a / "fold_00.json"
    write_json({**json.loads(path.read_text()), "bogus": 1}, path)
    with pytest.raises(RecordError, match=r"fold_00.json: not a fold record.*'bogus'"):
        read_record(path)
