"""Ablation table: every system on identical folds and seeds, and a test of each paper claim.

A *system* is the paper's network with its ablation switches set (``SYSTEMS``; configuration
only, no forked model code) or the eGeMAPS + SVM baseline. ``run_compare`` runs, for every
corpus, seed and system, :func:`emofuse.experiments.crossval.run_crossval` into
``out_dir/<corpus>/<system>/seed<seed>/`` (resumable: finished folds are never recomputed, and
a finished run is only read back), then writes ``out_dir/table.md`` and ``out_dir/table.json``:

- per system and corpus: UA and WA as mean +- std over all folds x seeds, the parameter count
  and the training time;
- per claim (``CLAIMS``: the paper's (a)-(c), and (d) for emofuse's prosody stream) and
  corpus: the paired per-fold UA differences (matched by seed and fold index, so both systems
  saw the same test speakers), their mean, a two-sided
  exact sign test, a percentile bootstrap 95% interval (resampling whole folds) and a sentence
  saying whether the claim holds on that corpus: "holds" when the mean difference is positive
  and the interval excludes 0, "contradicted" when negative and excluding 0, else "not shown"
  (also with fewer than ``MIN_FOLDS`` folds).

The folds of a corpus depend only on its data, protocol and seed, never on the model, so every
system of one seed is tested on the same folds; the aggregation checks this and refuses
results whose test speakers differ. The table is rewritten after every finished run, so an
interrupted comparison still shows what is done (``complete: false``).

The SVM is deterministic, but it is still run once per seed folder: a fold's validation
speakers depend on the seed, the pairing by (seed, fold) stays exact, and the cost is small
(seconds per fold; the eGeMAPS functionals are cached).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from emofuse.config import CorpusSpec, ExperimentConfig, load_config

__all__ = [
    "SYSTEMS",
    "CLAIMS",
    "system_config",
    "run_dir",
    "run_compare",
    "build_table",
    "table_markdown",
    "write_table",
    "sign_test",
    "bootstrap_interval",
    "paired_comparison",
]

BASELINE = "egemaps-svm"
# The paper's network: every ablation below flips exactly one part of it.
FULL = {"multiscale": True, "fusion": "cross_attention", "branches": "both", "temporal": "bilstm"}
SYSTEMS: dict[str, dict[str, object] | None] = {
    "full": FULL,
    "no-multiscale": {**FULL, "multiscale": False},  # plain residual blocks of the same width
    "mfcc-only": {**FULL, "branches": "mfcc"},
    "logmel-only": {**FULL, "branches": "logmel"},
    "concat-fusion": {**FULL, "fusion": "concat"},
    "sum-fusion": {**FULL, "fusion": "sum"},
    "no-bilstm": {**FULL, "temporal": "none"},
    # emofuse's addition, not the paper's: a third, prosody stream (features follow the switch)
    "prosody": {**FULL, "prosody": True},
    BASELINE: None,  # not the network: run_crossval's eGeMAPS + SVM baseline
}
# (claim id, statement, the system with the part, the system without it)
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("a", "residual multi-scale modules improve SER", "full", "no-multiscale"),
    ("b", "fusing MFCC with log-Mel improves SER", "full", "mfcc-only"),
    ("b", "fusing MFCC with log-Mel improves SER", "full", "logmel-only"),
    ("c", "cross-attention fusion improves SER", "full", "concat-fusion"),
    ("c", "cross-attention fusion improves SER", "full", "sum-fusion"),
    ("d", "an explicit prosody stream (emofuse's addition) improves SER", "prosody", "full"),
)
N_RESAMPLES = 10_000
# A bootstrap over very few folds has few distinct resamples and too narrow an interval
# (3 folds agreeing give a point interval): below this, no verdict.
MIN_FOLDS = 5


def _check_systems(systems: Sequence[str]) -> list[str]:
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; known: {', '.join(SYSTEMS)}")
    if not systems or len(set(systems)) != len(systems):
        raise ValueError(f"systems must be a non-empty list without repeats, got {list(systems)}")
    return list(systems)


def system_config(
    base: ExperimentConfig, corpus: CorpusSpec, system: str, seed: int
) -> ExperimentConfig:
    """``base`` for one corpus (its task/protocol unless ``base`` sets them), seed and system."""
    _check_systems([system])
    model = base.model if SYSTEMS[system] is None else replace(base.model, **SYSTEMS[system])
    return replace(
        base,
        features=replace(base.features, prosody=model.prosody),
        model=model,
        train=replace(base.train, seed=seed),
        data=replace(base.data, corpora=[corpus]),
    )


def run_dir(out_dir: str | os.PathLike, corpus: str, system: str, seed: int) -> Path:
    """The cross-validation folder of one corpus, system and seed."""
    return Path(out_dir) / corpus / system / f"seed{seed}"


def _finished(config: ExperimentConfig, folder: Path, system: str) -> dict | None:
    """The summary of a complete earlier run of exactly this config, else None."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        same = load_config(folder / "config.yaml") == config
    except (OSError, ValueError):
        return None
    done = summary.get("system") == system and len(summary["folds"]) == summary["n_folds"]
    return summary if same and done else None


