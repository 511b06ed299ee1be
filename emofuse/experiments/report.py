"""Markdown reports and figures of finished experiments (the numbers come from the callers).

- :func:`crossval_markdown`: ``summary.md`` of one cross-validation run;
- :func:`ensemble_markdown`: ``summary.md`` of an ensemble of runs;
- :func:`table_markdown`: ``table.md`` of a comparison (systems x corpora with their costs, the
  claims per corpus and across corpora, the missing runs with their estimated cost);
- :func:`write_figures`: ``confusion.png`` and, for trained networks, ``learning_curves.png``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emofuse.experiments.records import FoldRecord
from emofuse.experiments.stats import MIN_CORPORA, MIN_FOLDS, N_RESAMPLES

if TYPE_CHECKING:
    from emofuse.experiments.loading import Experiment

__all__ = ["crossval_markdown", "ensemble_markdown", "table_markdown", "write_figures"]


def _pct(value: float, spread: float | None = None) -> str:
    """0.6234 -> '62.3'; with a spread, '62.3 +- 4.1'."""
    text = f"{100 * value:.1f}"
    return text if spread is None else f"{text} +- {100 * spread:.1f}"


def _or_dash(value: object, show: Callable[[float], str] = str) -> str:
    return "-" if value is None else show(value)


def crossval_markdown(summary: dict, experiment: Experiment, seed: int) -> str:
    """``summary.md`` of a cross-validation run: one row per fold, mean +- std and pooled."""
    overlap = summary["speaker_overlap"]
    lines = [
        f"# Cross-validation of {summary['system']}: {experiment.corpus}, "
        f"task {experiment.task.name}",
        "",
        f"Protocol **{experiment.protocol}**"
        + (
            " (RANDOM, SPEAKER-OVERLAPPING: not speaker-independent)"
            if overlap
            else " (speaker-independent)"
        )
        + f", {len(summary['folds'])} of {len(experiment.folds)} folds, seed {seed}, "
        f"classes: {', '.join(experiment.task.labels)}.",
        "",
        "| fold | test speakers | n | WA % | UA % | macro-F1 % | epoch | val UA % | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in summary["folds"]:
        speakers = " ".join(s.split(":", 1)[1] for s in f["test_speakers"])
        lines.append(
            f"| {f['fold']} | {speakers} | {f['n_test']} | {_pct(f['wa'])} | {_pct(f['ua'])} "
            f"| {_pct(f['macro_f1'])} | {_or_dash(f['best_epoch'])} "
            f"| {_or_dash(f['val_ua'], _pct)} "
            f"| {f['train_seconds']:.0f} |"
        )
    m, s, p = summary["mean"], summary["std"], summary["pooled"]
    lines += [
        f"| **mean +- std** | | | **{_pct(m['wa'], s['wa'])}** | **{_pct(m['ua'], s['ua'])}** "
        f"| {_pct(m['macro_f1'], s['macro_f1'])} | | | {summary['train_seconds']:.0f} |",
        f"| pooled | | {p['n']} | {_pct(p['wa'])} | {_pct(p['ua'])} | {_pct(p['macro_f1'])} "
        "| | | |",
        "",
        "UA per fold averages recall over the classes present in that fold's test set.",
    ]
    if experiment.extra_train:
        extra = sorted({u.corpus for u in experiment.extra_train})
        lines += [
            "",
            f"Every fold also trains on {len(experiment.extra_train)} utterances of "
            f"{', '.join(extra)} (other corpora: never the test speakers).",
        ]
    if experiment.dropped:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(experiment.dropped.items()))
        lines += ["", f"Left out by the task (label or code: count): {dropped}."]
    return "\n".join(lines) + "\n"


def ensemble_markdown(summary: dict) -> str:
    """``summary.md`` of an ensemble: each member's UA and the ensemble's, fold by fold."""
    members = summary["members"]
    header = " / ".join(f"{i + 1}" for i in range(len(members)))
    lines = [
        f"# Ensemble of {len(members)} runs: {summary['corpus']}, task {summary['task']}",
        "",
        f"Protocol **{summary['protocol']}**, {summary['n_folds']} folds. Members (weight):",
        "",
        *(
            f"{i + 1}. `{m['run']}` ({m['system']}, seed {m['seed']}): {m['weight']:.3f}"
            for i, m in enumerate(members)
        ),
        "",
        f"| fold | test speakers | n | UA % of runs {header} | ensemble WA % | ensemble UA % |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for f, r in zip(summary["folds"], summary["member_ua"], strict=True):
        speakers = " ".join(s.split(":", 1)[1] for s in f["test_speakers"])
        each = " / ".join(f"{100 * u:.1f}" for u in r)
        lines.append(
            f"| {f['fold']} | {speakers} | {f['n_test']} | {each} | {100 * f['wa']:.1f} "
            f"| {100 * f['ua']:.1f} |"
        )
    m, s = summary["mean"], summary["std"]
    each = " / ".join(f"{100 * u:.1f}" for u in summary["member_mean_ua"])
    lines += [
        f"| **mean +- std** | | | {each} | **{100 * m['wa']:.1f} +- {100 * s['wa']:.1f}** "
        f"| **{100 * m['ua']:.1f} +- {100 * s['ua']:.1f}** |",
    ]
    return "\n".join(lines) + "\n"


def _params_text(row: dict) -> str:
    counts = sorted({c["params"] for c in row["corpora"].values() if c["params"] is not None})
    if not counts:
        return "-"
    show = [f"{n / 1e6:.3f} M" for n in (counts[0], counts[-1])]
    return show[0] if show[0] == show[1] else f"{show[0]} - {show[1]}"


def table_markdown(table: dict) -> str:
    """``table.md``: the claims at a glance, the systems x corpora table, the claims per corpus
    and across corpora, then the missing runs."""
    n_seeds = len(table["seeds"])
    lines = [
        "# emofuse compare: the paper's parts, one at a time",
        "",
        f"Machine: {table['machine']}. Runs done: {table['runs_done']} of {table['runs_total']}"
        + ("." if table["complete"] else " (PARTIAL: rerun the command to finish; the missing "
           "runs and their estimated cost are listed at the end)."),
        "",
        f"All systems share the folds and seeds of each corpus: seeds "
        f"{', '.join(map(str, table['seeds']))}; per seed, every system is trained and tested on "
        "the same speaker-independent folds (same test and validation speakers; checked).",
        "",
    ]  # fmt: skip
    for corpus, info in table["corpora"].items():
        if info:
            lines.append(
                f"- {corpus}: task {info['task']} ({len(info['labels'])} classes), protocol "
                f"{info['protocol']}, {info['n_folds']} folds x {n_seeds} "
                + ("seed" if n_seeds == 1 else "seeds")
            )
    if table["claims"]:
        lines += ["", *_overview_markdown(table)]
    lines += ["", *_rows_markdown(table), *_subsets_markdown(table)]
    lines += ["", *_claims_markdown(table["claims"])]
    if table["claims"]:
        lines += ["", *_pooled_markdown(table["pooled"])]
    if table["missing_estimates"]:
        lines += ["", *_missing_markdown(table["missing_estimates"])]
    return "\n".join(lines) + "\n"


def _interval(mean: float, low: float, high: float) -> str:
    """A mean difference with its interval, in points: '+1.2 [-3.4, +5.6]'."""
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def _pooled_intervals(pooled: dict) -> tuple[str, str]:
    """The fixed-effect and random-effects means of ``pooled`` with their intervals ('-' when
    not pooled)."""
    if pooled["n_corpora"] < MIN_CORPORA:
        return "-", "-"
    return (_interval(pooled["fixed_mean"], pooled["fixed_ci_low"], pooled["fixed_ci_high"]),
            _interval(pooled["mean_diff"], pooled["ci_low"], pooled["ci_high"]))  # fmt: skip


def _overview_markdown(table: dict) -> list[str]:
    """The claims at a glance: one row per claim comparison, a cell per corpus and the two
    pooled means with their verdicts (the README's claims table)."""
    corpora = list(table["corpora"])
    mark = {"holds": " holds", "contradicted": " contradicted"}
    per_corpus = {(c["system"], c["baseline"], c["corpus"]): c for c in table["claims"]}
    lines = [
        "## The claims at a glance",
        "",
        "| claim | comparison | " + " | ".join(corpora) + " | these corpora (fixed effect) "
        "| verdict on these corpora | a new corpus (random effects) | verdict on a new corpus |",
        "| --- | --- |" + " ---: |" * (len(corpora) + 1) + " --- | ---: | --- |",
    ]  # fmt: skip
    for p in table["pooled"]:
        cells = []
        for corpus in corpora:
            c = per_corpus.get((p["system"], p["baseline"], corpus))
            cells.append("not run" if c is None else _interval(c["mean_diff"], c["ci_low"],
                         c["ci_high"]) + mark.get(c["verdict"], ""))  # fmt: skip
        fixed, random = _pooled_intervals(p)
        lines.append(
            f"| ({p['claim']}) {p['statement']} | {p['system']} - {p['baseline']} | "
            + " | ".join(cells)
            + f" | {fixed} | {p['fixed_verdict']} | {random} | {p['verdict']} |"
        )
    return lines + [
        "",
        "Each corpus cell: the mean UA difference in points (first system minus second) with "
        "its 95% fold-bootstrap interval, and the verdict there unless within noise. These "
        "corpora: the fixed-effect (inverse-variance) mean of the corpora's differences with "
        "its normal interval, the average effect on exactly these corpora. A new corpus: the "
        "random-effects mean with its Hartung-Knapp interval, the effect to expect on a corpus "
        "not measured, which also carries the spread between corpora. Only corpora with at "
        f"least {MIN_FOLDS} folds are pooled (details in the sections below).",
    ]


def _row_cells(row: dict, table: dict) -> list[str]:
    """UA and WA of ``row`` per corpus of ``table``, with ``(n N)`` where folds are missing."""
    cells = []
    for corpus, info in table["corpora"].items():
        cell = row["corpora"].get(corpus)
        if cell is None:
            cells += ["-", "-"]
            continue
        partial = "" if cell["n"] == info["n_folds"] * len(table["seeds"]) else f" (n {cell['n']})"
        cells += [_pct(cell["ua_mean"], cell["ua_std"]) + partial,
                  _pct(cell["wa_mean"], cell["wa_std"])]  # fmt: skip
    return cells


def _rows_markdown(table: dict) -> list[str]:
    """The systems x corpora section of ``table.md``."""
    corpora = list(table["corpora"])
    header = "| system | " + " | ".join(f"{c} UA % | {c} WA %" for c in corpora)
    timing = table["rtf_timing"]
    rtf = f"RTF ({timing['audio_seconds']:g} s, {timing['threads']} thread)"
    lines = [
        "## UA and WA per corpus (mean +- std over folds x seeds), and costs",
        "",
        header + f" | params | train min | {rtf} |",
        "| --- |" + " ---: | ---: |" * len(corpora) + " ---: | ---: | ---: |",
    ]
    for row in table["rows"]:
        lines.append(
            f"| {row['system']} | " + " | ".join(_row_cells(row, table))
            + f" | {_params_text(row)} | {row['train_seconds'] / 60:.1f} "
            + f"| {_or_dash(row['rtf'], lambda r: f'{r:.2g}')} |"
        )  # fmt: skip
    return lines + [
        "",
        "UA: mean recall over the classes present in a fold's test set; WA: accuracy. Parameter "
        "counts differ between corpora only by the classifier's classes. Train min: fold "
        f"training time summed over corpora, folds and seeds. {rtf}: compute seconds per second "
        f"of audio for one inference on {timing['audio_seconds']:g} s of synthetic audio at "
        f"{timing['threads']} torch thread (median of {timing['repeats']} after a warm-up, "
        "timed once and kept in costs.json with its machine; delete an entry to re-time it): "
        "a network's whole forward pass, front end included; the SVM's eGeMAPS extraction "
        "(its decision is negligible; empty without opensmile); whisper-lr's Whisper front "
        "end (the logistic regression is negligible).",
    ]


def _subsets_markdown(table: dict) -> list[str]:
    """The corpora's named subsets (e.g. ASED's common sentences), scored on the same test
    predictions; nothing when no row has one."""
    rows = [f"| {row['system']} | {corpus}: {name} | {_pct(c['ua_mean'], c['ua_std'])} | "
            f"{_pct(c['wa_mean'], c['wa_std'])} | {c['clips']} |"
            for row in table["rows"] for corpus, cells in row.get("subsets", {}).items()
            for name, c in cells.items()]  # fmt: skip
    if not rows:
        return []
    return [
        "", "## Subsets of a corpus, on the same test predictions", "",
        "| system | subset | UA % | WA % | test clips |", "| --- | --- | ---: | ---: | ---: |",
        *rows, "",
        "The same runs' test predictions restricted to the subset (per fold, then mean +- std "
        "over folds x seeds); e.g. ASED's common sentences, the two texts spoken in all five "
        "emotions, where the words do not give the label away.",
    ]  # fmt: skip


def _claims_markdown(claims: list[dict]) -> list[str]:
    """The claims section of ``table.md``: one row and one sentence per claim and corpus."""
    lines = [
        "## The claims per corpus: the paper's (a)-(d); emofuse's prosody feature (e), pretrained "
        "encoder feature (f) and the paper's fusion on top of it (g)",
        "",
    ]
    if not claims:
        return lines + ["No claim could be evaluated: run both systems of a claim's pair."]
    lines += [
        "| claim | corpus | comparison | mean UA diff (points) | 95% CI | sign test p "
        "| n pairs | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in claims:
        lines.append(
            f"| ({c['claim']}) {c['statement']} | {c['corpus']} | {c['system']} - "
            f"{c['baseline']} | {100 * c['mean_diff']:+.1f} | [{100 * c['ci_low']:+.1f}, "
            f"{100 * c['ci_high']:+.1f}] | {c['sign_test_p']:.3g} | {c['n_pairs']} "
            f"| {c['verdict']} |"
        )
    return lines + [
        "",
        *(f"- {c['sentence']}" for c in claims),
        "",
        "Differences are per-fold UA of the first system minus the second, paired by seed "
        "and fold (same test speakers). The 95% interval is a percentile bootstrap "
        f"({N_RESAMPLES} resamples) that resamples whole folds, because the seeds of one "
        "fold share their test speakers; the sign test (two-sided, exact, ties dropped) "
        "counts every pair and so is optimistic when seeds of a fold agree. A claim holds "
        "on a corpus when the mean difference is positive and the interval excludes 0 "
        f"(no verdict with fewer than {MIN_FOLDS} folds).",
    ]


def _pooled_markdown(pooled: list[dict]) -> list[str]:
    """The across-corpora section of ``table.md``: one row and one sentence per comparison."""
    lines = [
        "## Across corpora: fixed-effect and random-effects means per claim comparison",
        "",
        "| claim | comparison | corpora | fixed-effect mean [95% CI] | verdict on these corpora "
        "| random-effects mean [Hartung-Knapp 95% CI] | tau^2 (points^2) | I^2 "
        "| verdict on a new corpus |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for p in pooled:
        fixed, random = _pooled_intervals(p)
        spread = ["-", "-"]
        if p["n_corpora"] >= MIN_CORPORA:
            spread = [f"{1e4 * p['tau2']:.1f}", f"{100 * p['i2']:.0f}%"]
        lines.append(
            f"| ({p['claim']}) {p['statement']} | {p['system']} - {p['baseline']} "
            f"| {', '.join(p['corpora']) or '-'} | {fixed} | {p['fixed_verdict']} | {random} | "
            + " | ".join(spread) + f" | {p['verdict']} |"
        )
    return lines + [
        "",
        *(f"- {p['sentence']}" for p in pooled),
        "",
        "Two pooled means answer two questions. On these corpora: the fixed-effect mean, the "
        "per-corpus mean UA differences weighted by 1 / se^2, with its normal 95% interval; it "
        "averages the effects of exactly the corpora measured. On a new corpus: the "
        "random-effects mean of the per-corpus mean UA differences, each corpus "
        "weighted by 1 / (se^2 + tau^2), where se is the standard error over folds of the "
        "fold-mean differences (the seeds of a fold are averaged first, since they share the "
        "fold's test speakers) and tau^2 the DerSimonian-Laird between-corpus variance. The 95% "
        "interval is the modified Hartung-Knapp one (a t quantile on k - 1 degrees of freedom), "
        "which keeps its coverage with few corpora where the normal interval is too narrow: "
        "with 2 corpora only a large, consistent effect excludes 0. Only corpora with at least "
        f"{MIN_FOLDS} folds enter, and a claim needs {MIN_CORPORA} of them for a pooled "
        "verdict: one corpus is reported as such. I^2: the share of the spread between corpora "
        "beyond their own noise.",
        "",
        "![Per-corpus UA differences with their 95% bootstrap intervals; pooled means as "
        "diamonds](claims_forest.png)",
    ]


def _missing_markdown(missing: list[dict]) -> list[str]:
    """The missing runs of ``table.md``, each with its estimated training time, and the total."""
    known = [m["train_seconds"] for m in missing if m["train_seconds"] is not None]
    return [
        "## Missing runs and their estimated training time",
        "",
        "| run | estimated train min |",
        "| --- | ---: |",
        *(f"| {m['run']} | {_or_dash(m['train_seconds'], lambda t: f'{t / 60:.0f}')} |"
          for m in missing),  # fmt: skip
        "",
        f"Total: about {sum(known) / 3600:.1f} h of training for {len(missing)} runs"
        + (f" ({len(missing) - len(known)} without an estimate)." if len(known) < len(missing)
           else "."),  # fmt: skip
        "",
        "Each estimate is the mean training time of the same system's finished runs on the same "
        "corpus, else of its runs on other corpora scaled by the ratio of utterances x folds, "
        "else (a network variant never run) the full network's by the same rule, on this "
        "table's machine.",
    ]


def write_figures(summary: dict, records: Sequence[FoldRecord], out_dir: str | os.PathLike) -> None:
    """``confusion.png`` (summed over folds) and, when any record has a learning curve,
    ``learning_curves.png``."""
    from emofuse.plots import plot_confusion, plot_learning_curves

    out_dir = Path(out_dir)
    plot_confusion(np.array(summary["confusion"]), summary["labels"], out_dir / "confusion.png")
    if any(r.history for r in records):
        plot_learning_curves([r.to_json() for r in records], out_dir / "learning_curves.png")
