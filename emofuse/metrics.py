"""Classification metrics over integer class indices (pure numpy).

- WA (weighted accuracy): overall accuracy.
- UA (unweighted accuracy): mean recall over the classes present in ``y_true``; a class that is
  only predicted adds no recall of 0 (a test speaker may lack classes).
  Equals scikit-learn's ``recall_score(y_true, y_pred, labels=np.unique(y_true),
  average="macro")``.
- Macro-F1: mean F1 over the classes present in ``y_true`` or ``y_pred`` (a class only predicted
  scores F1 0, a class never predicted scores F1 0). Equals scikit-learn's
  ``f1_score(y_true, y_pred, average="macro")`` with its default ``labels``.
- Max share: the share of the answers given to the most-given label (a model facing unseen
  audio tends to pour it into one class).
- ECE (expected calibration error): over equal-width bins of confidence (the top probability),
  the answer-weighted mean gap between accuracy and mean confidence.
"""

from __future__ import annotations

import numpy as np


def _check(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both as 1-D integer arrays of one non-zero length, within ``0..n_classes-1`` if given."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a 1-D integer array, got shape {y.shape} {y.dtype}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} != {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("metrics of an empty set of predictions are undefined")
    if n_classes is not None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be positive, got {n_classes}")
        for name, y in (("y_true", y_true), ("y_pred", y_pred)):
            if y.min() < 0 or y.max() >= n_classes:
                raise ValueError(
                    f"{name} has values outside 0..{n_classes - 1}: {y.min()}..{y.max()}"
                )
    return y_true, y_pred


def weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions.

    >>> weighted_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1]))
    0.6666666666666666
    """
    y_true, y_pred = _check(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def unweighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y_true``.

    >>> unweighted_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 2, 1]))
    0.8333333333333333
    """
    y_true, y_pred = _check(y_true, y_pred)
    classes = np.unique(y_true)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in classes]
    return float(np.mean(recalls))


def max_share(y_pred: np.ndarray) -> float:
    """Share of the predictions given to the most frequent predicted class.

    >>> max_share(np.array([2, 2, 1, 2]))
    0.75
    """
    y_pred = np.asarray(y_pred)
    if y_pred.size == 0:
        raise ValueError("the share of an empty set of predictions is undefined")
    return float(np.unique(y_pred, return_counts=True)[1].max() / y_pred.size)


def expected_calibration_error(
    probabilities: np.ndarray, y_true: np.ndarray, bins: int = 15
) -> float:
    """ECE of class ``probabilities`` (N, C) against ``y_true`` (N,), ``bins`` equal-width bins
    of the top probability.

    >>> probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    >>> round(expected_calibration_error(probs, np.array([0, 1, 0, 1])), 3)
    0.4
    """
    probabilities, y_true = np.asarray(probabilities), np.asarray(y_true)
    if probabilities.ndim != 2 or len(probabilities) != len(y_true) or not len(y_true):
        raise ValueError(f"need probabilities (N, C) and N labels, got {probabilities.shape} "
                         f"and {y_true.shape}")  # fmt: skip
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == y_true
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    gap = 0.0
    for b in np.unique(which):
        inside = which == b
        gap += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(gap)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over the classes present in ``y_true`` or ``y_pred``.

    >>> macro_f1(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]))
    1.0
    """
    y_true, y_pred = _check(y_true, y_pred)
    classes = np.union1d(y_true, y_pred)
    scores = []
    for c in classes:
        tp = np.sum((y_true == c) & (y_pred == c))
        denom = np.sum(y_true == c) + np.sum(y_pred == c)  # 2 tp + fp + fn
        scores.append(2 * tp / denom)
    return float(np.mean(scores))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``(n_classes, n_classes)``: row = true class, column = predicted class.

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 3)
    array([[1, 0, 0],
           [1, 1, 0],
           [0, 0, 0]])
    """
    y_true, y_pred = _check(y_true, y_pred, n_classes)
    flat = y_true.astype(np.int64) * n_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def summarize(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float | int]:
    """``{"wa", "ua", "macro_f1", "n"}``; checks that the indices are below ``n_classes``.

    >>> summarize(np.array([0, 1]), np.array([0, 1]), 2)
    {'wa': 1.0, 'ua': 1.0, 'macro_f1': 1.0, 'n': 2}
    """
    _check(y_true, y_pred, n_classes)
    return {
        "wa": weighted_accuracy(y_true, y_pred),
        "ua": unweighted_accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "n": len(y_true),
    }