# --- statistics -------------------------------------------------------------------------------


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


def _verdict(mean: float, low: float, high: float, n_groups: int) -> str:
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
        "verdict": _verdict(mean, low, high, len(set(folds))),
        "differences": [
            {"seed": s, "fold": f, "ua_diff": float(v)} for (s, f), v in zip(keys, d, strict=True)
        ],
    }


# --- aggregation ------------------------------------------------------------------------------


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _num_parameters(config: ExperimentConfig, system: str, n_classes: int) -> int | None:
    if SYSTEMS[system] is None:
        return None
    from emofuse.model import EmotionNet

    return EmotionNet(replace(config.model, n_classes=n_classes)).num_parameters()


def _check_shared_folds(summaries: dict[tuple[str, str, int], dict]) -> None:
    """Every system of one corpus and seed must have been tested on the same speakers."""
    seen: dict[tuple[str, int, int], tuple[str, list[str]]] = {}
    for (corpus, system, seed), summary in summaries.items():
        for fold in summary["folds"]:
            key = (corpus, seed, fold["fold"])
            first = seen.setdefault(key, (system, fold["test_speakers"]))
            if first[1] != fold["test_speakers"]:
                raise ValueError(
                    f"{corpus} seed {seed} fold {fold['fold']}: {system} was tested on "
                    f"{fold['test_speakers']} but {first[0]} on {first[1]}; the results under "
                    "this folder do not share folds"
                )


def _fold_results(
    summaries: dict[tuple[str, str, int], dict], corpus: str, system: str, seeds: Sequence[int]
) -> list[tuple[int, dict]]:
    """(seed, per-fold summary) of every finished fold of one corpus and system."""
    return [
        (seed, fold)
        for seed in seeds
        if (corpus, system, seed) in summaries
        for fold in summaries[(corpus, system, seed)]["folds"]
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


def build_table(
    summaries: dict[tuple[str, str, int], dict],
    params: dict[tuple[str, str], int | None],
    *,
    corpora: Sequence[str],
    systems: Sequence[str],
    seeds: Sequence[int],
    machine: str,
) -> dict:
    """The comparison table (``table.json``) from the run summaries done so far.

    ``summaries`` maps (corpus, system, seed) to a :func:`run_crossval` summary; ``params``
    maps (corpus, system) to the parameter count (None for the SVM).
    """
    _check_shared_folds(summaries)
    info = {}
    for (corpus, _, _), s in summaries.items():
        info.setdefault(corpus, {k: s[k] for k in ("task", "protocol", "n_folds", "labels")})
    rows = []
    for system in systems:
        cells = {}
        for corpus in corpora:
            folds = [f for _, f in _fold_results(summaries, corpus, system, seeds)]
            if not folds:
                continue
            ua, ua_std = _mean_std([f["ua"] for f in folds])
            wa, wa_std = _mean_std([f["wa"] for f in folds])
            cells[corpus] = {
                "ua_mean": ua, "ua_std": ua_std, "wa_mean": wa, "wa_std": wa_std,
                "n": len(folds), "train_seconds": float(sum(f["train_seconds"] for f in folds)),
                "params": params.get((corpus, system)),
            }  # fmt: skip
        rows.append(
            {
                "system": system,
                "model": SYSTEMS[system],
                "corpora": cells,
                "train_seconds": float(sum(c["train_seconds"] for c in cells.values())),
            }
        )
    claims = []
    for claim_id, statement, better, worse in CLAIMS:
        if better not in systems or worse not in systems:
            continue
        for corpus in corpora:
            ua = {
                system: {
                    (seed, f["fold"]): f["ua"]
                    for seed, f in _fold_results(summaries, corpus, system, seeds)
                }
                for system in (better, worse)
            }
            stats = paired_comparison(ua[better], ua[worse])
            if stats is None:
                continue
            claim = {"claim": claim_id, "statement": statement, "corpus": corpus,
                     "system": better, "baseline": worse, **stats}  # fmt: skip
            claim["sentence"] = _claim_sentence(claim)
            claims.append(claim)
    total = len(corpora) * len(systems) * len(seeds)
    return {
        "machine": machine,
        "corpora": {c: info.get(c) for c in corpora},
        "systems": list(systems),
        "seeds": list(seeds),
        "runs_done": len(summaries),
        "runs_total": total,
        "complete": len(summaries) == total,
        "shared_folds": True,  # checked above
        "rows": rows,
        "claims": claims,
    }


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} +- {100 * std:.1f}"


