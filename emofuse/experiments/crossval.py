"""Speaker-independent cross-validation: folds -> a system per fold -> structured results on disk.

``run_crossval`` writes into ``out_dir``:

- ``config.yaml``: the exact experiment config (seed included); a later call with another
  config into the same folder is refused (ValueError), so results never mix settings;
- ``fold_XX.json`` per fold (:class:`~emofuse.experiments.records.FoldRecord`): test speakers,
  metrics, confusion matrix, chosen epoch, learning curve and per-utterance posteriors; a
  finished fold is not recomputed on a later call;
- ``fold_XX/``: the network's checkpoint (while training) and best model;
- ``summary.json`` / ``summary.md``: WA, UA, macro-F1 per fold, mean +- std and pooled;
- ``confusion.png`` (summed over folds) and ``learning_curves.png``.

The system (:mod:`emofuse.experiments.systems`) is the network of the config (``emofuse``) or
the eGeMAPS + SVM baseline (``egemaps-svm``), on identical folds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from emofuse.config import ExperimentConfig, load_config, save_config
from emofuse.experiments.loading import Experiment, prepare_experiment
from emofuse.experiments.machine import machine_description
from emofuse.experiments.records import FoldRecord, fold_path, read_records, write_record
from emofuse.experiments.report import crossval_markdown, write_figures
from emofuse.experiments.scoring import summarize_folds
from emofuse.experiments.systems import get_system
from emofuse.files import write_json, write_text

__all__ = ["run_crossval"]


def _parse_folds(folds: Sequence[int] | None, n_folds: int) -> list[int]:
    if folds is None:
        return list(range(n_folds))
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        raise ValueError(f"fold(s) {bad} out of range: this protocol has folds 0..{n_folds - 1}")
    return sorted(set(folds))


def _changed_settings(old: dict, new: dict) -> list[str]:
    """``section.key`` of each changed setting between two ``ExperimentConfig.to_dict()``s; a
    section that is a list (``streams``) is compared whole."""
    changed = []
    for section, values in new.items():
        before = old.get(section)
        if isinstance(values, dict) and isinstance(before, dict):
            changed += [f"{section}.{k}" for k in values if before.get(k) != values[k]]
        elif before != values:
            changed.append(section)
    return changed


def _check_same_config(config: ExperimentConfig, path: Path) -> None:
    """Refuse to mix results (or resume checkpoints) of another config in one folder."""
    if not path.exists():
        return
    changed = _changed_settings(load_config(path).to_dict(), config.to_dict())
    if changed:
        raise ValueError(
            f"{path.parent} holds results of another config (changed: {', '.join(changed)}); "
            "use a new output folder or the settings in its config.yaml"
        )


def _check_same_system(records: Sequence[FoldRecord], system: str, out_dir: Path) -> None:
    others = {r.system for r in records}
    if others - {system}:
        raise ValueError(f"{out_dir} holds results of system(s) {sorted(others)}, not {system!r}")


def _summary(
    system: str, experiment: Experiment, config: ExperimentConfig, records: list[FoldRecord],
    wall_seconds: float,
) -> dict:  # fmt: skip
    """``summary.json`` of the finished folds ``records``."""
    return {
        "system": system,
        "corpus": experiment.corpus,
        "task": experiment.task.name,
        "labels": list(experiment.task.labels),
        "protocol": experiment.protocol,
        "n_folds": len(experiment.folds),
        "seed": config.train.seed,
        "dropped": experiment.dropped,
        "machine": machine_description(),
        "wall_seconds_this_call": wall_seconds,
        **summarize_folds(records, experiment.task.labels),
    }


def run_crossval(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    system: str = "emofuse",
    folds: Sequence[int] | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Run (or finish) the cross-validation of ``system`` under ``config``; returns the summary.

    ``system`` is a registered system name (:data:`emofuse.experiments.systems.SYSTEMS`);
    ``folds`` selects fold indices (default: all).
    """
    runner = get_system(system)
    runner.check_available()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    experiment = prepare_experiment(config)
    selected = _parse_folds(folds, len(experiment.folds))
    _check_same_config(config, out_dir / "config.yaml")
    _check_same_system(read_records(out_dir, len(experiment.folds)), system, out_dir)
    save_config(config, out_dir / "config.yaml")
    prepared = runner.prepare(experiment, config, cache_dir, progress)
    began = time.perf_counter()
    for index in selected:
        if fold_path(out_dir, index).exists():
            continue
        record = runner.run_fold(experiment, index, prepared, config, out_dir, progress)
        write_record(record, out_dir)
        if progress:
            print(
                f"fold {index} ({record.name}): WA {record.wa:.3f} UA {record.ua:.3f}", flush=True
            )
    records = read_records(out_dir, len(experiment.folds))
    summary = _summary(system, experiment, config, records, time.perf_counter() - began)
    write_json(summary, out_dir / "summary.json")
    write_text(out_dir / "summary.md", crossval_markdown(summary, experiment, config.train.seed))
    write_figures(summary, records, out_dir)
    return summary
