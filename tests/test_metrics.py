"""Metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from emofuse.metrics import (
    confusion_matrix,
    macro_f1,
    summarize,
    unweighted_accuracy,
    weighted_accuracy,
)

CASES = {
    "random": (
        np.random.default_rng(0).integers(0, 5, 200),
        np.random.default_rng(1).integers(0, 5, 200),
    ),
    "perfect": (np.array([0, 1, 2, 2]), np.array([0, 1, 2, 2])),
    # class 3 absent from y_true but predicted; class 2 present but never predicted
    "absent-but-predicted": (np.array([0, 0, 1, 1, 2, 2]), np.array([0, 3, 1, 1, 3, 0])),
    "one-class": (np.array([1, 1, 1]), np.array([1, 0, 1])),
}


@pytest.mark.parametrize("case", CASES)
def test_against_sklearn(case):
    y_true, y_pred = CASES[case]
    present = np.unique(y_true)
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert unweighted_accuracy(y_true, y_pred) == pytest.approx(
        skm.recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    )
    union = np.union1d(y_true, y_pred)
    expected_f1 = skm.f1_score(y_true, y_pred, labels=union, average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred) == pytest.approx(expected_f1)
    assert macro_f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    n = 5
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, n), skm.confusion_matrix(y_true, y_pred, labels=range(n))
    )


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_absent_class_does_not_add_zero_recall():
    y_true, y_pred = CASES["absent-but-predicted"]
    # recalls: class 0 1/2, class 1 2/2, class 2 0/2 -> 0.5; class 3 (only predicted) not counted
    assert unweighted_accuracy(y_true, y_pred) == pytest.approx(0.5)
    assert unweighted_accuracy(y_true, y_pred) == pytest.approx(
        skm.balanced_accuracy_score(y_true, y_pred)
    )
    # sklearn's recall over all 4 labels would add class 3's zero recall
    assert skm.recall_score(
        y_true, y_pred, labels=[0, 1, 2, 3], average="macro", zero_division=0
    ) == pytest.approx(0.375)


def test_summarize():
    y_true, y_pred = CASES["absent-but-predicted"]
    out = summarize(y_true, y_pred, 4)
    assert set(out) == {"wa", "ua", "macro_f1", "n"}
    assert out["n"] == 6 and out["wa"] == pytest.approx(0.5) and out["ua"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.array([0, 1]), np.array([0]), "differ in length"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer"),
        (np.zeros((2, 2), int), np.zeros((2, 2), int), "1-D"),
        (np.array([], int), np.array([], int), "empty"),
        (np.array([0, 4]), np.array([0, 1]), r"outside 0\.\.3"),
        (np.array([0, 1]), np.array([-1, 1]), r"y_pred has values outside"),
    ],
)
def test_bad_inputs(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        summarize(y_true, y_pred, 4)
