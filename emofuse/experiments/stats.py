"""Paired statistics of per-fold UA: sign test, fold bootstrap interval and a claim's verdict.

Two systems tested on the same folds (and seeds) give one UA difference per (seed, fold) pair.
:func:`paired_comparison` reports their mean, a two-sided exact sign test, a percentile
bootstrap 95% interval that resamples whole folds and a verdict: "holds" when the mean
difference is positive and the interval excludes 0, "contradicted" when negative and excluding
0, else "not shown" (also with fewer than ``MIN_FOLDS`` folds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["N_RESAMPLES", "MIN_FOLDS", "sign_test", "bootstrap_interval", "verdict",
           "paired_comparison"]  # fmt: skip

N_RESAMPLES = 10_000
# A bootstrap over very few folds has few distinct resamples and too narrow an interval
# (3 folds agreeing give a point interval): below this, no verdict.
MIN_FOLDS = 5


def sign_test(differences: Sequence[float]) -> float:
    """Two-sided exact sign test p-value (binomial, p = 1/2); zero differences are dropped.

    >>> sign_test([1.0] * 8) == 2 / 256
    True
    >>> sign_test([0.0, 0.0])
    1.0
    """
    d = np.asarray(differences, dtype=float)
    positive, negative = int((d > 0).sum()), int((d < 0).sum())
    n = positive + negative
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(positive, negative) + 1))
    return min(1.0, 2 * tail / 2**n)


def bootstrap_interval(
    differences: Sequence[float],
    *,
    groups: Sequence[object] | None = None,
    level: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences``.

    With ``groups``, whole groups are resampled (a cluster bootstrap): the differences of one
    fold under several seeds share their test speakers, so they are not independent draws.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"need a non-empty 1-D list of differences, got shape {d.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    keys = np.arange(d.size) if groups is None else np.asarray(groups)
    if keys.shape != d.shape:
        raise ValueError(f"groups has {keys.size} entries for {d.size} differences")
    _, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=d)
    counts = np.bincount(inverse).astype(float)
    picks = np.random.default_rng(seed).integers(0, sums.size, size=(n_resamples, sums.size))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    tail = 50 * (1 - level)
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def verdict(mean: float, low: float, high: float, n_groups: int) -> str:
    """The claim's verdict from the mean difference, its interval and the number of folds."""
    if n_groups < MIN_FOLDS:
        return f"not shown (fewer than {MIN_FOLDS} folds)"
    if mean > 0 and low > 0:
        return "holds"
    if mean < 0 and high < 0:
        return "contradicted"
    return "not shown (difference within noise)"


def paired_comparison(
    better: dict[tuple[int, int], float], worse: dict[tuple[int, int], float]
) -> dict | None:
    """Statistics of ``better - worse`` over the (seed, fold) keys both have; None if none.

    The bootstrap resamples folds (with all their seeds); the sign test counts every pair.
    """
    keys = sorted(set(better) & set(worse))
    if not keys:
        return None
    d = np.array([better[k] - worse[k] for k in keys])
    folds = [fold for _, fold in keys]
    low, high = bootstrap_interval(d, groups=folds)
    mean = float(d.mean())
    return {
        "n_pairs": len(keys),
        "n_folds": len(set(folds)),
        "mean_diff": mean,
        "ci_low": low,
        "ci_high": high,
        "sign_test_p": sign_test(d),
        "n_positive": int((d > 0).sum()),
        "n_negative": int((d < 0).sum()),
        "n_ties": int((d == 0).sum()),
        "verdict": verdict(mean, low, high, len(set(folds))),
        "differences": [
            {"seed": s, "fold": f, "ua_diff": float(v)} for (s, f), v in zip(keys, d, strict=True)
        ],
    }
