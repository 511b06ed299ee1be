"""Ablation table: every system on identical folds and seeds, and a test of each paper claim.

The compared systems are :data:`~emofuse.experiments.variants.VARIANTS`: the paper's network
with one part changed (configuration only), the eGeMAPS + SVM baseline and the pretrained
encoder's systems. ``run_compare`` runs, for every corpus, seed and variant,
:func:`emofuse.experiments.crossval.run_crossval` into ``out_dir/<corpus>/<variant>/seed<seed>/``
(resumable: finished folds are never recomputed, and a finished run is only read back), then
writes ``out_dir/table.md``, ``out_dir/table.json`` and ``out_dir/claims_forest.png``:

- per variant and corpus: UA and WA as mean +- std over all folds x seeds, the parameter count
  and the training time; per variant the inference real-time factor (below);
- per claim (``CLAIMS``: the paper's (a)-(d), emofuse's prosody feature (e), pretrained encoder
  feature (f) and the paper's fusion on top of it (g)) and corpus: the paired per-fold UA
  differences (matched by seed and fold index, so both systems saw the same test speakers) and
  their statistics, with a sentence saying whether the claim holds on that corpus
  (:func:`~emofuse.experiments.claims.paired_claims`);
- per claim comparison across corpora (``pooled``), from the corpora with at least
  ``MIN_FOLDS`` folds: the fixed-effect mean of the per-corpus mean differences, the average
  effect on these corpora (``fixed_verdict``), and the random-effects mean with its
  Hartung-Knapp interval, the effect to expect on a new corpus (``verdict``); none from one
  corpus (:func:`~emofuse.experiments.claims.pooled_claims`);
- the forest plot of both (:func:`emofuse.plots.plot_claims_forest`);
- the missing runs, each with an estimated training time (:func:`_estimated_seconds`).

The folds of a corpus depend only on its data, protocol and seed, never on the model, so every
system of one seed is tested on the same folds; the aggregation checks this and refuses
results whose test speakers differ. The table is rewritten after every finished run, so an
interrupted comparison still shows what is done (``complete: false``).

The inference real-time factor of each variant comes from
:func:`~emofuse.experiments.costs.inference_costs` (timed once, cached in ``costs.json``).

The SVM is deterministic, but it is still run once per seed folder: a fold's validation
speakers depend on the seed, the pairing by (seed, fold) stays exact, and the cost is small
(seconds per fold; the eGeMAPS functionals are cached).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from emofuse.config import CorpusSpec, ExperimentConfig, load_config
from emofuse.experiments.claims import Summaries, fold_results, paired_claims, pooled_claims
from emofuse.experiments.costs import (
    RTF_AUDIO_SECONDS,
    RTF_REPEATS,
    RTF_THREADS,
    inference_costs,
)
from emofuse.experiments.crossval import run_crossval
from emofuse.experiments.machine import machine_description
from emofuse.experiments.records import load_run
from emofuse.experiments.report import table_markdown
from emofuse.experiments.subsets import subset_cell, subset_ids
from emofuse.experiments.systems import get_system
from emofuse.experiments.variants import VARIANTS, check_variants, system_config
from emofuse.files import atomic_path, write_json, write_text
from emofuse.training import distributed

__all__ = ["run_dir", "run_compare", "build_table", "write_table"]

Costs = Mapping[str, dict]  # variant -> {"rtf", "seconds", "machine"} (costs.json's "variants")
Subsets = Mapping[tuple[str, str], dict]  # (corpus, variant) -> {subset name: its cell}

# A network variant never run anywhere has its missing runs estimated from this variant's.
ESTIMATE_FALLBACK = "full"


def run_dir(out_dir: str | os.PathLike, corpus: str, variant: str, seed: int) -> Path:
    """The cross-validation folder of one corpus, variant and seed."""
    return Path(out_dir) / corpus / variant / f"seed{seed}"


def _finished(config: ExperimentConfig, folder: Path, system: str) -> dict | None:
    """The summary of a complete earlier run of exactly this config, else None."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
        same = load_config(folder / "config.yaml").identity() == config.identity()
    except (OSError, ValueError):
        return None
    done = summary.get("system") == system and len(summary["folds"]) == summary["n_folds"]
    return summary if same and done else None


def _check_shared_folds(summaries: Summaries) -> None:
    """Every variant of one corpus and seed must have been tested on the same speakers."""
    seen: dict[tuple[str, int, int], tuple[str, list[str]]] = {}
    for (corpus, variant, seed), summary in summaries.items():
        for fold in summary["folds"]:
            key = (corpus, seed, fold["fold"])
            first = seen.setdefault(key, (variant, fold["test_speakers"]))
            if first[1] != fold["test_speakers"]:
                raise ValueError(
                    f"{corpus} seed {seed} fold {fold['fold']}: {variant} was tested on "
                    f"{fold['test_speakers']} but {first[0]} on {first[1]}; the results under "
                    "this folder do not share folds"
                )


