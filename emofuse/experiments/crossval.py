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

Scaling out, with the same outputs: ``jobs=N`` trains N folds at once in separate processes
(each fold is seeded on its own, so the records equal a serial run's at the same threads per
process); under torchrun every process trains each fold together (data-parallel,
:mod:`emofuse.training.train`), features are extracted in shares (one per process, into one
cache) and only rank 0 writes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from emofuse.config import ExperimentConfig, load_config, save_config
from emofuse.experiments.loading import Experiment, prepare_experiment
from emofuse.experiments.machine import machine_description
from emofuse.experiments.records import FoldRecord, fold_path, read_records, write_record
from emofuse.experiments.report import crossval_markdown, write_figures
from emofuse.experiments.scoring import summarize_folds
from emofuse.experiments.systems import System, get_system
from emofuse.files import write_json, write_text
from emofuse.training import distributed
from emofuse.training.train import check_precision

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
    section that is a list (``features``) is compared whole."""
    changed = []
    for section, values in new.items():
        before = old.get(section)
        if isinstance(values, dict) and isinstance(before, dict):
            changed += [f"{section}.{k}" for k in values if before.get(k) != values[k]]
        elif before != values:
            changed.append(section)
    return changed


def _check_same_config(config: ExperimentConfig, path: Path) -> None:
    """Refuse to mix results (or resume checkpoints) of another config in one folder; the
    runtime settings (device, threads, loader workers) may differ."""
    if not path.exists():
        return
    changed = _changed_settings(load_config(path).identity(), config.identity())
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


def _prepare(
    runner: System, experiment: Experiment, config: ExperimentConfig, cache_dir: Any,
    progress: bool,
) -> Any:  # fmt: skip
    """``runner.prepare``; among torchrun's processes each first extracts its share of the
    utterances into the cache, so the expensive step (a frozen encoder) is split too."""
    w = distributed.world()
    if w.distributed:
        runner.prepare(_share(experiment, w.rank, w.size), config, cache_dir, progress)
        distributed.barrier()
    return runner.prepare(experiment, config, cache_dir, progress)


def _share(experiment: Experiment, index: int, count: int) -> Experiment:
    """Every ``count``-th utterance of ``experiment`` from ``index`` (evaluated and extra ones
    alike), for extracting features in ``count`` shares."""
    return replace(experiment, utterances=experiment.all_utterances[index::count], extra_train=[])


def _fold_line(record: FoldRecord) -> str:
    return f"fold {record.fold} ({record.name}): WA {record.wa:.3f} UA {record.ua:.3f}"


_JOB_STATE: dict[tuple, tuple[Experiment, Any]] = {}  # per job process: what prepare() loaded


def _start_job(threads: int, parent: int) -> None:
    """A job process's set-up: its threads, and an exit as soon as ``parent`` is gone (killed
    without taking its jobs along), so no orphan goes on training into the run folder."""
    torch.set_num_threads(threads)
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()


def _exit_without(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _prepare_share(
    system: str, share: Experiment, config: ExperimentConfig, cache_dir: Any
) -> None:
    get_system(system).prepare(share, config, cache_dir, False)


def _run_job(
    system: str, config: ExperimentConfig, out_dir: Path, index: int, cache_dir: Any
) -> FoldRecord:
    """Train and test one fold in a job process, write its record; the process keeps the
    prepared features for its next fold."""
    runner = get_system(system)
    key = (system, repr(config.identity()), str(cache_dir))
    if key not in _JOB_STATE:
        experiment = prepare_experiment(config)
        _JOB_STATE.clear()
        _JOB_STATE[key] = experiment, runner.prepare(experiment, config, cache_dir, False)
    experiment, prepared = _JOB_STATE[key]
    record = runner.run_fold(experiment, index, prepared, config, out_dir, False)
    write_record(record, out_dir)
    return record


def _run_jobs(
    system: str, experiment: Experiment, config: ExperimentConfig, out_dir: Path,
    todo: list[int], cache_dir: Any, jobs: int, progress: bool,
) -> None:  # fmt: skip
    """Folds ``todo`` in ``jobs`` processes (spawned), each with ``train.num_threads`` threads
    or an equal share of the CPUs; features are first extracted in ``jobs`` shares."""
    threads = config.train.num_threads or max(1, (os.cpu_count() or 1) // jobs)
    config = replace(config, train=replace(config.train, num_threads=threads))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_job,
                             initargs=(threads, os.getpid())) as pool:  # fmt: skip
        shares = [_share(experiment, k, jobs) for k in range(jobs)]
        for done in [pool.submit(_prepare_share, system, s, config, cache_dir) for s in shares]:
            done.result()
        futures = {pool.submit(_run_job, system, config, out_dir, i, cache_dir): i for i in todo}
        try:
            for future in as_completed(futures):
                try:
                    record = future.result()
                except Exception as error:
                    raise RuntimeError(f"fold {futures[future]} failed: {error}") from error
                if progress:
                    print(_fold_line(record), flush=True)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def run_crossval(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    system: str = "emofuse",
    folds: Sequence[int] | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    jobs: int = 1,
) -> dict:
    """Run (or finish) the cross-validation of ``system`` under ``config``; returns the summary.

    ``system`` is a registered system name (:data:`emofuse.experiments.systems.SYSTEMS`);
    ``folds`` selects fold indices (default: all); ``jobs`` > 1 trains that many folds at once
    in separate processes (spawned: a script calling this needs ``if __name__ == "__main__":``).
    """
    runner = get_system(system)
    runner.check_available()
    if jobs < 1:
        raise ValueError(f"jobs must be positive, got {jobs}")
    device = distributed.process_device(config.train.device)
    check_precision(config.train.precision, device)
    w = distributed.setup(device)
    if jobs > 1 and w.distributed:
        raise ValueError(
            "jobs > 1 runs folds in separate processes, but under torchrun all processes train "
            "each fold together: use one or the other"
        )
    out_dir = Path(out_dir)
    experiment = prepare_experiment(config)
    selected = _parse_folds(folds, len(experiment.folds))
    _check_same_config(config, out_dir / "config.yaml")
    _check_same_system(read_records(out_dir, len(experiment.folds)), system, out_dir)
    distributed.barrier()  # every rank has checked before rank 0 writes
    if w.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "config.yaml")
    todo = distributed.broadcast_object([i for i in selected if not fold_path(out_dir, i).exists()])
    progress = progress and w.is_main
    began = time.perf_counter()
    if jobs > 1 and len(todo) > 1:
        _run_jobs(system, experiment, config, out_dir, todo, cache_dir, min(jobs, len(todo)),
                  progress)  # fmt: skip
    elif todo:
        prepared = _prepare(runner, experiment, config, cache_dir, progress)
        for index in todo:
            record = runner.run_fold(experiment, index, prepared, config, out_dir, progress)
            if w.is_main:
                write_record(record, out_dir)
            if progress:
                print(_fold_line(record), flush=True)
    distributed.barrier()
    records = read_records(out_dir, len(experiment.folds))
    summary = _summary(system, experiment, config, records, time.perf_counter() - began)
    if w.is_main:
        write_json(summary, out_dir / "summary.json")
        write_text(
            out_dir / "summary.md", crossval_markdown(summary, experiment, config.train.seed)
        )
        write_figures(summary, records, out_dir)
    return summary
