"""The recipe search behind the default model, on the eight-corpus benchmark: leave one corpus
out over the four shared corpora and the four cloned from public repositories (docs/corpora.md),
on the frozen Whisper base features, one row per change.

Each held-out corpus is scored per clip, adapted to the corpus (shrunk towards the prior by
``--prior-seconds``) and per speaker, over seven labels and its own; the temperature comes from
the other seven's held-out logits. Features come from the feature cache.

    python bench/loco8_recipes.py --threads 1    # writes results/loco8/recipes.{json,md}
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import _common as common
import numpy as np
import torch
from loco import REPO
from loco4_recipes import Data, pooled, read_moments

from emofuse.device import set_threads
from emofuse.experiments.loading import evenly_spread
from emofuse.metrics import expected_calibration_error, max_share
from emofuse.metrics import unweighted_accuracy as ua
from emofuse.training.linear_head import fit_logistic, fit_temperature, pooled_moments

SHARED = ("emodb", "ravdess", "emovo", "ased")
CLONED = ("spanish", "korean", "turkish", "commands")
CORPORA = SHARED + CLONED
N_CLASSES = 7  # bundled7
FOLDER_PRIORS = (2000.0, 10000.0)  # seconds the prior weighs when adapting to a whole corpus


@dataclass(frozen=True)
class Recipe:
    """One row: which layers (0-based into Whisper layers 1-4), how training clips are
    standardised (``speaker``, ``corpus``, ``speaker+place``: the commands corpus's unknown
    user split by recording place), C, how many training speakers' directions are projected out."""

    layers: tuple[int, ...] = (0, 1, 2)
    normalise: str = "speaker"
    c: float = 1e-3
    project: int = 0
    corpus_cap: int | None = None
    speech_only: bool = False


RECIPES = {
    "shipped recipe (speaker, layers 1-3, C 0.001)": Recipe(),
    "C 0.01": Recipe(c=1e-2),
    "C 0.0003": Recipe(c=3e-4),
    "layers 2-4": Recipe(layers=(1, 2, 3)),
    "layers 1-4": Recipe(layers=(0, 1, 2, 3)),
    "each training corpus standardised by itself": Recipe(normalise="corpus"),
    "commands' unknown user split by place": Recipe(normalise="speaker+place"),
    "at most 1,500 clips of a corpus": Recipe(corpus_cap=1500),
    "30 speaker directions projected out": Recipe(project=30),
    "trained on each clip both speaker- and prior-standardised": Recipe(normalise="speaker+prior"),
    "only the frames the VAD calls speech (training and test)": Recipe(speech_only=True),
}


def load_data(roots: dict[str, Path], keep: Path | None) -> tuple[Data, Data]:
    """:func:`read_moments`, or the copy in ``keep`` written by an earlier run."""
    names = ("mean", "var", "frames", "labels", "corpus", "speaker", "place")
    if keep is not None and keep.is_file():
        with np.load(keep) as stored:
            return tuple(Data(**{name: stored[f"{key}_{name}"] for name in names})
                         for key in ("whole", "speech"))  # fmt: skip
    whole, speech = read_moments(roots)
    if keep is not None:
        np.savez(keep, **{f"{key}_{name}": getattr(data, name)
                          for key, data in (("whole", whole), ("speech", speech))
                          for name in names})  # fmt: skip
    return whole, speech


def groups_of(data: Data, how: str) -> np.ndarray:
    """Normalisation group of every utterance of ``data``."""
    if how == "corpus":
        return data.corpus
    if how == "speaker+place":
        return np.array([f"{s}/{p}" for s, p in zip(data.speaker, data.place, strict=True)])
    return data.speaker


def capped(index: np.ndarray, corpus: np.ndarray, cap: int | None) -> np.ndarray:
    """``index`` with at most ``cap`` utterances of each corpus (evenly spread)."""
    if cap is None:
        return index
    kept = []
    for name in np.unique(corpus[index]):
        members = index[corpus[index] == name]
        kept.append(np.array(evenly_spread(list(members), cap)))
    return np.sort(np.concatenate(kept))


def speaker_directions(x: np.ndarray, speakers: np.ndarray, k: int) -> np.ndarray:
    """(D, k) orthonormal top directions of the training speakers' mean features."""
    means = np.stack([x[speakers == s].mean(0) for s in np.unique(speakers)])
    means -= means.mean(0)
    _, _, vt = np.linalg.svd(means, full_matrices=False)
    return vt[:k].T


