"""Paired statistics of per-fold UA and the random-effects mean over corpora (stats.py)."""

from __future__ import annotations

import math

import pytest

from emofuse.experiments.stats import (
    Z_95,
    bootstrap_interval,
    fold_standard_error,
    meta_analysis,
    paired_comparison,
    pooled_verdict,
    sign_test,
)


def test_sign_test_on_known_inputs():
    assert sign_test([0.1] * 8) == pytest.approx(2 / 256)
    assert sign_test([-0.1] * 8) == pytest.approx(2 / 256)
    assert sign_test([0.1] * 8 + [0.0, 0.0]) == pytest.approx(2 / 256)  # ties dropped
    assert sign_test([1.0] * 9 + [-1.0]) == pytest.approx(2 * 11 / 1024)
    assert sign_test([1.0, 1.0, -1.0, 0.0]) == 1.0  # 2 * (1 + 3) / 8, capped
    assert sign_test([0.0, 0.0, 0.0]) == 1.0
    assert sign_test([]) == 1.0


def test_bootstrap_interval_on_known_inputs():
    assert bootstrap_interval([0.02] * 6) == pytest.approx((0.02, 0.02))
    low, high = bootstrap_interval([0.01, 0.02, 0.03, 0.04, 0.05])
    assert 0.01 <= low < 0.03 < high <= 0.05
    assert bootstrap_interval([0.01, 0.02, 0.03, 0.04, 0.05]) == (low, high)  # seeded
    spread = bootstrap_interval([1.0, -1.0, 1.0, -1.0])
    assert spread[0] < 0 < spread[1]
    # Resampling whole groups: both groups average to 0, so every resample does.
    assert bootstrap_interval([1.0, -1.0, 1.0, -1.0], groups=[0, 0, 1, 1]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="groups has 1 entries for 2"):
        bootstrap_interval([1.0, 2.0], groups=[0])


def test_paired_comparison_verdicts():
    keys = [(seed, fold) for seed in (0, 1) for fold in range(5)]
    worse = {k: 0.5 for k in keys}
    better = {k: 0.5 + 0.01 * (1 + k[1]) for k in keys}
    stats = paired_comparison(better, worse)
    assert stats["n_pairs"] == 10 and stats["n_folds"] == 5
    assert stats["mean_diff"] == pytest.approx(0.03)
    assert stats["sign_test_p"] == pytest.approx(2 / 1024) and stats["verdict"] == "holds"
    assert paired_comparison(worse, better)["verdict"] == "contradicted"
    noisy = {k: 0.5 + (0.05 if k[1] % 2 else -0.05) for k in keys}
    assert paired_comparison(noisy, worse)["verdict"] == "not shown (difference within noise)"
    one_fold = paired_comparison({(0, 0): 0.9, (1, 0): 0.8}, {(0, 0): 0.1, (1, 0): 0.1})
    assert one_fold["verdict"] == "not shown (fewer than 5 folds)"
    four = paired_comparison({(0, f): 0.9 for f in range(4)}, {(0, f): 0.1 for f in range(4)})
    assert four["verdict"] == "not shown (fewer than 5 folds)" and four["ci_low"] > 0
    assert paired_comparison({(0, 0): 0.9}, {(1, 0): 0.1}) is None  # nothing matched


def test_paired_comparison_standard_error_averages_the_seeds_of_a_fold_first():
    # fold f: seed 0 differs by f, seed 1 by f + 2 -> fold means 1, 2, 3, 4, 5
    better = {(seed, f): 0.5 + f + 2 * seed for seed in (0, 1) for f in range(5)}
    worse = {k: 0.5 for k in better}
    stats = paired_comparison(better, worse)
    assert stats["se"] == pytest.approx(math.sqrt(2.5) / math.sqrt(5))  # not over 10 pairs
    assert fold_standard_error([0.3, 0.1], [0, 0]) is None  # one fold: no spread to measure
    assert paired_comparison({(0, 0): 0.9}, {(0, 0): 0.1})["se"] is None


