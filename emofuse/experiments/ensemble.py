"""Ensembles of finished cross-validation runs: weighted means of their posteriors, fold by fold.

``ensemble_crossval`` reads the ``fold_XX.json`` records of several complete runs of
:func:`emofuse.experiments.crossval.run_crossval` on the same corpus, task and folds (seeds of one recipe,
or the network with the eGeMAPS + SVM baseline), averages each test utterance's posteriors (the
SVM's calibrated probabilities) with fixed weights, and writes the ensemble's fold records,
``summary.json``, ``summary.md`` and ``confusion.png`` into ``out_dir``, in the same format as a
single run. Nothing is trained and
nothing is chosen on test folds: the weights are given up front (equal by default).

A fold's test speakers and utterances must be identical in every member; runs differing in
seed share their test folds (only validation speakers move with the seed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emofuse.experiments.crossval import machine_description, score_posteriors, summarize_folds, write_json

__all__ = ["load_run", "ensemble_crossval"]

SYSTEM = "ensemble"
_SHARED = ("corpus", "task", "labels", "protocol", "n_folds")


def load_run(folder: str | os.PathLike) -> tuple[dict, list[dict]]:
    """The summary and fold records (in fold order) of a complete cross-validation run."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        records = [
            json.loads((folder / f"fold_{i:02d}.json").read_text())
            for i in range(summary["n_folds"])
        ]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{folder} is not a complete cross-validation run (summary.json and every "
            f"fold_XX.json): {error}"
        ) from None
    return summary, records


def _check_members(runs: dict[str, tuple[dict, list[dict]]]) -> None:
    (first, (summary0, records0)), *rest = runs.items()
    for name, (summary, records) in rest:
        for key in _SHARED:
            if summary.get(key) != summary0.get(key):
                raise ValueError(
                    f"{name} has {key} {summary.get(key)!r} but {first} has "
                    f"{summary0.get(key)!r}; an ensemble needs runs on the same folds"
                )
        for a, b in zip(records0, records, strict=True):
            same_utts = [(p["id"], p["label"]) for p in a["predictions"]] == [
                (p["id"], p["label"]) for p in b["predictions"]
            ]
            if a["test_speakers"] != b["test_speakers"] or not same_utts:
                raise ValueError(
                    f"fold {a['fold']}: {name} was tested on {b['test_speakers']} "
                    f"({b['n_test']} utterances) but {first} on {a['test_speakers']} "
                    f"({a['n_test']}); an ensemble needs runs on the same folds"
                )


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            f"weights must be {n} non-negative numbers (one per run) with a positive sum, "
            f"got {list(weights) if weights is not None else None}"
        )
    return w / w.sum()


def _scores(prediction: dict) -> list[float]:
    """Class probabilities of one prediction: an SVM's calibrated ``probabilities`` when it
    stored them (its ``posteriors`` are one-hot decisions), else the ``posteriors``."""
    return prediction.get("probabilities", prediction["posteriors"])


def _fold_record(fold: int, members: list[dict], weights: np.ndarray, n_classes: int) -> dict:
    first = members[0]
    posteriors = sum(
        w * np.array([_scores(p) for p in r["predictions"]])
        for w, r in zip(weights, members, strict=True)
    )  # (n_test, n_classes)
    labels = np.array([p["label"] for p in first["predictions"]])
    ids = [p["id"] for p in first["predictions"]]
    scores, predictions = score_posteriors(posteriors, labels, ids, n_classes)
    return {
        "fold": fold,
        "system": SYSTEM,
        "name": first["name"],
        "description": first["description"],
        "speaker_overlap": any(r["speaker_overlap"] for r in members),
        "test_speakers": first["test_speakers"],
        "n_test": first["n_test"],
        **scores,
        "member_ua": [r["ua"] for r in members],
        "best_epoch": None,
        "val_ua": None,
        "train_seconds": float(sum(r["train_seconds"] for r in members)),
        "predictions": predictions,
    }


def _markdown(summary: dict) -> str:
    members = summary["members"]
    header = " / ".join(f"{i + 1}" for i in range(len(members)))
    lines = [
        f"# Ensemble of {len(members)} runs: {summary['corpus']}, task {summary['task']}",
        "",
        f"Protocol **{summary['protocol']}**, {summary['n_folds']} folds. Members (weight):",
        "",
        *(
            f"{i + 1}. `{m['run']}` ({m['system']}, seed {m['seed']}): {m['weight']:.3f}"
            for i, m in enumerate(members)
        ),
        "",
        f"| fold | test speakers | n | UA % of runs {header} | ensemble WA % | ensemble UA % |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for f, r in zip(summary["folds"], summary["member_ua"], strict=True):
        speakers = " ".join(s.split(":", 1)[1] for s in f["test_speakers"])
        each = " / ".join(f"{100 * u:.1f}" for u in r)
        lines.append(
            f"| {f['fold']} | {speakers} | {f['n_test']} | {each} | {100 * f['wa']:.1f} "
            f"| {100 * f['ua']:.1f} |"
        )
    m, s = summary["mean"], summary["std"]
    each = " / ".join(f"{100 * u:.1f}" for u in summary["member_mean_ua"])
    lines += [
        f"| **mean +- std** | | | {each} | **{100 * m['wa']:.1f} +- {100 * s['wa']:.1f}** "
        f"| **{100 * m['ua']:.1f} +- {100 * s['ua']:.1f}** |",
    ]
    return "\n".join(lines) + "\n"


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
        {"run": name, "system": s.get("system", "emofuse"), "seed": s.get("seed"), "weight": wi}
        for (name, (s, _)), wi in zip(loaded.items(), w.tolist(), strict=True)
    ]
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
    out_dir.mkdir(parents=True, exist_ok=True)

    summary0 = next(iter(loaded.values()))[0]
    n_classes = len(summary0["labels"])
    records = [
        _fold_record(i, [recs[i] for _, recs in loaded.values()], w, n_classes)
        for i in range(summary0["n_folds"])
    ]
    for record in records:
        write_json(record, out_dir / f"fold_{record['fold']:02d}.json")
    summary = {
        "system": SYSTEM,
        "members": members,
        **{k: summary0[k] for k in _SHARED},
        "machine": machine_description(),
        "member_ua": [r["member_ua"] for r in records],
        "member_mean_ua": [s["mean"]["ua"] for s, _ in loaded.values()],
        **summarize_folds(records, summary0["labels"]),
    }
    write_json(summary, previous)
    (out_dir / "summary.md").write_text(_markdown(summary))
    from emofuse.plots import plot_confusion

    plot_confusion(np.array(summary["confusion"]), summary0["labels"], out_dir / "confusion.png")
    return summary
