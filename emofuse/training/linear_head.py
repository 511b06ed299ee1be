"""A linear head on pooled statistics of a frozen encoder, fitted in closed form (``train.head:
logistic``): the recipe of the bundled ``accurate`` model (results/loco4/recipes.md).

The pipeline has one feature, an ``identity`` branch, no temporal layer and statistics pooling,
so its classifier reads ``[mean, std]`` over frames of the normalised frames (2 * dims values):
logistic regression on those statistics. Training standardises each utterance's frames with
the statistics of its *group* (one speaker under one recording condition): the head learns
emotion relative to the speaker's own average, not the recording's offset. The pipeline's
normaliser keeps the statistics of all training frames, the prior that a clip meets alone;
:mod:`emofuse.inference.adapt` blends it with the statistics of the user's own speech.

Class- and corpus-balanced sample weights (each corpus weighs the same, each class within the
training set too). The temperature is fitted on leave-one-corpus-out logits (each training
corpus predicted by a head fitted on the others, clip by clip): confidence calibrated for a
corpus the model has not seen. It is folded into the classifier's weights.
Needs scikit-learn (``pip install 'emofuse[baseline]'``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch

from emofuse.pipeline import EmotionPipeline

__all__ = [
    "balanced_weights",
    "check_linear_pipeline",
    "fit_logistic",
    "fit_logistic_head",
    "fit_temperature",
    "pooled_moments",
    "pooled_statistics",
    "utterance_moments",
]

UtteranceMoments = tuple[np.ndarray, np.ndarray, int]  # frame mean (dims,), variance, frames


def check_linear_pipeline(pipeline: EmotionPipeline) -> None:
    """Raise ``ValueError`` unless ``pipeline`` reads pooled statistics with a linear layer."""
    config, specs = pipeline.model_config, pipeline.net.branch_specs
    if len(specs) != 1 or specs[0].type != "identity":
        raise ValueError("train.head logistic needs one feature with branch type identity, got "
                         f"{[(s.name, s.type) for s in specs]}")  # fmt: skip
    if config.temporal != "none" or config.pooling != "stats":
        raise ValueError("train.head logistic needs model temporal: none and pooling: stats, "
                         f"got {config.temporal!r} and {config.pooling!r}")  # fmt: skip
    if 2 * config.lstm_hidden != config.d_model:
        raise ValueError(f"train.head logistic: model lstm_hidden must be d_model / 2 "
                         f"({config.d_model // 2}) so no projection sits before the pooling, "
                         f"got {config.lstm_hidden}")  # fmt: skip


def utterance_moments(frames: np.ndarray) -> UtteranceMoments:
    """Raw frames (dims, T) -> per-row mean and variance over frames (float64), and T. Enough
    to pool the utterance under any normalisation (:func:`pooled_statistics`)."""
    x = frames.astype(np.float64)
    return x.mean(1), x.var(1), x.shape[1]


def pooled_moments(moments: Sequence[UtteranceMoments]) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and std over all frames of several utterances, and their frame count."""
    count = sum(n for _, _, n in moments)
    mean = sum(m * n for m, _, n in moments) / count
    second = sum((v + m**2) * n for m, v, n in moments) / count
    return mean, np.sqrt(np.maximum(second - mean**2, 1e-8)), count


def pooled_statistics(moments: UtteranceMoments, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Mean and std over frames of the utterance's ``(frames - mean) / std`` (2 * dims,), as
    the pipeline's statistics pooling computes them."""
    frame_mean, frame_var, _ = moments
    return np.concatenate([(frame_mean - mean) / std, np.sqrt(frame_var / std**2 + 1e-6)])


def balanced_weights(labels: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Sample weights (N,), mean 1, giving every class and every stratum (corpus) equal weight.

    >>> balanced_weights(np.array([0, 0, 0, 1]), np.zeros(4)).round(3).tolist()
    [0.667, 0.667, 0.667, 2.0]
    """
    weights = np.ones(labels.size)
    for values in (labels, strata):
        for value in np.unique(values):
            weights[values == value] /= np.mean(values == value)
    return weights / weights.mean()


def fit_logistic(
    x: np.ndarray, labels: np.ndarray, strata: np.ndarray, n_classes: int, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on standardised ``x`` -> weights (C, D), bias (C,) on raw ``x``."""
    from sklearn.linear_model import LogisticRegression

    center, scale = x.mean(0), x.std(0) + 1e-6
    model = LogisticRegression(C=c, max_iter=3000)
    model.fit((x - center) / scale, labels, sample_weight=balanced_weights(labels, strata))
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, -1e4)  # a class never trained on is never predicted
    if len(model.classes_) == 2:  # sklearn's binary form: one row for the second class
        coef, intercept = (
            np.vstack([-model.coef_, model.coef_]) / 2,
            np.r_[-1, 1] * model.intercept_ / 2,
        )
    else:
        coef, intercept = model.coef_, model.intercept_
    weight[model.classes_] = coef / scale
    bias[model.classes_] = intercept - (coef / scale) @ center
    return weight, bias


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """The temperature T minimising the (``weights``-weighted) negative log-likelihood of
    ``softmax(logits / T)`` (grid search over log T in [-2, 3], then refined)."""
    z, y = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels)
    w = torch.ones(len(y), dtype=torch.float64) if weights is None else torch.as_tensor(weights)

    def nll(log_t: float) -> float:
        losses = torch.nn.functional.cross_entropy(z / np.exp(log_t), y, reduction="none")
        return float((losses * w).sum() / w.sum())

    grid = np.linspace(-2, 3, 101)
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = np.linspace(best - 0.05, best + 0.05, 21)
    return float(np.exp(fine[int(np.argmin([nll(t) for t in fine]))]))


