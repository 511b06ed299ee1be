"""Pooled frozen-encoder statistics + logistic regression (docs/design.md §5), a system of its own.

Per utterance, each cached layer of the Whisper feature is pooled to its mean and standard
deviation over frames (2 W values per layer). Per fold, the layer and the inverse
regularisation ``C`` are chosen by speaker-grouped inner cross-validation on the training-side
speakers only (scored by UA); the chosen pair is refit on the whole training side (the fold's
validation speakers included, as for the SVM) and tested once. The records say which layer
each fold chose (``chosen_params``). Needs scikit-learn (``pip install 'emofuse[baseline]'``).

With ``per_speaker`` (the system ``whisper-lr-speaker``), each speaker's pooled features are
first standardised with that speaker's own statistics, over all of the speaker's utterances and
without their labels (docs/design.md §8.2). This uses the test speakers' unlabelled audio at test
time: it measures what unlabelled adaptation to a known speaker can give (as ``emofuse adapt``
on one speaker's recordings), not a model that meets each speaker cold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from emofuse.corpora import Utterance
from emofuse.experiments.records import FoldRecord
from emofuse.experiments.scoring import scored_record
from emofuse.experiments.splits import speaker_key
from emofuse.features import FeatureSpec, feature_spec

if TYPE_CHECKING:
    from emofuse.experiments.loading import Experiment, Features

__all__ = [
    "C_GRID",
    "MAX_CANDIDATE_LAYER",
    "encoder_feature",
    "pooled_layers",
    "per_speaker_standardised",
    "run_lr_fold",
]

C_GRID = (0.01, 0.1, 1.0)
MAX_CANDIDATE_LAYER = 5  # layers 1..5 of Whisper base; the last scored lower (docs/design.md §4.4)


def encoder_feature(features: Sequence[FeatureSpec]) -> FeatureSpec:
    """The config's Whisper feature (Whisper base when it has none) with the candidate layers:
    1 up to the encoder's last but one, at most :data:`MAX_CANDIDATE_LAYER`."""
    spec = next((s for s in features if s.kind == "whisper"), None)
    settings = dict(spec.settings) if spec else {}
    n_layers = settings.get("n_layers", 6)
    deepest = max(1, min(MAX_CANDIDATE_LAYER, n_layers - 1))  # a 1-layer encoder: layer 1
    settings["layers"] = list(range(1, deepest + 1))
    return feature_spec("whisper", name="whisper", **settings)


def pooled_layers(features: Features, name: str, width: int) -> dict[str, np.ndarray]:
    """Per utterance path: mean and std over frames of each layer, (layers, 2 W)."""
    pooled = {}
    for path, arrays in features.arrays.items():
        frames = arrays[name]  # (layers * W, T)
        layers = frames.reshape(-1, width, frames.shape[-1])  # (L, W, T)
        pooled[path] = np.concatenate([layers.mean(-1), layers.std(-1)], axis=1)  # (L, 2W)
    return pooled


def per_speaker_standardised(
    pooled: dict[str, np.ndarray], utterances: Sequence[Utterance]
) -> dict[str, np.ndarray]:
    """``pooled`` with each speaker's utterances standardised by that speaker's mean and std
    (labels unused)."""
    by_speaker: dict[tuple[str, str], list[str]] = {}
    for u in utterances:
        by_speaker.setdefault(speaker_key(u), []).append(str(u.path))
    out = {}
    for paths in by_speaker.values():
        values = np.stack([pooled[p] for p in paths])  # (N, L, 2W)
        mean, std = values.mean(axis=0), values.std(axis=0) + 1e-6
        out.update({p: (pooled[p] - mean) / std for p in paths})
    return out


def _model(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    )


def run_lr_fold(
    experiment: Experiment,
    index: int,
    pooled: dict[str, np.ndarray],
    system: str,
    layers: Sequence[int],
) -> FoldRecord:
    """Choose layer and C on fold ``index``'s training speakers, refit, test; ``pooled`` rows
    are the encoder's ``layers``."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    began = time.perf_counter()
    fold, task = experiment.folds[index], experiment.task
    train: list[Utterance] = fold.train + fold.val + experiment.extra_train
    x_train = np.stack([pooled[str(u.path)] for u in train])  # (N, L, 2W)
    y_train = np.array([task.index(u.label) for u in train])
    groups = np.array(["/".join(speaker_key(u)) for u in train])
    if len(set(groups)) >= 2:
        inner, by = GroupKFold(n_splits=min(5, len(set(groups)))), "speaker"
    else:  # one training speaker (e.g. TESS): utterance folds are all there is
        smallest = int(np.bincount(y_train)[np.unique(y_train)].min())
        inner, by = StratifiedKFold(n_splits=max(2, min(5, smallest))), "utterance"
    best = (-1.0, 0, 0)  # (inner UA, -layer index, -C): ties go to the shallower, smaller C
    for layer in range(x_train.shape[1]):
        for c in C_GRID:
            scores = []
            for fit_idx, held_idx in inner.split(x_train, y_train, groups):
                model = _model(c).fit(x_train[fit_idx, layer], y_train[fit_idx])
                predicted = model.predict(x_train[held_idx, layer])
                scores.append(balanced_accuracy_score(y_train[held_idx], predicted))
            best = max(best, (float(np.mean(scores)), -layer, -c))
    inner_ua, layer, c = best[0], -best[1], -best[2]
    model = _model(c).fit(x_train[:, layer], y_train)
    x_test = np.stack([pooled[str(u.path)][layer] for u in fold.test])
    probabilities = np.zeros((len(x_test), task.num_classes))
    probabilities[:, model.classes_] = model.predict_proba(x_test)
    y_test = np.array([task.index(u.label) for u in fold.test])
    return scored_record(
        experiment, index, system, probabilities, y_test, [u.id for u in fold.test],
        best_epoch=None, val_ua=None,
        train_seconds=time.perf_counter() - began, history=[],
        chosen_params={"layer": layers[layer], "C": c, "inner_folds": by}, inner_cv_ua=inner_ua,
    )  # fmt: skip
