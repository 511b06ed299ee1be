"""Fold results as typed records, and reading them back from a run folder.

A :class:`FoldRecord` is one fold's ``fold_XX.json``: which speakers trained, validated and
tested, the metrics, the confusion matrix, how training went and one :class:`Prediction` per
test utterance. Its JSON keys and their order are those every emofuse version wrote; keys a
kind of record lacks stay absent (an ensemble has no ``train_speakers`` or ``history``, only
the SVM has ``svm_params``), so reading and writing a file gives the same file back.

>>> record = FoldRecord(fold=0, system="emofuse", name="speaker-03", description="d",
...     speaker_overlap=False, test_speakers=["emodb:03"], n_test=1, wa=1.0, ua=1.0,
...     macro_f1=1.0, confusion=[[1, 0], [0, 0]], best_epoch=None, val_ua=None,
...     train_seconds=0.0, predictions=[Prediction("03a01Wa", 0, [0.9, 0.1])])
>>> data = record.to_json()
>>> list(data)[-5:], "history" in data
(['confusion', 'best_epoch', 'val_ua', 'train_seconds', 'predictions'], False)
>>> FoldRecord.from_json(data) == record
True
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from emofuse.files import write_json

__all__ = [
    "RecordError",
    "Prediction",
    "FoldRecord",
    "fold_path",
    "read_record",
    "write_record",
    "read_records",
    "load_run",
]

# Every key of a fold file, in the order written; each is an attribute of FoldRecord.
KEY_ORDER = (
    "fold", "system", "name", "description", "speaker_overlap", "train_speakers",
    "val_speakers", "test_speakers", "n_train", "n_val", "n_test", "wa", "ua", "macro_f1",
    "confusion", "member_ua", "best_epoch", "val_ua", "train_seconds", "history", "svm_params",
    "chosen_params", "inner_cv_ua", "predictions",
)  # fmt: skip
# Keys written even when their value is None (JSON null).
NULLABLE = ("best_epoch", "val_ua")
# Records of runs before systems existed have no "system": they are the network's.
DEFAULT_SYSTEM = "emofuse"


class RecordError(ValueError):
    """A fold or run file that cannot be read as a result record; the message names it."""


@dataclass
class Prediction:
    """One test utterance: its class index and the system's class posteriors (C,), rounded to 5
    decimals; an SVM's posteriors are one-hot decisions and its Platt-scaled ``probabilities``
    ride along (None when not stored)."""

    id: str
    label: int
    posteriors: list[float]
    probabilities: list[float] | None = None

    @property
    def scores(self) -> list[float]:
        """Class probabilities for averaging: the ``probabilities`` when stored, else the
        ``posteriors``."""
        return self.posteriors if self.probabilities is None else self.probabilities

    def to_json(self) -> dict[str, Any]:
        data = {"id": self.id, "label": self.label, "posteriors": self.posteriors}
        if self.probabilities is not None:
            data["probabilities"] = self.probabilities
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        return cls(data["id"], data["label"], data["posteriors"], data.get("probabilities"))


@dataclass
class FoldRecord:
    """The result of one fold of one system (``fold_XX.json``).

    Optional attributes are None where the kind of record has no such key: ``train_speakers``,
    ``val_speakers``, ``n_train``, ``n_val`` and ``history`` (not in ensembles), ``member_ua``
    (ensembles only: each member's UA), ``svm_params`` (SVM only), ``chosen_params`` (other
    systems' hyper-parameters chosen on training speakers, e.g. the encoder layer) and
    ``inner_cv_ua`` (the inner cross-validation UA of that choice).
    ``best_epoch`` and ``val_ua`` are always written, null for systems without them.
    """

    fold: int
    system: str
    name: str
    description: str
    speaker_overlap: bool
    test_speakers: list[str]
    n_test: int
    wa: float
    ua: float
    macro_f1: float
    confusion: list[list[int]]
    best_epoch: int | None
    val_ua: float | None
    train_seconds: float
    predictions: list[Prediction]
    train_speakers: list[str] | None = None
    val_speakers: list[str] | None = None
    n_train: int | None = None
    n_val: int | None = None
    history: list[dict] | None = None
    member_ua: list[float] | None = None
    svm_params: dict[str, Any] | None = None
    chosen_params: dict[str, Any] | None = None
    inner_cv_ua: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The fold file's mapping: keys in :data:`KEY_ORDER`, absent ones left out."""
        data = {}
        for key in KEY_ORDER:
            value = getattr(self, key)
            if value is not None or key in NULLABLE:
                data[key] = value
        data["predictions"] = [p.to_json() for p in self.predictions]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "fold record") -> FoldRecord:
        """Read a fold file's mapping; RecordError names ``where`` and the bad keys."""
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - set(KEY_ORDER)
        required = {f.name for f in fields(cls) if f.default is not None} - {"system"}
        missing = required - set(data)
        if unknown or missing:
            raise RecordError(
                f"{where}: not a fold record (unknown keys: {sorted(unknown)}, missing keys: "
                f"{sorted(missing)})"
            )
        values = {**data, "system": data.get("system", DEFAULT_SYSTEM)}
        try:
            values["predictions"] = [Prediction.from_json(p) for p in data["predictions"]]
        except (KeyError, TypeError) as error:
            raise RecordError(f"{where}: a prediction lacks {error}") from None
        return cls(**values)


def fold_path(folder: str | os.PathLike, index: int) -> Path:
    """``folder/fold_XX.json`` of fold ``index``."""
    return Path(folder) / f"fold_{index:02d}.json"


def read_record(path: str | os.PathLike) -> FoldRecord:
    """One fold file; RecordError (a ValueError) when it is not valid JSON or not a record."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not valid JSON ({error})") from None
    return FoldRecord.from_json(data, where=str(path))


def write_record(record: FoldRecord, folder: str | os.PathLike) -> Path:
    """Write ``record`` atomically as ``folder/fold_XX.json``; returns the path."""
    path = fold_path(folder, record.fold)
    write_json(record.to_json(), path)
    return path


def read_records(folder: str | os.PathLike, n_folds: int) -> list[FoldRecord]:
    """The finished folds among ``0 .. n_folds - 1`` of a (possibly partial) run, in order."""
    paths = [fold_path(folder, i) for i in range(n_folds)]
    return [read_record(p) for p in paths if p.exists()]


def load_run(folder: str | os.PathLike) -> tuple[dict, list[FoldRecord]]:
    """The summary and every fold record (in fold order) of a complete cross-validation run."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        records = [read_record(fold_path(folder, i)) for i in range(summary["n_folds"])]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RecordError(
            f"{folder} is not a complete cross-validation run (summary.json and every "
            f"fold_XX.json): {error}"
        ) from None
    return summary, records