def _cell(folds: list[dict], params: int | None) -> dict:
    """One variant on one corpus: UA and WA mean +- std over ``folds``, time, parameters."""
    ua, wa = np.array([f["ua"] for f in folds]), np.array([f["wa"] for f in folds])
    return {
        "ua_mean": float(ua.mean()), "ua_std": float(ua.std()),
        "wa_mean": float(wa.mean()), "wa_std": float(wa.std()),
        "n": len(folds), "train_seconds": float(sum(f["train_seconds"] for f in folds)),
        "params": params,
    }  # fmt: skip


def _rows(
    summaries: Summaries, params: dict[tuple[str, str], int | None], costs: Costs,
    corpora: Sequence[str], variants: Sequence[str], seeds: Sequence[int], subsets: Subsets,
) -> list[dict]:  # fmt: skip
    """One ``table.json`` row per variant: its transform, a cell per corpus with results, the
    cells of the corpora's subsets and its inference real-time factor (None when not timed)."""
    rows = []
    for variant in variants:
        cells = {}
        for corpus in corpora:
            folds = [f for _, f in fold_results(summaries, corpus, variant, seeds)]
            if folds:
                cells[corpus] = _cell(folds, params.get((corpus, variant)))
        rows.append({
            "system": variant,
            "model": VARIANTS[variant].describe(),
            "corpora": cells,
            "subsets": {c: subsets[(c, variant)] for c in corpora if subsets.get((c, variant))},
            "train_seconds": float(sum(c["train_seconds"] for c in cells.values())),
            "rtf": costs[variant]["rtf"] if variant in costs else None,
        })  # fmt: skip
    return rows


def _estimated_seconds(summaries: Summaries, size: Mapping[str, int], corpus: str,
                       variant: str) -> float | None:  # fmt: skip
    """Training seconds of a missing run: the mean of the variant's finished runs on ``corpus``;
    else the mean of its runs on other corpora, each scaled by the ratio of utterances x folds
    (``size``); else, for a network variant never run, the same for ``ESTIMATE_FALLBACK``."""
    candidates = [variant]
    if VARIANTS[variant].model is not None and variant != ESTIMATE_FALLBACK:
        candidates.append(ESTIMATE_FALLBACK)
    for name in candidates:
        runs = [(c, s["train_seconds"]) for (c, v, _), s in summaries.items() if v == name]
        same = [t for c, t in runs if c == corpus]
        if same:
            return float(np.mean(same))
        if runs and corpus in size:
            return float(np.mean([t * size[corpus] / size[c] for c, t in runs]))
    return None


def _missing(
    summaries: Summaries, corpora: Sequence[str], systems: Sequence[str], seeds: Sequence[int]
) -> list[dict]:
    """Every run not done, in run order, with its estimated training seconds (None: no run of
    its corpus, or of its variant, to estimate from)."""
    size = {c: sum(f["n_test"] for f in s["folds"]) * s["n_folds"]
            for (c, _, _), s in summaries.items()}  # fmt: skip
    return [
        {"run": f"{c} {v} seed {s}", "train_seconds": _estimated_seconds(summaries, size, c, v)}
        for s in seeds for c in corpora for v in systems if (c, v, s) not in summaries
    ]  # fmt: skip


def build_table(
    summaries: Summaries,
    params: dict[tuple[str, str], int | None],
    *,
    corpora: Sequence[str],
    systems: Sequence[str],
    seeds: Sequence[int],
    machine: str,
    costs: Costs | None = None,
    subsets: Subsets | None = None,
) -> dict:
    """The comparison table (``table.json``) from the run summaries done so far.

    ``summaries`` maps (corpus, variant, seed) to a :func:`run_crossval` summary; ``params``
    maps (corpus, variant) to the parameter count (None for the SVM); ``systems`` are the
    variant names, in table order; ``costs`` maps a variant to its timed inference (``rtf``);
    ``subsets`` maps (corpus, variant) to its cells on the corpus's named subsets.
    """
    _check_shared_folds(summaries)
    info = {}
    for (corpus, _, _), s in summaries.items():
        info.setdefault(corpus, {k: s[k] for k in ("task", "protocol", "n_folds", "labels")})
    total = len(corpora) * len(systems) * len(seeds)
    missing = _missing(summaries, corpora, systems, seeds)
    claims = paired_claims(summaries, corpora, systems, seeds)
    return {
        "machine": machine,
        "corpora": {c: info.get(c) for c in corpora},
        "systems": list(systems),
        "seeds": list(seeds),
        "runs_done": len(summaries),
        "runs_total": total,
        "complete": len(summaries) == total,
        "missing": [m["run"] for m in missing],
        "missing_estimates": missing,
        "shared_folds": True,  # checked above
        "rows": _rows(summaries, params, costs or {}, corpora, systems, seeds, subsets or {}),
        "rtf_timing": {"audio_seconds": RTF_AUDIO_SECONDS, "threads": RTF_THREADS,
                       "repeats": RTF_REPEATS},  # fmt: skip
        "claims": claims,
        "pooled": pooled_claims(claims, systems),
    }


