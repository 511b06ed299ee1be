"""Training a deployable model, as an experiment (``emofuse train``): one model, every corpus.

Validation speakers (10% of each corpus's speakers) are held out for early stopping and the
checkpoint choice; everything else trains. A logistic head (``train.head: logistic``,
:mod:`emofuse.training.linear_head`) needs no early stopping: it trains on every speaker and
calibrates on held-out corpora instead. The result folder holds ``model.pt`` (load it with
``EmotionRecognizer.load(path)``), ``config.yaml`` and ``training.json``. Under torchrun the
processes train data-parallel and rank 0 writes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from emofuse.config import ExperimentConfig, save_config
from emofuse.corpora import Utterance
from emofuse.device import set_threads
from emofuse.experiments.loading import Features, load_features, load_manifest
from emofuse.experiments.machine import machine_description
from emofuse.experiments.scoring import speaker_names
from emofuse.experiments.splits import holdout_speakers
from emofuse.features import make_kind
from emofuse.files import write_json
from emofuse.pipeline import pipeline_from_config, save_pipeline
from emofuse.pipeline.cache import FeatureCache
from emofuse.progress import progress as progress_of
from emofuse.training import distributed
from emofuse.training.evaluation import evaluate
from emofuse.training.linear_head import (
    UtteranceMoments,
    check_linear_pipeline,
    fit_logistic_head,
    utterance_moments,
)
from emofuse.training.speech import SpeechRegions, speech_frames
from emofuse.training.train import check_precision, fit

__all__ = ["normalisation_groups", "per_speaker", "train_final", "train_logistic"]


def train_final(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Fit on all corpora of ``config`` but the held-out validation speakers; resumable."""
    if config.train.head == "logistic":
        return train_logistic(config, out_dir, cache_dir=cache_dir, progress=progress)
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
    if config.train.normalise == "speaker":
        features = per_speaker(features, config, utterances)
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


def normalisation_groups(config: ExperimentConfig, utterances: list[Utterance]) -> list[tuple]:
    """Per utterance: its configured corpus folder and speaker. A corpus listed twice (a
    degraded copy, ``scripts/degrade_corpus.py``) keeps its speakers apart from the original."""
    roots = [Path(spec.root).resolve() for spec in config.data.corpora]
    groups = []
    for u in utterances:
        path = Path(u.path).resolve()
        root = next((str(r) for r in roots if path.is_relative_to(r)), u.corpus)
        groups.append((root, u.corpus, u.speaker))
    return groups


def per_speaker(
    features: Features, config: ExperimentConfig, utterances: list[Utterance]
) -> Features:
    """The frames of ``utterances``, each :func:`normalisation_groups` group (a speaker of one
    configured folder) standardised by itself (:meth:`Features.standardised_per`)."""
    groups = normalisation_groups(config, utterances)
    paths = [str(u.path) for u in utterances]
    return features.standardised_per(dict(zip(paths, groups, strict=True)))


def first_listed(config: ExperimentConfig, groups: list[tuple]) -> list[bool]:
    """Per :func:`normalisation_groups` entry: is its utterance in the first folder configured
    for its corpus (the original recordings, not a degraded copy listed after it)?"""
    first: dict[str, str] = {}
    for spec in config.data.corpora:
        first.setdefault(spec.name, str(Path(spec.root).resolve()))
    return [root == first[corpus] for root, corpus, _ in groups]


def frame_moments(
    utterances: list[Utterance],
    config: ExperimentConfig,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[UtteranceMoments]:
    """:func:`utterance_moments` of the (single) feature's cached frames of every utterance,
    one file in memory at a time."""
    cache = FeatureCache(
        config.features, cache_dir, distributed.process_device(config.train.device)
    )
    paths = [u.path for u in utterances]
    name = config.features[0].name
    regions = SpeechRegions(cache.root) if config.train.speech_only else None
    rate = make_kind(config.features[0]).frame_rate

    def frames(path: Path) -> np.ndarray:  # a speech-only head reads the speech frames only
        whole = cache.get(path)[name]
        return whole if regions is None else speech_frames(whole, regions(path), rate)

    return [utterance_moments(frames(path))
            for path in (progress_of(paths, "features") if progress else paths)]  # fmt: skip


def train_logistic(
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Fit the pooled-statistics logistic head on every utterance of ``config``'s corpora;
    writes ``model.pt``, ``config.yaml`` and ``training.json`` to ``out_dir``."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    set_threads(config.train.num_threads)
    task, utterances, dropped = load_manifest(config)
    pipeline = pipeline_from_config(config, task.labels)
    check_linear_pipeline(pipeline)
    groups = normalisation_groups(config, utterances)
    speaker = config.train.normalise == "speaker"
    fitted = fit_logistic_head(
        pipeline,
        frame_moments(utterances, config, cache_dir, progress),
        [task.index(u.label) for u in utterances],
        groups if speaker else [()] * len(groups),
        [u.corpus for u in utterances],
        c=config.train.head_c,
        calibrate=first_listed(config, groups),
    )
    save_pipeline(pipeline.eval(), out_dir / "model.pt", normalised_per=config.train.normalise,
                  temperature=fitted["temperature"],
                  speech_only=config.train.speech_only)  # fmt: skip
    report = {
        "task": task.name,
        "labels": list(task.labels),
        "head": "logistic",
        "train_utterances": dict(Counter(u.corpus for u in utterances)),
        "train_labels": dict(Counter(u.label for u in utterances)),
        "normalisation_groups": len(set(groups)),
        "dropped": dropped,
        **fitted,
        "train_seconds": round(time.perf_counter() - began, 1),
        "machine": machine_description(),
    }
    write_json(report, out_dir / "training.json")
    return report
