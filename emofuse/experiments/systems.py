"""Systems: what a cross-validation trains and tests on each fold, by name.

A :class:`System` loads what it needs for every utterance once (:meth:`System.prepare`), then
produces one :class:`~emofuse.experiments.records.FoldRecord` per fold
(:meth:`System.run_fold`). Registered: ``emofuse`` (the network of the experiment config) and
``egemaps-svm`` (openSMILE eGeMAPSv02 functionals + RBF SVM, the classic baseline) and
``whisper-lr`` (pooled frozen Whisper layers + logistic regression,
:mod:`~emofuse.experiments.encoder_lr`).
A new system
is one subclass registered with :func:`register_system`.

>>> list(SYSTEMS)
['emofuse', 'egemaps-svm', 'whisper-lr', 'whisper-lr-speaker']
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from emofuse.config import ExperimentConfig
from emofuse.experiments import baseline, encoder_lr
from emofuse.experiments.deployable import per_speaker
from emofuse.experiments.loading import Experiment, Features, load_features
from emofuse.experiments.records import FoldRecord
from emofuse.experiments.scoring import scored_record
from emofuse.pipeline import pipeline_from_config
from emofuse.training import distributed
from emofuse.training.evaluation import evaluate
from emofuse.training.train import fit

__all__ = [
    "UnknownSystemError",
    "System",
    "SYSTEMS",
    "register_system",
    "get_system",
    "NetworkSystem",
    "SvmSystem",
]

CacheDir = str | os.PathLike | None


class UnknownSystemError(ValueError):
    """A system name that is not registered; the message lists the known ones."""


class System(ABC):
    """One way to train and test on a fold. Subclasses set ``name`` (the registry key and the
    ``system`` of their records) and ``requires`` (modules imported lazily, checked up front)."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()

    def check_available(self) -> None:
        """ImportError naming the install command when a required module is missing."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(
                f"system {self.name} needs {' and '.join(missing)}: pip install 'emofuse[baseline]'"
            )

    @abstractmethod
    def prepare(
        self, experiment: Experiment, config: ExperimentConfig, cache_dir: CacheDir, progress: bool
    ) -> Any:
        """Load (through the cache) what :meth:`run_fold` needs for every utterance."""

    @abstractmethod
    def run_fold(
        self,
        experiment: Experiment,
        index: int,
        prepared: Any,
        config: ExperimentConfig,
        out_dir: Path,
        progress: bool = True,
    ) -> FoldRecord:
        """Train on fold ``index``'s training side, test on its test speakers; ``out_dir`` is
        the run folder (for the system's own files, e.g. checkpoints)."""

    def num_parameters(self, config: ExperimentConfig, labels: Sequence[str]) -> int | None:
        """Trainable parameters of the model for ``labels``; None when not a network."""
        return None


SYSTEMS: dict[str, System] = {}


def register_system(cls: type[System]) -> type[System]:
    """Class decorator: make an instance of ``cls`` available as system ``cls.name``."""
    if cls.name in SYSTEMS and type(SYSTEMS[cls.name]) is not cls:
        raise ValueError(f"system {cls.name!r} is already registered")
    SYSTEMS[cls.name] = cls()
    return cls


def get_system(name: str) -> System:
    """The registered system ``name``."""
    if name not in SYSTEMS:
        raise UnknownSystemError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    return SYSTEMS[name]


@register_system
class NetworkSystem(System):
    """The network of the experiment config, trained with early stopping on the fold's
    validation speakers; ``out_dir/fold_XX/model.pt`` keeps the chosen model."""

    name = "emofuse"

    def prepare(
        self, experiment: Experiment, config: ExperimentConfig, cache_dir: CacheDir, progress: bool
    ) -> Features:
        return load_features(experiment.all_utterances, config, cache_dir, progress)

    def run_fold(
        self,
        experiment: Experiment,
        index: int,
        prepared: Features,
        config: ExperimentConfig,
        out_dir: Path,
        progress: bool = True,
    ) -> FoldRecord:
        fold, task = experiment.folds[index], experiment.task
        test_set = prepared.feature_set(fold.test, task)
        if config.train.normalise == "speaker":  # training speakers only; test clips alone
            prepared = per_speaker(prepared, config, fold.train + experiment.extra_train + fold.val)
        train_set = prepared.feature_set(fold.train + experiment.extra_train, task)
        val_set = prepared.feature_set(fold.val, task)
        fold_dir = out_dir / f"fold_{index:02d}"
        result = fit(
            train_set, val_set, list(task.labels), config, fold_dir, resume=True, progress=progress
        )
        posteriors = evaluate(result.pipeline, test_set, config.train.precision)["posteriors"]
        if distributed.world().is_main:  # the fold is done; model.pt stays
            (fold_dir / "checkpoint.pt").unlink(missing_ok=True)
        return scored_record(
            experiment, index, self.name, posteriors, test_set.labels.numpy(), test_set.ids,
            best_epoch=result.best_epoch, val_ua=result.best_val_ua,
            train_seconds=result.train_seconds, history=result.history,
        )  # fmt: skip

    def num_parameters(self, config: ExperimentConfig, labels: Sequence[str]) -> int:
        return pipeline_from_config(config, labels).net.num_parameters()


@register_system
class SvmSystem(System):
    """openSMILE eGeMAPSv02 functionals + RBF SVM (:mod:`emofuse.experiments.baseline`); the
    config's features and model are not used."""

    name = "egemaps-svm"
    requires = baseline.REQUIRES

    def prepare(
        self, experiment: Experiment, config: ExperimentConfig, cache_dir: CacheDir, progress: bool
    ) -> dict:
        return baseline.egemaps_features(experiment.all_utterances, cache_dir, progress)

    def run_fold(
        self,
        experiment: Experiment,
        index: int,
        prepared: dict,
        config: ExperimentConfig,
        out_dir: Path,
        progress: bool = True,
    ) -> FoldRecord:
        return baseline.run_svm_fold(experiment, index, prepared)


@register_system
class EncoderLrSystem(System):
    """Mean and std of each candidate Whisper layer + logistic regression, layer and C chosen on
    the training speakers (:mod:`emofuse.experiments.encoder_lr`)."""

    name = "whisper-lr"
    requires = ("sklearn",)
    per_speaker = False

    def prepare(
        self, experiment: Experiment, config: ExperimentConfig, cache_dir: CacheDir, progress: bool
    ) -> dict:
        spec = encoder_lr.encoder_feature(config.features)
        features = load_features(
            experiment.all_utterances, replace(config, features=[spec]), cache_dir, progress
        )
        pooled = encoder_lr.pooled_layers(features, spec.name, spec.settings["width"])
        if self.per_speaker:
            return encoder_lr.per_speaker_standardised(pooled, experiment.all_utterances)
        return pooled

    def run_fold(
        self,
        experiment: Experiment,
        index: int,
        prepared: dict,
        config: ExperimentConfig,
        out_dir: Path,
        progress: bool = True,
    ) -> FoldRecord:
        layers = encoder_lr.encoder_feature(config.features).settings["layers"]
        return encoder_lr.run_lr_fold(experiment, index, prepared, self.name, layers)


@register_system
class SpeakerAdaptedLrSystem(EncoderLrSystem):
    """``whisper-lr`` with every speaker's pooled features standardised by that speaker's own
    unlabelled statistics, test speakers included (transductive; see
    :mod:`~emofuse.experiments.encoder_lr`)."""

    name = "whisper-lr-speaker"
    per_speaker = True