def write_table(table: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``table.json``, ``table.md`` and, when a claim has results, ``claims_forest.png``
    (each atomically); returns the Markdown path."""
    out_dir = Path(out_dir)
    write_json(table, out_dir / "table.json")
    write_text(out_dir / "table.md", table_markdown(table))
    if table["claims"]:
        from emofuse.plots import plot_claims_forest

        with atomic_path(out_dir / "claims_forest.png") as tmp:
            plot_claims_forest(table["claims"], table["pooled"], tmp)
    return out_dir / "table.md"


def _check_distinct(corpora: Sequence[CorpusSpec], seeds: Sequence[int]) -> None:
    names = [c.name for c in corpora]
    if not corpora or len(set(names)) != len(names):
        raise ValueError(f"corpora must be a non-empty list without repeats, got {names}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list without repeats, got {list(seeds)}")


def _check_corpora(corpora: Sequence[CorpusSpec], *, need_data: bool) -> None:
    """Refuse an unknown corpus name, and (``need_data``: runs will train) a corpus folder that
    does not exist, before any run starts or anything is written."""
    from emofuse.corpora import CORPORA

    for corpus in corpora:
        if corpus.name not in CORPORA:
            raise ValueError(
                f"unknown corpus {corpus.name!r}; known corpora: {', '.join(sorted(CORPORA))}"
            )
    if not need_data:  # tabulating finished runs reads only out_dir
        return
    for corpus in corpora:
        root = Path(corpus.root).expanduser()
        if not root.exists():
            what = "CSV file" if root.suffix.lower() == ".csv" else "corpus folder"
            raise ValueError(f"{corpus.name}: {what} {root} does not exist")


def run_compare(
    base: ExperimentConfig,
    corpora: Sequence[CorpusSpec],
    systems: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    run: bool = True,
    jobs: int = 1,
) -> dict:
    """Run every variant in ``systems`` on every corpus and seed (resumable); write the tables.

    ``base`` supplies everything but the corpus (``data.corpora`` is replaced by each corpus in
    turn; its ``task``/``protocol`` apply to every corpus when set, else each corpus's own),
    the seed and the variants' features and model switches. Runs go seed by seed, so an
    interrupted comparison has complete seeds first. With ``run=False`` nothing is trained:
    the table holds the finished runs and lists the missing ones. Either way, each variant's
    inference is timed first unless ``out_dir/costs.json`` has it (seconds). Unknown corpus
    names (and, when running, missing corpus folders) are refused before anything is written.
    ``jobs`` trains that many folds of a run at once
    (:func:`~emofuse.experiments.crossval.run_crossval`); under torchrun rank 0 times the
    inference and writes the tables. Returns the table (as in ``table.json``).
    """
    variants, corpora, seeds = check_variants(systems), list(corpora), list(seeds)
    _check_distinct(corpora, seeds)
    _check_corpora(corpora, need_data=run)
    for name in dict.fromkeys(VARIANTS[v].system for v in variants):
        get_system(name).check_available()
    main = distributed.world().is_main
    costs = inference_costs(
        {v: system_config(base, corpora[0], v, seeds[0]) for v in variants},
        Path(out_dir) / "costs.json",
    ) if main else {}  # fmt: skip
    summaries: Summaries = {}
    params: dict[tuple[str, str], int | None] = {}
    ids = {corpus.name: subset_ids(corpus) for corpus in corpora}

    def subset_cells(corpus: str, variant: str) -> dict:
        records = [r for seed in seeds if (corpus, variant, seed) in summaries
                   for r in load_run(run_dir(out_dir, corpus, variant, seed))[1]]  # fmt: skip
        cells = {name: subset_cell(records, members) for name, members in ids[corpus].items()}
        return {name: cell for name, cell in cells.items() if cell}

    def tabulate() -> dict:
        table = build_table(
            summaries, params, corpora=[c.name for c in corpora], systems=variants, seeds=seeds,
            machine=machine_description(), costs=costs,
            subsets={(c, v): subset_cells(c, v)  # once per corpus and variant, not per seed
                     for c, v in dict.fromkeys((c, v) for c, v, _ in summaries) if ids[c]},
        )  # fmt: skip
        if main:
            write_table(table, out_dir)
        return table

    runs = [(corpus, variant, seed) for seed in seeds for corpus in corpora for variant in variants]
    table: dict = {}
    for i, (corpus, variant, seed) in enumerate(runs, 1):
        config = system_config(base, corpus, variant, seed)
        folder = run_dir(out_dir, corpus.name, variant, seed)
        system = VARIANTS[variant].system
        summary = _finished(config, folder, system)
        if progress:
            state = "done" if summary else "running" if run else "missing"
            print(f"[{i}/{len(runs)}] {corpus.name} {variant} seed {seed}: {state}", flush=True)
        if summary is None and not run:
            continue
        if summary is None:
            summary = run_crossval(
                config, folder, system=system, cache_dir=cache_dir, progress=progress, jobs=jobs
            )
        summaries[(corpus.name, variant, seed)] = summary
        if (corpus.name, variant) not in params:
            count = get_system(system).num_parameters(config, summary["labels"])
            params[(corpus.name, variant)] = count
        table = tabulate()
    return table if summaries else tabulate()
