"""The comparison table from hand-made run summaries: claims pooled across corpora, the missing
runs' estimated cost, the inference costs (costs.json) and the forest plot."""

from __future__ import annotations

import json

import pytest
import torch

import emofuse.experiments.costs as costs_module
from emofuse import plots
from emofuse.config import CorpusSpec, load_config
from emofuse.experiments.compare import build_table, write_table
from emofuse.experiments.report import table_markdown
from emofuse.experiments.stats import meta_analysis
from emofuse.experiments.variants import system_config

SYSTEMS = ["full", "no-multiscale", "mfcc-only", "sum-fusion", "egemaps-svm"]
CORPORA = ["emodb", "emovo", "ravdess", "iemocap"]  # iemocap: no run at all
N_TEST = {"emodb": 10, "emovo": 5, "ravdess": 20}  # test utterances per fold
# full - no-multiscale per fold: emodb mean 12.5 points, emovo 13.5 (equal spreads, so large and
# consistent enough to hold under the Hartung-Knapp interval of 2 corpora), ravdess only 3 folds
GAINS = {
    "emodb": [0.10, 0.11, 0.12, 0.13, 0.14, 0.15],
    "emovo": [0.11, 0.12, 0.13, 0.14, 0.15, 0.16],
    "ravdess": [0.2, 0.3, 0.4],
}


def _summary(corpus: str, ua: list[float], train_seconds: float) -> dict:
    """A finished run_crossval summary with the fields the table reads."""
    folds = [
        {"fold": i, "ua": u, "wa": u, "n_test": N_TEST[corpus], "test_speakers": [f"{corpus}:{i}"],
         "train_seconds": train_seconds / len(ua)}
        for i, u in enumerate(ua)
    ]  # fmt: skip
    return {"task": f"{corpus}-task", "protocol": "loso-speaker", "n_folds": len(ua),
            "labels": ["a", "b"], "folds": folds, "train_seconds": train_seconds}  # fmt: skip


def _summaries() -> dict:
    runs = {}
    for corpus, gains in GAINS.items():
        runs[(corpus, "no-multiscale", 0)] = _summary(corpus, [0.5] * len(gains), 500.0)
        full = {"emodb": 600.0, "emovo": 200.0, "ravdess": 100.0}[corpus]
        runs[(corpus, "full", 0)] = _summary(corpus, [0.5 + g for g in gains], full)
    runs[("emodb", "full", 1)] = _summary("emodb", [0.6] * 6, 900.0)
    runs[("emodb", "mfcc-only", 0)] = _summary("emodb", [0.55, 0.6, 0.5, 0.62, 0.58, 0.5], 300.0)
    runs[("emodb", "egemaps-svm", 0)] = _summary("emodb", [0.4] * 6, 60.0)
    return runs


@pytest.fixture()
def table() -> dict:
    return build_table(_summaries(), {}, corpora=CORPORA, systems=SYSTEMS, seeds=[0, 1],
                       machine="test machine", costs={"full": {"rtf": 0.0123}})  # fmt: skip


