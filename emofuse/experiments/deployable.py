"""Training a deployable model, as an experiment (``emofuse train``): one model, every corpus.

Validation speakers (10% of each corpus's speakers) are held out for early stopping and the
checkpoint choice; everything else trains. The result folder holds ``model.pt`` (load it with
``EmotionRecognizer.load(path)``), ``config.yaml`` and ``training.json``. Under torchrun the
processes train data-parallel and rank 0 writes.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from emofuse.config import ExperimentConfig, save_config
from emofuse.experiments.loading import load_features, load_manifest
from emofuse.experiments.machine import machine_description
from emofuse.experiments.scoring import speaker_names
from emofuse.experiments.splits import holdout_speakers
from emofuse.files import write_json
from emofuse.training import distributed
from emofuse.training.train import check_precision, evaluate, fit

__all__ = ["train_final"]


def train_final(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Fit on all corpora of ``config`` but the held-out validation speakers; resumable."""
    out_dir = Path(out_dir)
    device = distributed.process_device(config.train.device)
    check_precision(config.train.precision, device)
    main = distributed.setup(device).is_main
    task, utterances, dropped = load_manifest(config)
    train, val = holdout_speakers(utterances, seed=config.train.seed)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "config.yaml")
    if distributed.world().distributed:  # each process extracts a share into the cache first
        load_features(distributed.shard(utterances), config, cache_dir, progress and main)
        distributed.barrier()
    features = load_features(utterances, config, cache_dir, progress and main)
    val_set = features.feature_set(val, task)
    result = fit(
        features.feature_set(train, task), val_set, list(task.labels), config, out_dir,
        resume=True, progress=progress,
    )  # fmt: skip
    val_metrics = evaluate(result.pipeline, val_set, config.train.precision)
    report = {
        "task": task.name,
        "labels": list(task.labels),
        "train_utterances": dict(Counter(u.corpus for u in train)),
        "train_labels": dict(Counter(u.label for u in train)),
        "val_speakers": speaker_names(val),
        "val_utterances": len(val),
        "dropped": dropped,
        "best_epoch": result.best_epoch,
        "val_ua": val_metrics["ua"],
        "val_wa": val_metrics["wa"],
        "train_seconds": result.train_seconds,
        "machine": machine_description(),
        "history": result.history,
    }
    if main:
        write_json(report, out_dir / "training.json")
        (out_dir / "checkpoint.pt").unlink(missing_ok=True)
    return report