def fold(data: Data, held: str, recipe: Recipe, prior_seconds: float) -> dict:
    """Logits (plain, corpus-adapted, speaker-adapted) of ``held`` after training on the rest."""
    layers = list(recipe.layers)
    train = capped(np.flatnonzero(data.corpus != held), data.corpus, recipe.corpus_cap)
    groups = groups_of(data, recipe.normalise)
    prior = pooled_moments(data.moments(train, layers))
    if recipe.normalise == "speaker+prior":  # what a clip alone gets at inference, too
        x = np.concatenate([pooled(data, train, layers, data.speaker[train], None),
                            pooled(data, train, layers, None, prior)])  # fmt: skip
        train = np.concatenate([train, train])
    else:
        x = pooled(data, train, layers, groups[train], None)
    projection = None
    if recipe.project:
        plain = pooled(data, train, layers, None, prior)
        basis = speaker_directions(plain, data.speaker[train], recipe.project)
        projection = lambda v: v - (v @ basis) @ basis.T  # noqa: E731
        x = projection(x)
    weight, bias = fit_logistic(x, data.labels[train], data.corpus[train], N_CLASSES, recipe.c)
    test = np.flatnonzero(data.corpus == held)
    logits = {}
    for how, test_groups, seconds in (
        ("plain", None, prior_seconds), ("corpus", data.corpus[test], prior_seconds),
        ("speaker", data.speaker[test], prior_seconds),
        *[(f"corpus{s:g}", data.corpus[test], s) for s in FOLDER_PRIORS],
    ):  # fmt: skip
        v = pooled(data, test, layers, test_groups, prior, seconds)
        logits[how] = (projection(v) if projection else v) @ weight.T + bias
    return {"logits": logits, "labels": data.labels[test]}


def scores(z: np.ndarray, y: np.ndarray, temperature: float) -> dict:
    """UA, most-given share and ECE over all seven labels and over the corpus's own labels."""
    own = np.unique(y)
    out = {}
    for suffix, columns in (("", np.arange(z.shape[1])), ("_own_labels", own)):
        p = torch.softmax(torch.tensor(z[:, columns]) / temperature, -1).numpy()
        predicted = columns[p.argmax(1)]
        target = np.searchsorted(columns, y)
        out[f"ua{suffix}"] = ua(y, predicted)
        out[f"max_share{suffix}"] = max_share(predicted)
        out[f"ece{suffix}"] = expected_calibration_error(p, target)
    return out


def evaluate(name: str, data: tuple[Data, Data], prior_seconds: float) -> dict:
    recipe = RECIPES[name]
    chosen = data[1] if recipe.speech_only else data[0]
    folds = {held: fold(chosen, held, recipe, prior_seconds) for held in CORPORA}
    row = {"recipe": name, "per_corpus": {}}
    for held, result in folds.items():
        others = [f for k, f in folds.items() if k != held]
        weights = np.concatenate([np.full(len(f["labels"]), 1 / len(f["labels"]))
                                  for f in others])  # fmt: skip
        temperature = fit_temperature(np.concatenate([f["logits"]["plain"] for f in others]),
                                      np.concatenate([f["labels"] for f in others]),
                                      weights)  # fmt: skip
        row["per_corpus"][held] = {"temperature": round(temperature, 3)} | {
            f"{how}_{k}" if how != "plain" else k: v
            for how, z in result["logits"].items()
            for k, v in scores(z, result["labels"], temperature).items()
        }  # fmt: skip
    per = row["per_corpus"].values()
    for key in ("ua", "ua_own_labels", "corpus_ua_own_labels", "speaker_ua_own_labels"):
        row[f"mean_{key}"] = float(np.mean([r[key] for r in per]))
        row[f"worst_{key}"] = float(np.min([r[key] for r in per]))
    row["max_share_own_labels"] = float(np.max([r["max_share_own_labels"] for r in per]))
    row["max_ece_own_labels"] = float(np.max([r["ece_own_labels"] for r in per]))
    for how in ("corpus", "speaker", *[f"corpus{s:g}" for s in FOLDER_PRIORS]):
        gains = [r[f"{how}_ua_own_labels"] - r["ua_own_labels"] for r in per]
        row[f"mean_{how}_gain"], row[f"worst_{how}_gain"] = np.mean(gains), np.min(gains)
    return row