def test_claims_are_pooled_over_the_corpora_with_enough_folds(table):
    pooled = {p["baseline"]: p for p in table["pooled"]}
    assert list(pooled) == ["no-multiscale", "mfcc-only", "sum-fusion"]  # concat: not compared
    multiscale = pooled["no-multiscale"]
    per_corpus = {c["corpus"]: c for c in table["claims"] if c["baseline"] == "no-multiscale"}
    assert per_corpus["emodb"]["mean_diff"] == pytest.approx(0.125)
    expected = meta_analysis([per_corpus[c]["mean_diff"] for c in ("emodb", "emovo")],
                             [per_corpus[c]["se"] for c in ("emodb", "emovo")])  # fmt: skip
    assert multiscale["corpora"] == ["emodb", "emovo"] and multiscale["n_corpora"] == 2
    assert multiscale["left_out"] == ["ravdess (3 folds)"]  # too few folds for its error
    assert multiscale["mean_diff"] == pytest.approx(0.13) == pytest.approx(expected["mean"])
    assert [multiscale[k] for k in ("ci_low", "ci_high", "tau2", "i2")] == pytest.approx(
        [expected[k] for k in ("ci_low", "ci_high", "tau2", "i2")]
    )
    assert multiscale["verdict"] == "holds"
    # the fixed-effect mean of these corpora: inverse-variance weights, normal interval
    weights = {c: 1 / per_corpus[c]["se"] ** 2 for c in ("emodb", "emovo")}
    total = sum(weights.values())
    fixed = sum(w * per_corpus[c]["mean_diff"] for c, w in weights.items()) / total
    assert multiscale["fixed_mean"] == pytest.approx(fixed) == pytest.approx(expected["fixed"])
    assert multiscale["fixed_ci_high"] - fixed == pytest.approx(1.959964 / total**0.5)
    assert multiscale["fixed_verdict"] == "holds"
    assert multiscale["sentence"] == (
        'Across corpora, claim (a) "residual multi-scale modules improve SER" (full vs '
        "no-multiscale), over 2 corpora (emodb, emovo; left out: ravdess (3 folds)): on these "
        "corpora it holds, full is better (fixed-effect mean UA difference +13.0 points, 95% CI "
        f"[{100 * expected['fixed_low']:+.1f}, {100 * expected['fixed_high']:+.1f}]); on a new "
        "corpus it holds, full is better (random-effects mean +13.0 points, Hartung-Knapp 95% CI "
        f"[{100 * expected['ci_low']:+.1f}, {100 * expected['ci_high']:+.1f}], tau^2 0.0 "
        "points^2, I^2 0%)."
    )
    one = pooled["mfcc-only"]  # only emodb ran it: reported as one corpus, no numbers
    assert one["n_corpora"] == 1 and one["mean_diff"] is None and one["tau2"] is None
    assert one["verdict"] == one["fixed_verdict"] == "not shown (fewer than 2 corpora)"
    assert one["fixed_mean"] is None
    assert "it rests on one corpus, emodb" in one["sentence"]
    assert pooled["sum-fusion"]["verdict"] == "not shown (no results yet)"
    assert "has no results yet" in pooled["sum-fusion"]["sentence"]
    text = table_markdown(table)
    lines = text.splitlines()
    start = lines.index("## Across corpora: fixed-effect and random-effects means per claim "
                        "comparison")  # fmt: skip
    row = next(li for li in lines[start:] if li.startswith("| (a) "))
    assert row.endswith(
        f"| emodb, emovo | +13.0 [{100 * expected['fixed_low']:+.1f}, "
        f"{100 * expected['fixed_high']:+.1f}] | holds | +13.0 [{100 * expected['ci_low']:+.1f}, "
        f"{100 * expected['ci_high']:+.1f}] | 0.0 | 0% | holds |"
    )
    assert ("| (b) fusing MFCC with log-Mel improves SER | full - mfcc-only | emodb | - | "
            "not shown (fewer than 2 corpora) | - | - | - |") in text  # fmt: skip


def test_missing_runs_are_listed_with_their_estimated_training_time(table):
    estimate = {m["run"]: m["train_seconds"] for m in table["missing_estimates"]}
    assert list(estimate) == table["missing"] and len(estimate) == 2 * 4 * 5 - 9
    # utterances x folds: emodb 60 x 6 = 360, emovo 30 x 6 = 180, ravdess 60 x 3 = 180
    assert estimate["emodb no-multiscale seed 1"] == 500.0  # same variant and corpus
    assert estimate["emovo full seed 1"] == 200.0
    assert estimate["emovo mfcc-only seed 0"] == pytest.approx(300.0 * 180 / 360)  # scaled
    assert estimate["emovo egemaps-svm seed 0"] == pytest.approx(60.0 * 180 / 360)
    assert estimate["emodb sum-fusion seed 0"] == 750.0  # never run: the full network's
    assert estimate["ravdess sum-fusion seed 1"] == 100.0
    assert estimate["iemocap full seed 0"] is None  # nothing ran on iemocap
    text = table_markdown(table)
    known = sum(t for t in estimate.values() if t is not None)
    assert "| emovo mfcc-only seed 0 | 2 |" in text and "| iemocap full seed 0 | - |" in text
    assert (f"Total: about {known / 3600:.1f} h of training for {len(estimate)} runs "
            "(10 without an estimate).") in text  # fmt: skip


