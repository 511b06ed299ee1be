"""Scores: a fold's posteriors -> its record, and fold records -> a run's summary statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from emofuse.experiments.records import FoldRecord, Prediction
from emofuse.metrics import confusion_matrix, summarize

if TYPE_CHECKING:
    from emofuse.corpora import Utterance
    from emofuse.experiments.loading import Experiment

__all__ = ["SUMMARY_FOLD_KEYS", "speaker_names", "rounded", "score_posteriors", "scored_record",
           "summarize_folds"]  # fmt: skip

# The per-fold entries of summary.json.
SUMMARY_FOLD_KEYS = ("fold", "name", "test_speakers", "n_test", "wa", "ua", "macro_f1",
                     "best_epoch", "val_ua", "train_seconds")  # fmt: skip


def speaker_names(utts: Sequence[Utterance]) -> list[str]:
    """Sorted ``corpus:speaker`` names of ``utts``, as written in result files."""
    return sorted({f"{u.corpus}:{u.speaker}" for u in utts})


def rounded(probabilities: Sequence[float]) -> list[float]:
    """Class probabilities as stored in result files (5 decimals)."""
    return [round(float(p), 5) for p in probabilities]


def score_posteriors(
    posteriors: np.ndarray, labels: np.ndarray, ids: Sequence[str], n_classes: int
) -> tuple[dict[str, Any], list[Prediction]]:
    """Metrics of the argmax decisions of ``posteriors`` (N, C) against ``labels`` (N,): WA, UA,
    macro-F1 and the confusion matrix (C, C) as lists; and one prediction per utterance."""
    predicted = posteriors.argmax(axis=1)
    metrics = summarize(labels, predicted, n_classes)
    scores = {k: metrics[k] for k in ("wa", "ua", "macro_f1")}
    scores["confusion"] = confusion_matrix(labels, predicted, n_classes).tolist()
    predictions = [
        Prediction(uid, y, rounded(probs))
        for uid, y, probs in zip(ids, np.asarray(labels).tolist(), posteriors, strict=True)
    ]
    return scores, predictions


def scored_record(
    experiment: Experiment,
    index: int,
    system: str,
    posteriors: np.ndarray,
    labels: np.ndarray,
    ids: Sequence[str],
    **details: Any,
) -> FoldRecord:
    """The record of fold ``index`` of ``experiment`` tested by ``system``: speakers, metrics of
    ``posteriors`` (N, C) against ``labels`` (N,), predictions and ``details`` (further
    :class:`FoldRecord` attributes: best_epoch, val_ua, train_seconds, history, ...)."""
    fold = experiment.folds[index]
    train = fold.train + experiment.extra_train
    scores, predictions = score_posteriors(posteriors, labels, ids, experiment.task.num_classes)
    return FoldRecord(
        fold=index, system=system, name=fold.name, description=fold.description,
        speaker_overlap=fold.speaker_overlap, train_speakers=speaker_names(train),
        val_speakers=speaker_names(fold.val), test_speakers=speaker_names(fold.test),
        n_train=len(train), n_val=len(fold.val), n_test=len(fold.test), **scores,
        predictions=predictions, **details,
    )  # fmt: skip


def summarize_folds(records: Sequence[FoldRecord], labels: Sequence[str]) -> dict[str, Any]:
    """Per-fold metrics, their mean +- std, pooled metrics and the summed confusion matrix."""
    table = {k: np.array([getattr(r, k) for r in records]) for k in ("wa", "ua", "macro_f1")}
    y_true = np.array([p.label for r in records for p in r.predictions])
    y_pred = np.array([int(np.argmax(p.posteriors)) for r in records for p in r.predictions])
    return {
        "folds": [{k: getattr(r, k) for k in SUMMARY_FOLD_KEYS} for r in records],
        "mean": {k: float(v.mean()) for k, v in table.items()},
        "std": {k: float(v.std()) for k, v in table.items()},
        "pooled": summarize(y_true, y_pred, len(labels)),
        "confusion": confusion_matrix(y_true, y_pred, len(labels)).tolist(),
        "speaker_overlap": any(r.speaker_overlap for r in records),
        "train_seconds": float(sum(r.train_seconds for r in records)),
    }