def render_markdown(results: dict) -> str:
    """The report (the JSON, as written or read back)."""
    rows, prior_seconds = results["rows"], results["prior_seconds"]
    command, machine = results["command"], results["machine"]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    cells = [[r["recipe"], pct(r["mean_ua"]), pct(r["mean_ua_own_labels"]),
              pct(r["worst_ua_own_labels"]), f"{100 * r['max_share_own_labels']:.0f}",
              f"{r['max_ece_own_labels']:.3f}", pct(r["mean_corpus_ua_own_labels"]),
              pct(r["worst_corpus_gain"]), pct(r["mean_speaker_ua_own_labels"]),
              pct(r["worst_speaker_gain"])]
             for r in rows]  # fmt: skip
    table = common.markdown_table(
        ["recipe (each row changes the first)", "UA % alone, 7 labels", "own labels (mean)",
         "worst", "top label % (max)", "ECE (max)", "UA % corpus-adapted", "worst gain",
         "UA % speaker-adapted", "worst gain"], cells)  # fmt: skip
    first = rows[0]["per_corpus"]
    detail = common.markdown_table(
        ["held-out corpus (first row)", "UA % 7 labels", "UA % own labels", "top label %",
         "ECE", "temperature", "corpus-adapted", "speaker-adapted"],
        [[k, pct(r["ua"]), pct(r["ua_own_labels"]), f"{100 * r['max_share_own_labels']:.0f}",
          f"{r['ece_own_labels']:.3f}", r["temperature"], pct(r["corpus_ua_own_labels"]),
          pct(r["speaker_ua_own_labels"])] for k, r in first.items()])  # fmt: skip
    adaptation = common.markdown_table(
        ["held-out corpus (first row)", "UA % alone", *[f"adapted to the corpus, prior {s:g} s"
         for s in (prior_seconds, *FOLDER_PRIORS)], f"adapted to each speaker, prior "
         f"{prior_seconds:g} s"],
        [[k, pct(r["ua_own_labels"]), *[pct(r[f"{how}_ua_own_labels"]) for how in
          ("corpus", *[f"corpus{s:g}" for s in FOLDER_PRIORS])],
          pct(r["speaker_ua_own_labels"])] for k, r in first.items()])  # fmt: skip
    return (f"# Recipe search, leave one corpus out over {', '.join(CORPORA)}\n\n"
            "Frozen Whisper base, mean and std of each layer's normalised hidden states over "
            "the whole clip (no VAD), logistic regression; each clip standardised by the "
            "training statistics; temperature of each held-out corpus fitted on the other "
            f"seven's held-out logits. Adapted: statistics shrunk to the prior by "
            f"{prior_seconds:g} s. Chance is 14 % (7 labels) to 25 % (4).\n\n"
            f"{table}\n\n{detail}\n\n## Adaptation (own labels)\n\n{adaptation}\n\n"
            f"Reproduce: `{command}`. Machine: "
            f"{machine.get('cpu_model')}, {machine.get('usable_cores')} cores.\n")  # fmt: skip


def progress(name: str, r: dict) -> str:
    return (f"{name}: own labels {100 * r['mean_ua_own_labels']:.1f} (worst "
            f"{100 * r['worst_ua_own_labels']:.1f}), 7 labels {100 * r['mean_ua']:.1f}, "
            f"top {100 * r['max_share_own_labels']:.0f} %, corpus-adapted "
            f"{100 * r['mean_corpus_ua_own_labels']:.1f} (worst gain "
            f"{100 * r['worst_corpus_gain']:.1f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora-root", default=str(common.CORPORA))
    parser.add_argument("--extra-root", default=str(REPO.parent / "corpora-extra"))
    parser.add_argument("--out", default=str(REPO / "results" / "loco8"))
    parser.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    parser.add_argument("--prior-seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--moments", help="an .npz file keeping the clips' moments between runs")
    args = parser.parse_args()
    set_threads(args.threads)
    began = time.perf_counter()
    roots = {c: Path(args.corpora_root if c in SHARED else args.extra_root) / c for c in CORPORA}
    data = load_data(roots, Path(args.moments) if args.moments else None)
    results = {
        "rows": [],
        "command": "python " + shlex.join(sys.argv),
        "machine": common.machine_info(),
        "prior_seconds": args.prior_seconds,
    }
    for name in args.recipes:
        results["rows"].append(evaluate(name, data, args.prior_seconds))
        print(progress(name, results["rows"][-1]), flush=True)
        results["seconds"] = round(time.perf_counter() - began)
        # after every row: a long search keeps its rows
        common.write_results("recipes", results, render_markdown(results), Path(args.out))


if __name__ == "__main__":
    main()