def _params_text(row: dict) -> str:
    counts = sorted({c["params"] for c in row["corpora"].values() if c["params"] is not None})
    if not counts:
        return "-"
    show = [f"{n / 1e6:.3f} M" for n in (counts[0], counts[-1])]
    return show[0] if counts[0] == counts[-1] else f"{show[0]} - {show[1]}"


def table_markdown(table: dict) -> str:
    """``table.md``: the systems x corpora table, then the claims."""
    corpora = list(table["corpora"])
    n_seeds = len(table["seeds"])
    lines = [
        "# emofuse compare: the paper's parts, one at a time",
        "",
        f"Machine: {table['machine']}. Runs done: {table['runs_done']} of {table['runs_total']}"
        + ("." if table["complete"] else " (PARTIAL: rerun the command to finish)."),
        "",
        f"All systems share the folds and seeds of each corpus: seeds "
        f"{', '.join(map(str, table['seeds']))}; per seed, every system is trained and tested on "
        "the same speaker-independent folds (same test and validation speakers; checked).",
        "",
    ]
    for corpus, info in table["corpora"].items():
        if info:
            lines.append(
                f"- {corpus}: task {info['task']} ({len(info['labels'])} classes), protocol "
                f"{info['protocol']}, {info['n_folds']} folds x {n_seeds} "
                + ("seed" if n_seeds == 1 else "seeds")
            )
    header = "| system | " + " | ".join(f"{c} UA % | {c} WA %" for c in corpora)
    lines += [
        "",
        "## UA and WA per corpus (mean +- std over folds x seeds)",
        "",
        header + " | params | train min |",
        "| --- |" + " ---: | ---: |" * len(corpora) + " ---: | ---: |",
    ]
    for row in table["rows"]:
        cells = []
        for corpus in corpora:
            cell = row["corpora"].get(corpus)
            if cell is None:
                cells += ["-", "-"]
                continue
            info = table["corpora"][corpus]
            partial = "" if cell["n"] == info["n_folds"] * n_seeds else f" (n {cell['n']})"
            cells += [_pct(cell["ua_mean"], cell["ua_std"]) + partial,
                      _pct(cell["wa_mean"], cell["wa_std"])]  # fmt: skip
        lines.append(
            f"| {row['system']} | " + " | ".join(cells)
            + f" | {_params_text(row)} | {row['train_seconds'] / 60:.1f} |"
        )  # fmt: skip
    lines += [
        "",
        "UA: mean recall over the classes present in a fold's test set; WA: accuracy. Parameter "
        "counts differ between corpora only by the classifier's classes. Train min: fold "
        "training time summed over corpora, folds and seeds.",
        "",
        "## The claims: the paper's (a)-(c), emofuse's prosody stream (d)",
        "",
    ]
    if not table["claims"]:
        lines.append("No claim could be evaluated: run both systems of a claim's pair.")
    else:
        lines += [
            "| claim | corpus | comparison | mean UA diff (points) | 95% CI | sign test p "
            "| n pairs | verdict |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for c in table["claims"]:
            lines.append(
                f"| ({c['claim']}) {c['statement']} | {c['corpus']} | {c['system']} - "
                f"{c['baseline']} | {100 * c['mean_diff']:+.1f} | [{100 * c['ci_low']:+.1f}, "
                f"{100 * c['ci_high']:+.1f}] | {c['sign_test_p']:.3g} | {c['n_pairs']} "
                f"| {c['verdict']} |"
            )
        lines += ["", *(f"- {c['sentence']}" for c in table["claims"])]
        lines += [
            "",
            "Differences are per-fold UA of the first system minus the second, paired by seed "
            "and fold (same test speakers). The 95% interval is a percentile bootstrap "
            f"({N_RESAMPLES} resamples) that resamples whole folds, because the seeds of one "
            "fold share their test speakers; the sign test (two-sided, exact, ties dropped) "
            "counts every pair and so is optimistic when seeds of a fold agree. A claim holds "
            "on a corpus when the mean difference is positive and the interval excludes 0 "
            f"(no verdict with fewer than {MIN_FOLDS} folds).",
        ]
    return "\n".join(lines) + "\n"


def _write_atomic(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_table(table: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``table.json`` and ``table.md`` (each atomically); returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(json.dumps(table, indent=1), out_dir / "table.json")
    _write_atomic(table_markdown(table), out_dir / "table.md")
    return out_dir / "table.md"


# --- the driver -------------------------------------------------------------------------------


def run_compare(
    base: ExperimentConfig,
    corpora: Sequence[CorpusSpec],
    systems: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Run every system on every corpus and seed (resumable) and write the tables.

    ``base`` supplies everything but the corpus (``data.corpora`` is replaced by each corpus in
    turn; its ``task``/``protocol`` apply to every corpus when set, else each corpus's own),
    the seed and the model's ablation switches. Runs go seed by seed, so an interrupted
    comparison has complete seeds first. Returns the table (as in ``table.json``).
    """
    from emofuse.experiments.crossval import machine_description, run_crossval

    systems = _check_systems(systems)
    corpora = list(corpora)
    names = [c.name for c in corpora]
    if not corpora or len(set(names)) != len(names):
        raise ValueError(f"corpora must be a non-empty list without repeats, got {names}")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list without repeats, got {seeds}")
    if BASELINE in systems:
        import importlib.util

        missing = [m for m in ("opensmile", "sklearn") if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(
                f"system {BASELINE} needs {' and '.join(missing)}: pip install 'emofuse[baseline]'"
            )
    out_dir = Path(out_dir)
    runs = [(corpus, system, seed) for seed in seeds for corpus in corpora for system in systems]
    summaries: dict[tuple[str, str, int], dict] = {}
    params: dict[tuple[str, str], int | None] = {}
    table: dict = {}
    for i, (corpus, system, seed) in enumerate(runs, 1):
        config = system_config(base, corpus, system, seed)
        folder = run_dir(out_dir, corpus.name, system, seed)
        kind = "egemaps-svm" if SYSTEMS[system] is None else "emofuse"
        summary = _finished(config, folder, kind)
        if progress:
            state = "done" if summary else "running"
            print(f"[{i}/{len(runs)}] {corpus.name} {system} seed {seed}: {state}", flush=True)
        if summary is None:
            summary = run_crossval(
                config, folder, system=kind, cache_dir=cache_dir, progress=progress
            )
        summaries[(corpus.name, system, seed)] = summary
        if (corpus.name, system) not in params:
            params[(corpus.name, system)] = _num_parameters(config, system, len(summary["labels"]))
        table = build_table(
            summaries, params, corpora=names, systems=systems, seeds=seeds,
            machine=machine_description(),
        )  # fmt: skip
        write_table(table, out_dir)
    return table
