"""Speaker-independent cross-validation: folds -> fit -> test -> structured results on disk.

``run_crossval`` writes into ``out_dir``:

- ``config.yaml``: the exact experiment config (seed included); a later call with another
  config into the same folder is refused (ValueError), so results never mix settings;
- ``fold_XX.json`` per fold: test speakers, metrics, confusion matrix, chosen epoch, learning
  curve and per-utterance posteriors; a finished fold is not recomputed on a later call;
- ``fold_XX/``: the fold's checkpoint (while training) and best model;
- ``summary.json`` / ``summary.md``: WA, UA, macro-F1 per fold, mean +- std and pooled;
- ``confusion.png`` (summed over folds) and ``learning_curves.png``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emofuse.pipeline.cache import FeatureCache
from emofuse.config import ExperimentConfig, load_config, save_config
from emofuse.corpora import Utterance, load_corpus
from emofuse.training.batches import FeatureSet
from emofuse.corpora.labels import LabelTask, apply_task, default_task, get_task
from emofuse.metrics import confusion_matrix, summarize
from emofuse.experiments.splits import Fold, default_protocol, make_folds
from emofuse.training.train import evaluate, fit

SYSTEMS = ("emofuse", "egemaps-svm")

__all__ = ["Experiment", "prepare_experiment", "run_crossval", "summarize_folds"]


@dataclass
class Experiment:
    """A labelled manifest with its task, protocol and folds.

    ``extra_train`` holds utterances of the further configured corpora, added to the training
    side of every fold (they never contain the evaluated corpus's speakers).
    """

    corpus: str
    task: LabelTask
    protocol: str
    utterances: list[Utterance]
    folds: list[Fold]
    dropped: dict[str, int]
    extra_train: list[Utterance] = field(default_factory=list)


def load_manifest(config: ExperimentConfig) -> tuple[LabelTask, list[Utterance], dict[str, int]]:
    """Every configured corpus under one label task (default: the first corpus's own task).

    Returns the task, the kept utterances and the counts of what the task left out.
    """
    if not config.data.corpora:
        raise ValueError("no corpus configured: pass --corpus and --root, or set data.corpora")
    first = config.data.corpora[0].name
    task = get_task(config.data.task) if config.data.task else default_task(first)
    utterances = [u for spec in config.data.corpora for u in load_corpus(spec.name, spec.root)]
    selection = apply_task(utterances, task)
    return task, selection.utterances, {**selection.dropped_labels, **selection.dropped_codes}


def prepare_experiment(config: ExperimentConfig) -> Experiment:
    """Load the configured corpora, apply the label task and build the folds (no audio decoded).

    Protocol ``loco`` makes one fold per corpus; any other protocol evaluates the first corpus
    and adds the others to every fold's training side.
    """
    task, utterances, dropped = load_manifest(config)
    first = config.data.corpora[0].name
    protocol = config.data.protocol or default_protocol(first)
    if protocol == "loco":
        names = "+".join(spec.name for spec in config.data.corpora)
        folds = make_folds(utterances, protocol, seed=config.train.seed)
        return Experiment(names, task, protocol, utterances, folds, dropped)
    evaluated = [u for u in utterances if u.corpus == first]
    extra = [u for u in utterances if u.corpus != first]
    folds = make_folds(evaluated, protocol, seed=config.train.seed)
    return Experiment(first, task, protocol, evaluated, folds, dropped, extra)


def feature_set(
    utts: Sequence[Utterance], features: dict[str, np.ndarray], task: LabelTask
) -> FeatureSet:
    """Cached features (keyed by path) of ``utts`` with their task class indices."""
    return FeatureSet.from_arrays(
        [features[str(u.path)] for u in utts],
        [task.index(u.label) for u in utts],
        [u.id for u in utts],
    )


def load_features(
    utterances: Sequence[Utterance], config: ExperimentConfig, cache_dir, progress: bool
) -> dict[str, np.ndarray]:
    """Raw features of every utterance, keyed by path, through the on-disk cache."""
    cache = FeatureCache(config.features, cache_dir)
    paths = [u.path for u in utterances]
    return dict(zip(map(str, paths), cache.get_many(paths, progress=progress), strict=True))


def write_json(data: dict, path: Path) -> None:
    """Write ``data`` as JSON atomically (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _speakers(utts: Sequence[Utterance]) -> list[str]:
    return sorted({f"{u.corpus}:{u.speaker}" for u in utts})


def rounded(probabilities: Sequence[float]) -> list[float]:
    """Class probabilities as stored in result files (5 decimals)."""
    return [round(float(p), 5) for p in probabilities]


def score_posteriors(
    posteriors: np.ndarray, labels: np.ndarray, ids: Sequence[str], n_classes: int
) -> tuple[dict, list[dict]]:
    """Metrics of the argmax decisions of ``posteriors`` (N, C) (WA, UA, macro-F1, confusion)
    and the per-utterance prediction records."""
    predicted = posteriors.argmax(axis=1)
    metrics = summarize(labels, predicted, n_classes)
    scores = {k: metrics[k] for k in ("wa", "ua", "macro_f1")}
    scores["confusion"] = confusion_matrix(labels, predicted, n_classes).tolist()
    predictions = [
        {"id": uid, "label": int(y), "posteriors": rounded(probs)}
        for uid, y, probs in zip(ids, np.asarray(labels).tolist(), posteriors, strict=True)
    ]
    return scores, predictions


def fold_record(
    experiment: Experiment,
    index: int,
    system: str,
    posteriors: np.ndarray,
    labels: np.ndarray,
    ids: Sequence[str],
    **details: object,
) -> dict:
    """The result record of fold ``index`` (any system): speakers, metrics, predictions."""
    fold = experiment.folds[index]
    train = fold.train + experiment.extra_train
    scores, predictions = score_posteriors(posteriors, labels, ids, experiment.task.num_classes)
    return {
        "fold": index,
        "system": system,
        "name": fold.name,
        "description": fold.description,
        "speaker_overlap": fold.speaker_overlap,
        "train_speakers": _speakers(train),
        "val_speakers": _speakers(fold.val),
        "test_speakers": _speakers(fold.test),
        "n_train": len(train),
        "n_val": len(fold.val),
        "n_test": len(fold.test),
        **scores,
        **details,
        "predictions": predictions,
    }


def run_fold(
    experiment: Experiment,
    index: int,
    features: dict[str, np.ndarray],
    config: ExperimentConfig,
    out_dir: Path,
    progress: bool = True,
) -> dict:
    """Train and test the network on fold ``index``; returns its result record."""
    fold = experiment.folds[index]
    task = experiment.task
    train_set = feature_set(fold.train + experiment.extra_train, features, task)
    val_set = feature_set(fold.val, features, task)
    test_set = feature_set(fold.test, features, task)
    fold_dir = out_dir / f"fold_{index:02d}"
    result = fit(
        train_set, val_set, list(task.labels), config, fold_dir, resume=True, progress=progress
    )
    device = next(result.pipeline.parameters()).device
    posteriors = evaluate(result.pipeline.to(device), test_set, config.train)["posteriors"]
    (fold_dir / "checkpoint.pt").unlink(missing_ok=True)  # the fold is done; model.pt stays
    return fold_record(
        experiment, index, "emofuse", posteriors, test_set.labels.numpy(), test_set.ids,
        best_epoch=result.best_epoch, val_ua=result.best_val_ua,
        train_seconds=result.train_seconds, history=result.history,
    )  # fmt: skip


def summarize_folds(records: list[dict], labels: Sequence[str]) -> dict:
    """Per-fold metrics, their mean +- std, pooled metrics and the summed confusion matrix."""
    table = {k: np.array([r[k] for r in records]) for k in ("wa", "ua", "macro_f1")}
    y_true = np.array([p["label"] for r in records for p in r["predictions"]])
    y_pred = np.array([int(np.argmax(p["posteriors"])) for r in records for p in r["predictions"]])
    return {
        "folds": [
            {
                k: r[k]
                for k in (
                    "fold",
                    "name",
                    "test_speakers",
                    "n_test",
                    "wa",
                    "ua",
                    "macro_f1",
                    "best_epoch",
                    "val_ua",
                    "train_seconds",
                )
            }
            for r in records
        ],
        "mean": {k: float(v.mean()) for k, v in table.items()},
        "std": {k: float(v.std()) for k, v in table.items()},
        "pooled": summarize(y_true, y_pred, len(labels)),
        "confusion": confusion_matrix(y_true, y_pred, len(labels)).tolist(),
        "speaker_overlap": any(r["speaker_overlap"] for r in records),
        "train_seconds": float(sum(r["train_seconds"] for r in records)),
    }


def _pct(value: float, spread: float | None = None) -> str:
    """0.6234 -> '62.3'; with a spread, '62.3 +- 4.1'."""
    text = f"{100 * value:.1f}"
    return text if spread is None else f"{text} +- {100 * spread:.1f}"


def _or_dash(value: object, show: Callable[[float], str] = str) -> str:
    return "-" if value is None else show(value)


def _markdown(summary: dict, experiment: Experiment, config: ExperimentConfig) -> str:
    overlap = summary["speaker_overlap"]
    lines = [
        f"# Cross-validation of {summary['system']}: {experiment.corpus}, "
        f"task {experiment.task.name}",
        "",
        f"Protocol **{experiment.protocol}**"
        + (
            " (RANDOM, SPEAKER-OVERLAPPING: not speaker-independent)"
            if overlap
            else " (speaker-independent)"
        )
        + f", {len(summary['folds'])} of {len(experiment.folds)} folds, seed {config.train.seed}, "
        f"classes: {', '.join(experiment.task.labels)}.",
        "",
        "| fold | test speakers | n | WA % | UA % | macro-F1 % | epoch | val UA % | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in summary["folds"]:
        speakers = " ".join(s.split(":", 1)[1] for s in f["test_speakers"])
        lines.append(
            f"| {f['fold']} | {speakers} | {f['n_test']} | {_pct(f['wa'])} | {_pct(f['ua'])} "
            f"| {_pct(f['macro_f1'])} | {_or_dash(f['best_epoch'])} "
            f"| {_or_dash(f['val_ua'], _pct)} "
            f"| {f['train_seconds']:.0f} |"
        )
    m, s, p = summary["mean"], summary["std"], summary["pooled"]
    lines += [
        f"| **mean +- std** | | | **{_pct(m['wa'], s['wa'])}** | **{_pct(m['ua'], s['ua'])}** "
        f"| {_pct(m['macro_f1'], s['macro_f1'])} | | | {summary['train_seconds']:.0f} |",
        f"| pooled | | {p['n']} | {_pct(p['wa'])} | {_pct(p['ua'])} | {_pct(p['macro_f1'])} "
        "| | | |",
        "",
        "UA per fold averages recall over the classes present in that fold's test set.",
    ]
    if experiment.extra_train:
        extra = sorted({u.corpus for u in experiment.extra_train})
        lines += [
            "",
            f"Every fold also trains on {len(experiment.extra_train)} utterances of "
            f"{', '.join(extra)} (other corpora: never the test speakers).",
        ]
    if experiment.dropped:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(experiment.dropped.items()))
        lines += ["", f"Left out by the task (label or code: count): {dropped}."]
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    """Processor, thread count, torch version and device, for results files."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, "
        f"torch {torch.__version__}, {device}"
    )


def _parse_folds(folds: Sequence[int] | None, n_folds: int) -> list[int]:
    if folds is None:
        return list(range(n_folds))
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        raise ValueError(f"fold(s) {bad} out of range: this protocol has folds 0..{n_folds - 1}")
    return sorted(set(folds))


def _check_same_config(config: ExperimentConfig, path: Path) -> None:
    """Refuse to mix results (or resume checkpoints) of another config in one folder."""
    if not path.exists():
        return
    old, new = load_config(path).to_dict(), config.to_dict()
    changed = [f"{s}.{k}" for s in new for k in new[s] if old[s].get(k) != new[s][k]]
    if changed:
        raise ValueError(
            f"{path.parent} holds results of another config (changed: {', '.join(changed)}); "
            "use a new output folder or the settings in its config.yaml"
        )


def _records(out_dir: Path, n_folds: int) -> list[dict]:
    return [
        json.loads((out_dir / f"fold_{i:02d}.json").read_text())
        for i in range(n_folds)
        if (out_dir / f"fold_{i:02d}.json").exists()
    ]


def _fold_runner(
    system: str,
    experiment: Experiment,
    config: ExperimentConfig,
    out_dir: Path,
    cache_dir: str | os.PathLike | None,
    progress: bool,
) -> Callable[[int], dict]:
    """Load the system's features once; return a function that runs one fold."""
    utterances = experiment.utterances + experiment.extra_train
    if system == "emofuse":
        features = load_features(utterances, config, cache_dir, progress)
        return lambda i: run_fold(experiment, i, features, config, out_dir, progress)
    from emofuse.experiments.baseline import egemaps_features, run_svm_fold

    functionals = egemaps_features(utterances, cache_dir, progress)
    return lambda i: run_svm_fold(experiment, i, functionals)


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

    ``system`` is ``"emofuse"`` (the network of ``config``) or ``"egemaps-svm"`` (openSMILE
    eGeMAPSv02 functionals + RBF SVM, the classic baseline), on identical folds.
    """
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    experiment = prepare_experiment(config)
    selected = _parse_folds(folds, len(experiment.folds))
    _check_same_config(config, out_dir / "config.yaml")
    others = {r.get("system", "emofuse") for r in _records(out_dir, len(experiment.folds))}
    if others - {system}:
        raise ValueError(f"{out_dir} holds results of system(s) {sorted(others)}, not {system!r}")
    save_config(config, out_dir / "config.yaml")
    run = _fold_runner(system, experiment, config, out_dir, cache_dir, progress)
    began = time.perf_counter()
    for index in selected:
        path = out_dir / f"fold_{index:02d}.json"
        if path.exists():
            continue
        record = run(index)
        write_json(record, path)
        if progress:
            print(
                f"fold {index} ({record['name']}): WA {record['wa']:.3f} UA {record['ua']:.3f}",
                flush=True,
            )
    records = _records(out_dir, len(experiment.folds))
    summary = {
        "system": system,
        "corpus": experiment.corpus,
        "task": experiment.task.name,
        "labels": list(experiment.task.labels),
        "protocol": experiment.protocol,
        "n_folds": len(experiment.folds),
        "seed": config.train.seed,
        "dropped": experiment.dropped,
        "machine": machine_description(),
        "wall_seconds_this_call": time.perf_counter() - began,
        **summarize_folds(records, experiment.task.labels),
    }
    write_json(summary, out_dir / "summary.json")
    (out_dir / "summary.md").write_text(_markdown(summary, experiment, config))
    from emofuse.plots import plot_confusion, plot_learning_curves

    plot_confusion(
        np.array(summary["confusion"]), experiment.task.labels, out_dir / "confusion.png"
    )
    if any(r.get("history") for r in records):
        plot_learning_curves(records, out_dir / "learning_curves.png")
    return summary
