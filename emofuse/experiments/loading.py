"""What every experiment loads first: the labelled manifest, its folds and the cached features."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from emofuse.config import ExperimentConfig
from emofuse.corpora import Utterance, load_corpus
from emofuse.corpora.labels import LabelTask, apply_task, default_task, get_task
from emofuse.experiments.splits import Fold, default_protocol, make_folds
from emofuse.features import frame_rates
from emofuse.pipeline.cache import FeatureCache
from emofuse.training import distributed
from emofuse.training.batches import FeatureSet
from emofuse.training.linear_head import pooled_moments, utterance_moments

__all__ = [
    "Experiment",
    "Features",
    "load_manifest",
    "prepare_experiment",
    "load_features",
]


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

    @property
    def all_utterances(self) -> list[Utterance]:
        """Every utterance any fold uses: the evaluated ones and the extra training ones."""
        return self.utterances + self.extra_train


def load_manifest(config: ExperimentConfig) -> tuple[LabelTask, list[Utterance], dict[str, int]]:
    """Every configured corpus under one label task (default: the first corpus's own task).

    Returns the task, the kept utterances and the counts of what the task left out.
    """
    if not config.data.corpora:
        raise ValueError("no corpus configured: pass --corpus and --root, or set data.corpora")
    first = config.data.corpora[0].name
    task = get_task(config.data.task) if config.data.task else default_task(first)
    utterances: list[Utterance] = []
    dropped: Counter[str] = Counter()
    for spec in config.data.corpora:
        selection = apply_task(load_corpus(spec.name, spec.root), task)
        utterances += evenly_spread(selection.utterances, spec.max_utterances)
        dropped.update({**selection.dropped_labels, **selection.dropped_codes})
    return task, utterances, dict(sorted(dropped.items()))


def evenly_spread(utterances: list[Utterance], limit: int | None) -> list[Utterance]:
    """At most ``limit`` of ``utterances``, every k-th in their order (all when ``None``).

    >>> evenly_spread(list(range(10)), 3), evenly_spread(list(range(4)), None)
    ([0, 3, 6], [0, 1, 2, 3])
    """
    if limit is None or len(utterances) <= limit:
        return list(utterances)
    return utterances[:: len(utterances) // limit][:limit]


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


@dataclass(frozen=True)
class Features:
    """Cached feature frames of utterances: ``arrays[path][feature]`` is (dims, frames) float32,
    at ``rates[feature]`` frames per second."""

    arrays: dict[str, dict[str, np.ndarray]]
    rates: dict[str, float]

    def feature_set(self, utts: Sequence[Utterance], task: LabelTask) -> FeatureSet:
        """The frames of ``utts`` with their ``task`` class indices, for training or testing."""
        return FeatureSet.from_arrays(
            [self.arrays[str(u.path)] for u in utts],
            [task.index(u.label) for u in utts],
            [u.id for u in utts],
            self.rates,
        )


    def standardised_per(self, groups: Mapping[str, Hashable]) -> Features:
        """The frames of the paths in ``groups`` (path -> group, e.g. a speaker), each
        standardised with its group's per-row mean and std, then put back on the scale of all
        those paths' frames together: x -> (x - mean_g) / std_g * std + mean, per feature.

        A pipeline whose normalisers are fitted on the result holds the statistics of all that
        audio (the prior :mod:`emofuse.inference.adapt` shrinks towards) and its network learns
        frames as a speaker's own statistics standardise them. Other paths are left out.
        """
        members: dict[Hashable, list[str]] = defaultdict(list)
        for path, group in groups.items():
            members[group].append(str(path))
        arrays: dict[str, dict[str, np.ndarray]] = {str(path): {} for path in groups}
        for feature in self.rates:
            moments = {p: utterance_moments(self.arrays[p][feature]) for p in arrays}
            mean, std, _ = pooled_moments(list(moments.values()))
            for paths in members.values():
                group_mean, group_std, _ = pooled_moments([moments[p] for p in paths])
                scale = std / group_std
                shift = mean - group_mean * scale
                for p in paths:
                    frames = self.arrays[p][feature]
                    standardised = frames * scale[:, None] + shift[:, None]
                    arrays[p][feature] = standardised.astype(frames.dtype)
        return Features(arrays, self.rates)


def load_features(
    utterances: Sequence[Utterance],
    config: ExperimentConfig,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Features:
    """The frames of every feature of ``config`` for every utterance, through the on-disk cache;
    missing ones are computed on the training device (this process's GPU under torchrun)."""
    device = distributed.process_device(config.train.device)
    cache = FeatureCache(config.features, cache_dir, device)
    paths = [u.path for u in utterances]
    arrays = cache.get_many(paths, progress=progress)
    return Features(dict(zip(map(str, paths), arrays, strict=True)), frame_rates(config.features))
