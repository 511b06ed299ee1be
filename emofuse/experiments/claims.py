"""The paper's claims tested on the comparison's runs: per corpus and pooled across corpora.

:func:`paired_claims` pairs, for every claim of :data:`~emofuse.experiments.variants.CLAIMS`
whose two variants ran, the per-fold UA of both systems on one corpus (matched by seed and fold
index) and tests the differences (:func:`~emofuse.experiments.stats.paired_comparison`);
:func:`pooled_claims` combines the per-corpus mean differences across corpora
(:func:`~emofuse.experiments.stats.meta_analysis`). Each comparison carries a sentence saying
whether the claim holds. Used by :mod:`emofuse.experiments.compare` for ``table.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from emofuse.experiments.stats import (
    MIN_CORPORA,
    MIN_FOLDS,
    meta_analysis,
    paired_comparison,
    pooled_verdict,
)
from emofuse.experiments.variants import CLAIMS

__all__ = ["NO_RESULTS", "Summaries", "fold_results", "paired_claims", "pooled_claims"]

Summaries = dict[tuple[str, str, int], dict]  # (corpus, variant, seed) -> run_crossval summary

# The pooled verdicts of a claim comparison no corpus has finished runs of.
NO_RESULTS = "not shown (no results yet)"


def fold_results(
    summaries: Summaries, corpus: str, variant: str, seeds: Sequence[int]
) -> list[tuple[int, dict]]:
    """(seed, per-fold summary) of every finished fold of one corpus and variant."""
    return [
        (seed, fold)
        for seed in seeds
        if (corpus, variant, seed) in summaries
        for fold in summaries[(corpus, variant, seed)]["folds"]
    ]


def _claim_sentence(claim: dict) -> str:
    head = (
        f'On {claim["corpus"]}, claim ({claim["claim"]}) "{claim["statement"]}" '
        f"({claim['system']} vs {claim['baseline']})"
    )
    stats = (
        f"mean UA difference {100 * claim['mean_diff']:+.1f} points, 95% CI "
        f"[{100 * claim['ci_low']:+.1f}, {100 * claim['ci_high']:+.1f}], sign test "
        f"p = {claim['sign_test_p']:.3g}, {claim['n_pairs']} pairs"
    )
    verdict = claim["verdict"]
    if verdict == "holds":
        return f"{head} holds: {claim['system']} is better ({stats})."
    if verdict == "contradicted":
        return f"{head} is contradicted: {claim['baseline']} is better ({stats})."
    if claim["n_folds"] < MIN_FOLDS:
        return f"{head} is not shown: {claim['n_folds']} folds are too few to judge ({stats})."
    return f"{head} is not shown: the difference is within noise ({stats})."


def paired_claims(
    summaries: Summaries, corpora: Sequence[str], variants: Sequence[str], seeds: Sequence[int]
) -> list[dict]:
    """Every claim whose two variants both ran, per corpus with paired folds."""
    claims = []
    for claim_id, statement, better, worse in CLAIMS:
        if better not in variants or worse not in variants:
            continue
        for corpus in corpora:
            ua = {
                variant: {
                    (seed, f["fold"]): f["ua"]
                    for seed, f in fold_results(summaries, corpus, variant, seeds)
                }
                for variant in (better, worse)
            }
            stats = paired_comparison(ua[better], ua[worse])
            if stats is None:
                continue
            claim = {"claim": claim_id, "statement": statement, "corpus": corpus,
                     "system": better, "baseline": worse, **stats}  # fmt: skip
            claim["sentence"] = _claim_sentence(claim)
            claims.append(claim)
    return claims


def _left_out(claim: dict) -> str | None:
    """Why one corpus's comparison stays out of the pooled mean; None when it enters."""
    if claim["n_folds"] < MIN_FOLDS:
        return f"{claim['n_folds']} folds"
    if not claim["se"]:
        return "no spread over folds"
    return None