def test_meta_analysis_against_hand_computed_dersimonian_laird():
    # y = (0, 4), se = (1, 2): w = (1, 1/4), fixed mean 0.8, Q = 0.64 + 2.56 = 3.2 on 1 df,
    # C = 1.25 - 1.0625 / 1.25 = 0.4, tau^2 = (3.2 - 1) / 0.4 = 5.5, I^2 = 2.2 / 3.2;
    # weights 1 / 6.5 and 1 / 9.5 sum to 64/247: mean (4 / 9.5) / (64 / 247) = 13/8.
    # Hartung-Knapp: sum w* (y - mean)^2 = (13/8)^2 / 6.5 + (19/8)^2 / 9.5 = 1 on 1 df, so the
    # half-width is t(1) = 12.7062 times se.
    m = meta_analysis([0.0, 4.0], [1.0, 2.0])
    se = math.sqrt(247 / 64)
    half = 12.706205 * se
    assert m == pytest.approx({"n": 2, "mean": 1.625, "se": se, "ci_low": 1.625 - half,
                               "ci_high": 1.625 + half, "normal_low": 1.625 - Z_95 * se,
                               "normal_high": 1.625 + Z_95 * se, "tau2": 5.5, "i2": 0.6875,
                               "q": 3.2, "fixed": 0.8, "fixed_low": 0.8 - Z_95 / math.sqrt(1.25),
                               "fixed_high": 0.8 + Z_95 / math.sqrt(1.25)})  # fmt: skip
    assert Z_95 == pytest.approx(1.959964, abs=1e-6)
    # Three corpora, equal errors: Q = 8 on 2 df, C = 2, tau^2 = 3, weights 1/4 each.
    m = meta_analysis([0.0, 2.0, 4.0], [1.0, 1.0, 1.0])
    assert (m["mean"], m["tau2"], m["i2"], m["q"]) == pytest.approx((2.0, 3.0, 0.75, 8.0))
    assert m["se"] == pytest.approx(math.sqrt(4 / 3))
    # sum w* (y - mean)^2 / 2 = (4 + 0 + 4) / 4 / 2 = 1: half-width t(2) = 4.302653 times se
    assert m["ci_high"] - m["mean"] == pytest.approx(4.302653 * math.sqrt(4 / 3))
    # the fixed-effect mean of these corpora: same mean, error 1 / sqrt(3), far narrower
    assert m["fixed"] == pytest.approx(2.0)
    assert m["fixed_high"] - m["fixed"] == pytest.approx(Z_95 / math.sqrt(3))


def test_hartung_knapp_widens_when_corpora_disagree_beyond_tau():
    # tau^2 = 0 (Q < df) but the weighted spread is below 1: the modified interval never
    # falls under the t interval of the plain standard error
    m = meta_analysis([1.0, 3.0], [1.0, 2.0])
    assert m["ci_high"] - m["mean"] == pytest.approx(12.706205 * m["se"])


def test_meta_analysis_without_between_corpus_variance():
    # Q = 0.16 + 0.64 = 0.8 < 1 df: tau^2 = 0, I^2 = 0, the fixed-effect mean and error
    m = meta_analysis([1.0, 3.0], [1.0, 2.0])
    assert (m["mean"], m["se"], m["tau2"], m["i2"]) == pytest.approx((1.4, math.sqrt(0.8), 0, 0))
    # identical differences: Q = 0 exactly, I^2 = 0 (not 0 / 0)
    m = meta_analysis([0.05, 0.05, 0.05], [0.01, 0.02, 0.02])
    assert (m["mean"], m["q"], m["tau2"], m["i2"]) == pytest.approx((0.05, 0.0, 0.0, 0.0))
    assert m["se"] == pytest.approx(1 / math.sqrt(1e4 + 2 * 2500))


def test_meta_analysis_refuses_one_corpus_and_bad_errors():
    with pytest.raises(ValueError, match="need 2\\+ estimates"):
        meta_analysis([0.05], [0.01])  # one corpus: nothing between corpora to estimate
    with pytest.raises(ValueError, match="one standard error each"):
        meta_analysis([0.05, 0.02], [0.01])
    with pytest.raises(ValueError, match="positive and finite"):
        meta_analysis([0.05, 0.02], [0.01, 0.0])
    with pytest.raises(ValueError, match="positive and finite"):
        meta_analysis([0.05, 0.02], [0.01, float("nan")])


def test_pooled_verdict():
    assert pooled_verdict(2, 0.01, 0.05) == "holds"
    assert pooled_verdict(3, -0.05, -0.01) == "contradicted"
    assert pooled_verdict(2, -0.01, 0.05) == "not shown (difference within noise)"
    assert pooled_verdict(1, None, None) == "not shown (fewer than 2 corpora)"
    assert pooled_verdict(0, None, None) == "not shown (fewer than 2 corpora)"