def test_the_systems_table_shows_the_real_time_factor(table):
    rtf = {row["system"]: row["rtf"] for row in table["rows"]}
    assert rtf == {"full": 0.0123, "no-multiscale": None, "mfcc-only": None,
                   "sum-fusion": None, "egemaps-svm": None}  # fmt: skip
    lines = table_markdown(table).splitlines()
    assert next(li for li in lines if li.startswith("| full |")).endswith("| 0.012 |")
    assert next(li for li in lines if li.startswith("| sum-fusion |")).endswith("| - |")


def test_the_forest_plot_is_written_from_the_table(table, tmp_path, monkeypatch):
    drawn = []
    original = plots.plot_claims_forest

    def spy(claims, pooled, path):
        drawn.append((claims, pooled))
        original(claims, pooled, path)

    monkeypatch.setattr(plots, "plot_claims_forest", spy)
    write_table(table, tmp_path)
    assert drawn == [(table["claims"], table["pooled"])]
    png = (tmp_path / "claims_forest.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert not list(tmp_path.glob(".*.tmp*"))  # written atomically
    empty = build_table({}, {}, corpora=["emodb"], systems=["full"], seeds=[0], machine="m")
    write_table(empty, tmp_path / "empty")
    assert not (tmp_path / "empty" / "claims_forest.png").exists()  # no claim with data


def test_inference_costs_are_timed_once_and_cached(tmp_path, monkeypatch):
    base = load_config(None)
    configs = {v: system_config(base, CorpusSpec("emodb", "/e"), v, 0)
               for v in ("full", "sum-fusion")}  # fmt: skip
    threads = torch.get_num_threads()
    real = costs_module._inference_call
    monkeypatch.setattr(costs_module, "_inference_call",
                        lambda v, c: None if v == "sum-fusion" else real(v, c))  # fmt: skip
    costs = costs_module.inference_costs(configs, tmp_path / "costs.json")
    assert torch.get_num_threads() == threads  # restored after timing at 1 thread
    saved = json.loads((tmp_path / "costs.json").read_text())
    assert saved["threads"] == 1 and saved["audio_seconds"] == 10.0 and saved["repeats"] == 5
    assert list(saved["variants"]) == ["full"]  # sum-fusion could not run: tried next time
    full = saved["variants"]["full"]
    assert full["rtf"] == pytest.approx(full["seconds"] / 10) and full["rtf"] > 0
    assert full["machine"] and costs == {"full": full}

    def refuse(*args):
        raise AssertionError("a cached variant was timed again")

    monkeypatch.setattr(costs_module, "_inference_call", refuse)
    cached = costs_module.inference_costs({"full": configs["full"]}, tmp_path / "costs.json")
    assert cached == {"full": full}


def test_the_claims_at_a_glance_show_every_corpus_and_the_pooled_verdict(table):
    verdicts = {c["corpus"]: c["verdict"] for c in table["claims"]
                if c["baseline"] == "no-multiscale"}  # fmt: skip
    assert verdicts == {
        "emodb": "holds", "emovo": "holds", "ravdess": "not shown (fewer than 5 folds)"
    }  # fmt: skip
    lines = table_markdown(table).splitlines()
    start = lines.index("## The claims at a glance")
    assert start < next(i for i, li in enumerate(lines) if li.startswith("## UA and WA per"))
    assert lines[start + 2] == (
        "| claim | comparison | emodb | emovo | ravdess | iemocap | these corpora (fixed effect) "
        "| verdict on these corpora | a new corpus (random effects) | verdict on a new corpus |"
    )
    row = next(li for li in lines[start:] if li.startswith("| (a) "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "full - no-multiscale"
    assert cells[2].startswith("+12.5 [") and cells[2].endswith("] holds")
    assert cells[4].startswith("+30.0 [") and cells[4].endswith("]")  # 3 folds: no verdict
    assert cells[5] == "not run"
    assert cells[6].startswith("+13.0 [") and cells[7] == "holds"
    assert cells[8].startswith("+13.0 [") and cells[9] == "holds"
    mfcc = next(li for li in lines[start:] if "| full - mfcc-only |" in li)
    assert mfcc.endswith("| not run | not run | not run | - | not shown (fewer than 2 corpora) "
                         "| - | not shown (fewer than 2 corpora) |")  # fmt: skip
    sums = next(li for li in lines[start:] if "| full - sum-fusion |" in li)  # never run
    assert sums.endswith("| not run | not run | not run | not run | - | not shown (no results "
                         "yet) | - | not shown (no results yet) |")  # fmt: skip