def fit_logistic_head(
    pipeline: EmotionPipeline,
    moments: Sequence[UtteranceMoments],
    labels: Sequence[int],
    groups: Sequence[Hashable],
    strata: Sequence[str],
    *,
    c: float = 1e-3,
    calibrate: Sequence[bool] | None = None,
) -> dict:
    """Fit ``pipeline``'s normaliser (all frames: the prior) and classifier in place.

    Args:
        moments: :func:`utterance_moments` of the feature's raw frames, one per utterance.
        labels: class indices. groups: normalisation group of each (speaker and condition).
        strata: corpus of each, for balancing and the leave-one-corpus-out temperature.
        c: inverse regularisation of the logistic regression.
        calibrate: which utterances the temperature is fitted on when held out (default
            all; the trainer passes the original recordings, not the degraded copies), each
            corpus weighing the same.

    Returns a report: ``temperature``, its ``calibration_corpora`` and their held-out UA.
    """
    check_linear_pipeline(pipeline)
    labels, strata = np.asarray(labels), np.asarray(strata)
    n_classes = pipeline.model_config.n_classes
    members: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    x = np.empty((len(moments), 2 * moments[0][0].size))
    for indices in members.values():
        mean, std, _ = pooled_moments([moments[i] for i in indices])
        for i in indices:
            x[i] = pooled_statistics(moments[i], mean, std)
    chosen = np.ones(len(labels), bool) if calibrate is None else np.asarray(calibrate, bool)
    held_logits, held_labels, held_ua = [], [], {}
    corpora = sorted(set(strata))
    for corpus in corpora if len(corpora) > 1 else []:
        inside = strata != corpus
        weight, bias = fit_logistic(x[inside], labels[inside], strata[inside], n_classes, c)
        mean, std, _ = pooled_moments([moments[i] for i in np.flatnonzero(inside)])
        held = np.flatnonzero(~inside & chosen)
        if not held.size:
            continue
        z = np.stack([pooled_statistics(moments[i], mean, std) for i in held]) @ weight.T + bias
        held_logits.append(z)
        held_labels.append(labels[held])
        present = np.unique(labels[held])
        held_ua[corpus] = float(np.mean([np.mean(z[labels[held] == k].argmax(1) == k)
                                         for k in present]))  # fmt: skip
    temperature = 1.0
    if held_logits:  # each held-out corpus weighs the same
        weights = np.concatenate([np.full(len(y), 1 / len(y)) for y in held_labels])
        temperature = fit_temperature(np.concatenate(held_logits), np.concatenate(held_labels),
                                      weights)  # fmt: skip
    weight, bias = fit_logistic(x, labels, strata, n_classes, c)
    mean, std, count = pooled_moments(moments)
    sums, squares = mean * count, (std**2 + mean**2) * count
    pipeline.normalizers[pipeline.names[0]].fit(
        torch.from_numpy(sums), torch.from_numpy(squares), count
    )
    with torch.no_grad():
        classifier = pipeline.net.classifier
        classifier.weight.copy_(torch.from_numpy(weight / temperature).float())
        classifier.bias.copy_(torch.from_numpy(bias / temperature).float())
    return {"temperature": round(temperature, 4), "calibration_corpora": corpora,
            "leave_one_corpus_out_ua": {k: round(v, 4) for k, v in held_ua.items()}}  # fmt: skip
