"""Ensembles of finished cross-validation runs: weighted means of their posteriors, fold by fold.

``ensemble_crossval`` reads the fold records of several complete runs of
:func:`emofuse.experiments.crossval.run_crossval` on the same corpus, task and folds (seeds of
one recipe, or the network with the eGeMAPS + SVM baseline), averages each test utterance's
posteriors (the SVM's calibrated probabilities) with fixed weights, and writes the ensemble's
fold records, ``summary.json``, ``summary.md`` and ``confusion.png`` into ``out_dir``, in the
same format as a single run. Nothing is trained and nothing is chosen on test folds: the
weights are given up front (equal by default).

A fold's test speakers and utterances must be identical in every member; runs differing in
seed share their test folds (only validation speakers move with the seed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emofuse.experiments.machine import machine_description
from emofuse.experiments.records import DEFAULT_SYSTEM, FoldRecord, load_run, write_record
from emofuse.experiments.report import ensemble_markdown, write_figures
from emofuse.experiments.scoring import score_posteriors, summarize_folds
from emofuse.files import write_json, write_text

__all__ = ["ensemble_crossval"]

SYSTEM = "ensemble"
_SHARED = ("corpus", "task", "labels", "protocol", "n_folds")

Run = tuple[dict, list[FoldRecord]]  # a run's summary and fold records


def _check_members(runs: dict[str, Run]) -> None:
    """Every run must share the corpus, task, folds, test speakers and test utterances."""
    (first, (summary0, records0)), *rest = runs.items()
    for name, (summary, records) in rest:
        for key in _SHARED:
            if summary.get(key) != summary0.get(key):
                raise ValueError(
                    f"{name} has {key} {summary.get(key)!r} but {first} has "
                    f"{summary0.get(key)!r}; an ensemble needs runs on the same folds"
                )
        for a, b in zip(records0, records, strict=True):
            utts_a = [(p.id, p.label) for p in a.predictions]
            utts_b = [(p.id, p.label) for p in b.predictions]
            if a.test_speakers != b.test_speakers or utts_a != utts_b:
                raise ValueError(
                    f"fold {a.fold}: {name} was tested on {b.test_speakers} ({b.n_test} "
                    f"utterances) but {first} on {a.test_speakers} ({a.n_test}); an ensemble "
                    "needs runs on the same folds"
                )


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    """``weights`` (default: equal) normalised to sum 1, shape (n,)."""
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            f"weights must be {n} non-negative numbers (one per run) with a positive sum, "
            f"got {list(weights) if weights is not None else None}"
        )
    return w / w.sum()


def _fold_record(
    fold: int, members: list[FoldRecord], weights: np.ndarray, n_classes: int
) -> FoldRecord:
    """The ensemble's record of one fold from the members' records of it."""
    first = members[0]
    posteriors = sum(
        w * np.array([p.scores for p in r.predictions])
        for w, r in zip(weights, members, strict=True)
    )  # (n_test, n_classes)
    labels = np.array([p.label for p in first.predictions])
    ids = [p.id for p in first.predictions]
    scores, predictions = score_posteriors(posteriors, labels, ids, n_classes)
    return FoldRecord(
        fold=fold, system=SYSTEM, name=first.name, description=first.description,
        speaker_overlap=any(r.speaker_overlap for r in members),
        test_speakers=first.test_speakers, n_test=first.n_test, **scores,
        member_ua=[r.ua for r in members], best_epoch=None, val_ua=None,
        train_seconds=float(sum(r.train_seconds for r in members)), predictions=predictions,
    )  # fmt: skip


def _check_out_dir(out_dir: Path, members: list[dict]) -> None:
    """``out_dir`` may hold nothing but an earlier ensemble of the same members."""
    previous = out_dir / "summary.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        if old.get("system") != SYSTEM or old.get("members") != members:
            raise ValueError(
                f"{out_dir} already holds other results ({old.get('system')}, "
                f"{old.get('members')}); use a new output folder"
            )
    elif any(out_dir.glob("fold_*.json")):
        raise ValueError(f"{out_dir} already holds fold results; use a new output folder")


def ensemble_crossval(
    runs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    weights: Sequence[float] | None = None,
) -> dict:
    """Average the posteriors of complete runs ``runs`` fold by fold; write and return a summary.

    ``weights`` (one per run, normalised to sum 1) default to equal. ``out_dir`` may already
    hold an ensemble of the same runs and weights (it is rewritten), but nothing else.
    """
    if len(runs) < 2:
        raise ValueError(f"an ensemble needs at least 2 runs, got {len(runs)}")
    names = [str(r) for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"the same run is given twice: {names}")
    w = _weights(weights, len(runs))
    loaded = {name: load_run(name) for name in names}
    _check_members(loaded)
    out_dir = Path(out_dir)
    members = [
        {"run": name, "system": s.get("system", DEFAULT_SYSTEM), "seed": s.get("seed"),
         "weight": wi}
        for (name, (s, _)), wi in zip(loaded.items(), w.tolist(), strict=True)
    ]  # fmt: skip
    _check_out_dir(out_dir, members)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary0 = next(iter(loaded.values()))[0]
    records = [
        _fold_record(i, [recs[i] for _, recs in loaded.values()], w, len(summary0["labels"]))
        for i in range(summary0["n_folds"])
    ]
    for record in records:
        write_record(record, out_dir)
    summary = {
        "system": SYSTEM,
        "members": members,
        **{k: summary0[k] for k in _SHARED},
        "machine": machine_description(),
        "member_ua": [r.member_ua for r in records],
        "member_mean_ua": [s["mean"]["ua"] for s, _ in loaded.values()],
        **summarize_folds(records, summary0["labels"]),
    }
    write_json(summary, out_dir / "summary.json")
    write_text(out_dir / "summary.md", ensemble_markdown(summary))
    write_figures(summary, records, out_dir)
    return summary
