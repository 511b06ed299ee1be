"""Named subsets of a corpus (ASED's common sentences) rescored from a run's test predictions."""

from __future__ import annotations

import fake_corpora
import pytest

from emofuse.config import CorpusSpec
from emofuse.corpora import CorpusWarning
from emofuse.experiments.records import FoldRecord, Prediction
from emofuse.experiments.report import table_markdown
from emofuse.experiments.subsets import subset_cell, subset_ids


def _record(fold: int, predictions: list[tuple[str, int, int]]) -> FoldRecord:
    """A fold record whose predictions are (id, true class, predicted class) of 2 classes."""
    preds = [Prediction(i, label, [1.0 if k == guess else 0.0 for k in range(2)])
             for i, label, guess in predictions]  # fmt: skip
    return FoldRecord(fold, "x", f"fold-{fold}", "", False, ["s"], len(preds), 0.0, 0.0, 0.0,
                      [[0, 0], [0, 0]], None, None, 0.0, preds)  # fmt: skip


def test_ased_common_sentences_are_sentences_01_and_02(tmp_path):
    root = fake_corpora.make_ased(tmp_path / "ased")
    with pytest.warns(CorpusWarning, match="h9-01-01-01-03"):
        ids = subset_ids(CorpusSpec("ased", str(root)))
    # the mislabelled h9 file is left out by the loader; S4-04 is sentence 04
    assert ids == {"common sentences": {"n1-01-01-01-01", "f1-01-02-01-01", "h7-02-01-02-02"}}


@pytest.mark.parametrize("name, root", [("emodb", "present"), ("ased", "missing")])
def test_no_subsets_without_a_definition_or_a_folder(name, root, tmp_path):
    folder = fake_corpora.make_emodb(tmp_path / "emodb") if root == "present" else tmp_path / "no"
    assert subset_ids(CorpusSpec(name, str(folder))) == {}


def test_subset_cell_scores_only_the_subset_per_fold():
    records = [
        _record(0, [("a", 0, 0), ("b", 1, 0), ("out", 1, 1)]),  # subset: recall 1 and 0
        _record(1, [("c", 0, 0), ("d", 1, 1)]),  # subset: both right
        _record(2, [("out2", 0, 1)]),  # no subset clip: not a fold of the cell
    ]
    cell = subset_cell(records, {"a", "b", "c", "d"})
    assert cell["n"] == 2 and cell["clips"] == 4
    assert cell["ua_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert cell["wa_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert subset_cell(records, {"nothing"}) is None


def test_the_table_shows_a_subsets_section_only_when_a_row_has_one():
    table = {
        "machine": "m", "runs_done": 1, "runs_total": 1, "complete": True, "seeds": [0],
        "corpora": {"ased": {"task": "ased5", "protocol": "p", "n_folds": 1,
                             "labels": ["a", "b"]}},
        "rows": [{"system": "whisper-lr", "model": None, "rtf": None, "train_seconds": 1.0,
                  "corpora": {"ased": {"ua_mean": 0.9, "ua_std": 0.0, "wa_mean": 0.9,
                                       "wa_std": 0.0, "n": 1, "train_seconds": 1.0,
                                       "params": None}},
                  "subsets": {"ased": {"common sentences": {
                      "ua_mean": 0.8, "ua_std": 0.1, "wa_mean": 0.75, "wa_std": 0.1, "n": 1,
                      "clips": 12}}}}],
        "rtf_timing": {"audio_seconds": 10, "threads": 1, "repeats": 3},
        "claims": [], "pooled": [], "missing_estimates": [],
    }  # fmt: skip
    text = table_markdown(table)
    assert "| whisper-lr | ased: common sentences | 80.0 +- 10.0 | 75.0 +- 10.0 | 12 |" in text
    table["rows"][0]["subsets"] = {}
    assert "Subsets" not in table_markdown(table)