def _pooled_sentence(pooled: dict) -> str:
    head = (
        f'Across corpora, claim ({pooled["claim"]}) "{pooled["statement"]}" '
        f"({pooled['system']} vs {pooled['baseline']})"
    )
    left = f"; left out: {', '.join(pooled['left_out'])}" if pooled["left_out"] else ""
    if pooled["verdict"] == NO_RESULTS:
        return f"{head} has no results yet: no corpus has finished runs of both systems."
    if pooled["n_corpora"] == 0:
        return f"{head} is not pooled{left}."
    if pooled["n_corpora"] == 1:
        return (
            f"{head} is not shown: it rests on one corpus, {pooled['corpora'][0]} (see its row "
            f"above), and one corpus gives no verdict across corpora{left}."
        )
    fixed = (
        f"fixed-effect mean UA difference {100 * pooled['fixed_mean']:+.1f} points, 95% CI "
        f"[{100 * pooled['fixed_ci_low']:+.1f}, {100 * pooled['fixed_ci_high']:+.1f}]"
    )
    random = (
        f"random-effects mean {100 * pooled['mean_diff']:+.1f} points, Hartung-Knapp 95% CI "
        f"[{100 * pooled['ci_low']:+.1f}, {100 * pooled['ci_high']:+.1f}], tau^2 "
        f"{1e4 * pooled['tau2']:.1f} points^2, I^2 {100 * pooled['i2']:.0f}%"
    )
    return (
        f"{head}, over {pooled['n_corpora']} corpora ({', '.join(pooled['corpora'])}{left}): on "
        f"these corpora it {_verdict_phrase(pooled['fixed_verdict'], pooled)} ({fixed}); on a "
        f"new corpus it {_verdict_phrase(pooled['verdict'], pooled)} ({random})."
    )


def _verdict_phrase(verdict: str, pooled: dict) -> str:
    if verdict == "holds":
        return f"holds, {pooled['system']} is better"
    if verdict == "contradicted":
        return f"is contradicted, {pooled['baseline']} is better"
    return "is not shown, the difference is within noise"


def pooled_claims(claims: list[dict], systems: Sequence[str]) -> list[dict]:
    """Per claim comparison of ``CLAIMS`` whose two variants are in ``systems`` (with results
    or not): the random-effects mean of its per-corpus mean differences (``claims``) over the
    corpora with at least ``MIN_FOLDS`` folds; no numbers from fewer than ``MIN_CORPORA`` such
    corpora (one corpus is not pooled), the effect expected on a new corpus (``verdict``); and
    their fixed-effect mean, the average effect on these corpora (``fixed_verdict``)."""
    pooled = []
    for claim_id, statement, better, worse in CLAIMS:
        if better not in systems or worse not in systems:
            continue
        per_corpus = [c for c in claims if (c["claim"], c["system"], c["baseline"])
                      == (claim_id, better, worse)]  # fmt: skip
        reasons = [(c, _left_out(c)) for c in per_corpus]
        used = [c for c, reason in reasons if reason is None]
        estimates, errors = [c["mean_diff"] for c in used], [c["se"] for c in used]
        meta = meta_analysis(estimates, errors) if len(used) >= MIN_CORPORA else {}
        entry = {
            "claim": claim_id, "statement": statement, "system": better, "baseline": worse,
            "corpora": [c["corpus"] for c in used],
            "left_out": [f"{c['corpus']} ({reason})" for c, reason in reasons if reason],
            "n_corpora": len(used), "mean_diff": meta.get("mean"),
            **{k: meta.get(k) for k in ("se", "ci_low", "ci_high", "tau2", "i2", "q")},
            "verdict": pooled_verdict(len(used), meta.get("ci_low"), meta.get("ci_high"))
            if per_corpus else NO_RESULTS,
            "fixed_mean": meta.get("fixed"), "fixed_ci_low": meta.get("fixed_low"),
            "fixed_ci_high": meta.get("fixed_high"),
            "fixed_verdict": pooled_verdict(len(used), meta.get("fixed_low"),
                                            meta.get("fixed_high"))
            if per_corpus else NO_RESULTS,
        }  # fmt: skip
        entry["sentence"] = _pooled_sentence(entry)
        pooled.append(entry)
    return pooled
