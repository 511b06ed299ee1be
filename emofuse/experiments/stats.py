"""Paired statistics of per-fold UA: sign test, fold bootstrap interval, a claim's verdict, and
the random-effects mean of one claim over several corpora.

Two systems tested on the same folds (and seeds) give one UA difference per (seed, fold) pair.
:func:`paired_comparison` reports their mean, a two-sided exact sign test, a percentile
bootstrap 95% interval that resamples whole folds, the standard error of the mean over folds
and a verdict: "holds" when the mean difference is positive and the interval excludes 0,
"contradicted" when negative and excluding 0, else "not shown" (also with fewer than
``MIN_FOLDS`` folds).

:func:`meta_analysis` pools per-corpus mean differences, each with its standard error, into a
random-effects mean (DerSimonian-Laird variance, Hartung-Knapp interval: the effect on a new
corpus) and a fixed-effect mean (the average effect on these corpora); :func:`pooled_verdict`
judges either like one corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["N_RESAMPLES", "MIN_FOLDS", "MIN_CORPORA", "Z_95", "sign_test", "bootstrap_interval",
           "verdict", "fold_standard_error", "paired_comparison", "meta_analysis",
           "pooled_verdict"]  # fmt: skip

N_RESAMPLES = 10_000
# A bootstrap over very few folds has few distinct resamples and too narrow an interval
# (3 folds agreeing give a point interval): below this, no verdict.
MIN_FOLDS = 5
# A pooled verdict needs a between-corpus comparison: one corpus is reported as such.
MIN_CORPORA = 2
Z_95 = NormalDist().inv_cdf(0.975)  # 1.96: the normal 97.5% quantile


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


def _group_sums(values: np.ndarray, keys: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of ``values`` per distinct key, in sorted key order."""
    _, inverse = np.unique(np.asarray(keys), return_inverse=True)
    return np.bincount(inverse, weights=values), np.bincount(inverse).astype(float)


def fold_standard_error(differences: Sequence[float], folds: Sequence[object]) -> float | None:
    """Standard error of the mean over folds: the seeds of each fold are averaged first (they
    share the fold's test speakers, so they are not independent draws), then the fold means'
    sample standard deviation (ddof 1) over the square root of the number of folds. None with
    a single fold.

    >>> fold_standard_error([1.0, 3.0, 5.0, 7.0], [0, 0, 1, 1])  # fold means 2 and 6
    2.0
    """
    sums, counts = _group_sums(np.asarray(differences, dtype=float), folds)
    if sums.size < 2:
        return None
    means = sums / counts
    return float(means.std(ddof=1) / math.sqrt(means.size))


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
    sums, counts = _group_sums(d, keys)
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

    The bootstrap resamples folds (with all their seeds); the sign test counts every pair;
    ``se`` is :func:`fold_standard_error` (None with one fold). Finished runs are complete, so
    every fold has the same seeds and the mean over pairs equals the mean of the fold means.
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
        "se": fold_standard_error(d, folds),
        "sign_test_p": sign_test(d),
        "n_positive": int((d > 0).sum()),
        "n_negative": int((d < 0).sum()),
        "n_ties": int((d == 0).sum()),
        "verdict": verdict(mean, low, high, len(set(folds))),
        "differences": [
            {"seed": s, "fold": f, "ua_diff": float(v)} for (s, f), v in zip(keys, d, strict=True)
        ],
    }


def meta_analysis(estimates: Sequence[float], standard_errors: Sequence[float]) -> dict:
    """Random-effects and fixed-effect means of ``MIN_CORPORA`` or more per-corpus
    ``estimates`` with their ``standard_errors`` (positive): DerSimonian-Laird between-corpus
    variance, Hartung-Knapp interval.

    Fixed-effect weights w = 1 / se^2 give the fixed-effect mean y_fixed = sum w y / sum w, the
    weighted average of these corpora's own effects, with its normal interval (``fixed``,
    ``fixed_low``/``fixed_high``: it speaks of these corpora only), and Cochran's
    Q = sum w (y - y_fixed)^2 over k corpora. The between-corpus variance is
    tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w)); the random-effects mean, the
    effect expected on a new corpus, weighs each corpus by w* = 1 / (se^2 + tau^2) and its
    standard error is ``se`` = 1 / sqrt(sum w*). Its 95% interval is the modified
    Hartung-Knapp(-Sidik-Jonkman) one: mean +- t(k - 1) x se x
    sqrt(max(1, sum w* (y - mean)^2 / (k - 1))), which keeps its coverage with few corpora,
    where the normal interval (``normal_low``/``normal_high``, mean +- 1.96 se) is too narrow;
    with 2 corpora t(1) = 12.7, so only a large, consistent effect excludes 0.
    I^2 = (Q - (k - 1)) / Q, at least 0 (0 when Q = 0). One corpus has no
    between-corpus variance to estimate: refused.

    >>> m = meta_analysis([0.0, 4.0], [1.0, 2.0])
    >>> [round(m[key], 4) for key in ("mean", "tau2", "i2", "q", "ci_high", "fixed", "fixed_high")]
    [1.625, 5.5, 0.6875, 3.2, 26.5867, 0.8, 2.553]
    """
    from scipy.stats import t as student_t

    y, se = np.asarray(estimates, dtype=float), np.asarray(standard_errors, dtype=float)
    if y.ndim != 1 or y.size < MIN_CORPORA or se.shape != y.shape:
        raise ValueError(
            f"need {MIN_CORPORA}+ estimates, one standard error each; got {se.shape} for {y.shape}"
        )
    if not (np.isfinite(se).all() and (se > 0).all() and np.isfinite(y).all()):
        raise ValueError(f"standard errors must be positive and finite, got {se.tolist()}")
    k, v = y.size, se**2
    w = 1 / v
    fixed = float((w * y).sum() / w.sum())
    fixed_half = Z_95 / math.sqrt(w.sum())
    q = float((w * (y - fixed) ** 2).sum())
    tau2 = max(0.0, float((q - (k - 1)) / (w.sum() - (w**2).sum() / w.sum())))
    w_random = 1 / (v + tau2)
    mean = float((w_random * y).sum() / w_random.sum())
    se_mean = float(1 / math.sqrt(w_random.sum()))
    spread = float((w_random * (y - mean) ** 2).sum() / (k - 1))
    half = float(student_t.ppf(0.975, k - 1)) * se_mean * math.sqrt(max(1.0, spread))
    return {"n": k, "mean": mean, "se": se_mean, "ci_low": mean - half, "ci_high": mean + half,
            "normal_low": mean - Z_95 * se_mean, "normal_high": mean + Z_95 * se_mean,
            "tau2": tau2, "i2": max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
            "q": q, "fixed": fixed, "fixed_low": fixed - fixed_half,
            "fixed_high": fixed + fixed_half}  # fmt: skip


def pooled_verdict(n_corpora: int, low: float | None, high: float | None) -> str:
    """A claim's verdict across corpora from the pooled interval: "holds" above 0,
    "contradicted" below, else "not shown" (always with fewer than ``MIN_CORPORA`` corpora,
    which have no interval)."""
    if n_corpora < MIN_CORPORA:
        return f"not shown (fewer than {MIN_CORPORA} corpora)"
    if low > 0:
        return "holds"
    if high < 0:
        return "contradicted"
    return "not shown (difference within noise)"
