"""Leave one corpus out over every corpus of a config, as a user's files go (the deployment
benchmark of the default model): the eight corpora of ``configs/accurate.yaml`` by default.

Per held-out corpus: train ``--config`` on the others, score every held-out file through
``EmotionRecognizer.predict_many`` (VAD on) and again after ``adapt`` on its audio: UA, WA,
most-given label and share, ECE, also over the corpus's own labels (``*_own_labels``).

    python bench/loco.py --threads 1                              # the eight corpora
    python bench/loco.py --corpora emovo --quick                  # one corpus, 60 files

Rows are kept in ``<work>/<corpus>/row.json`` and read back (runs resume and can share the
work); writes ``<out>/summary.json`` and ``summary.md`` (``-quick`` for smoke runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import _common as common
import numpy as np

from emofuse.config import CorpusSpec, load_config
from emofuse.corpora import load_corpus
from emofuse.corpora.labels import apply_task, get_task
from emofuse.device import set_threads
from emofuse.experiments.deployable import train_final
from emofuse.experiments.loading import evenly_spread
from emofuse.files import write_json
from emofuse.inference import EmotionRecognizer
from emofuse.metrics import (
    expected_calibration_error,
    max_share,
    unweighted_accuracy,
    weighted_accuracy,
)

REPO = Path(__file__).resolve().parents[1]
CORPORA = ("emodb", "ravdess", "emovo", "ased")  # the four shared corpora


def answers(recognizer: EmotionRecognizer, paths: list[str]) -> np.ndarray:
    """(N, C) probabilities of the recogniser's answers on ``paths`` in its label order; rows
    of NaN where it answered "no speech"."""
    return np.array([[np.nan] * len(recognizer.labels) if p.silent
                     else [p.probabilities[k] for k in recognizer.labels]
                     for p in recognizer.predict_many(paths, batch_size=16)])  # fmt: skip


def scored(probabilities: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    """UA, WA, most-given label and its share, ECE of :func:`answers`-like probabilities;
    "no speech" rows count as errors in UA and WA and are left out of ECE; the same over the
    labels present in ``labels`` (keys ending ``_own_labels``)."""
    own = np.unique(labels)
    restricted = probabilities[:, own] / probabilities[:, own].sum(axis=1, keepdims=True)
    mine = _scored(restricted, np.searchsorted(own, labels), [names[i] for i in own])
    return {**_scored(probabilities, labels, names),
            **{f"{k}_own_labels": v for k, v in mine.items()}}  # fmt: skip


@dataclass(frozen=True)
class Score:
    """A held-out corpus scored (a row's columns): "no speech" answers count as errors in UA
    and WA and are left out of ECE."""

    ua: float
    wa: float
    max_share: float
    most_given: str
    ece: float | None
    no_speech: int


def _scored(probabilities: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    spoken = ~np.isnan(probabilities).any(axis=1)
    predicted = np.where(spoken, np.nan_to_num(probabilities).argmax(axis=1), -1)
    given, counts = np.unique(predicted, return_counts=True)
    most = given[counts.argmax()]
    return asdict(Score(
        unweighted_accuracy(labels, predicted), weighted_accuracy(labels, predicted),
        max_share(predicted), names[most] if most >= 0 else "no speech",
        expected_calibration_error(probabilities[spoken], labels[spoken]) if spoken.any()
        else None, int((~spoken).sum())))  # fmt: skip


def score(recognizer: EmotionRecognizer, paths: list[str], labels: np.ndarray) -> dict:
    """:func:`scored` answers of ``recognizer`` on ``paths``."""
    return scored(answers(recognizer, paths), labels, recognizer.labels)


def held_out_files(corpus: str, spec: CorpusSpec, task_name: str, limit: int | None):
    task = get_task(task_name)
    utterances = evenly_spread(apply_task(load_corpus(corpus, spec.root), task).utterances, limit)
    return [str(u.path) for u in utterances], np.array([task.index(u.label) for u in utterances])


ADAPTED_KEYS = ("ua", "wa", "max_share", "ece")


def held_out_row(config, corpus: str, args: argparse.Namespace) -> dict:
    """Train on every configured corpus but ``corpus``, score the held-out files plain and
    after adaptation; the row of the summary."""
    began = time.perf_counter()
    specs = config.data.corpora
    original = next(s for s in specs if s.name == corpus)
    trained_on = [s for s in specs if s.name != corpus]
    held = dataclasses.replace(config, data=dataclasses.replace(config.data, corpora=trained_on))
    held.train = dataclasses.replace(held.train, num_threads=args.threads,
                                     normalise=args.normalise or held.train.normalise)  # fmt: skip
    model_dir = Path(args.work) / corpus
    report = train_final(held, model_dir, progress=False)
    paths, labels = held_out_files(corpus, original, config.data.task, 60 if args.quick else None)
    recognizer = EmotionRecognizer.load(model_dir / "model.pt", device="cpu", precision="fp32")
    plain = score(recognizer, paths, labels)
    adapted_recognizer = recognizer.adapt(paths, min_seconds=30.0 if args.quick else 60.0)
    adapted = score(adapted_recognizer, paths, labels)
    return {
        **plain,
        **{f"{k}_adapted": adapted[k] for k in ADAPTED_KEYS},
        **{f"{k}_adapted_own_labels": adapted[f"{k}_own_labels"] for k in ADAPTED_KEYS},
        "adapted_on": adapted_recognizer.adaptation,
        "files": len(paths),
        "trained_on": sorted({s.name for s in trained_on}),
        "train_utterances": sum(report["train_utterances"].values()),
        "temperature": report.get("temperature"),
        "seconds": round(time.perf_counter() - began, 1),
    }


def summarize(rows: dict[str, dict], config, args: argparse.Namespace) -> dict:
    """Means and worst cases over the held-out corpora, with the run's settings."""
    values = lambda key: [r[key] for r in rows.values()]  # noqa: E731
    mean = lambda key: float(np.mean(values(key)))  # noqa: E731
    own = "_own_labels"
    return {
        "corpora": rows,
        "mean_ua": mean("ua"),
        "worst_ua": float(np.min(values("ua"))),
        "mean_ua_adapted": mean("ua_adapted"),
        "mean_ua_own_labels": mean("ua" + own),
        "worst_ua_own_labels": float(np.min(values("ua" + own))),
        "mean_ua_adapted_own_labels": mean("ua_adapted" + own),
        "max_share_own_labels": float(np.max(values("max_share" + own))),
        "max_ece_own_labels": float(np.max(values("ece" + own))),
        "worst_adaptation_gain_own_labels": float(
            np.min([r["ua_adapted" + own] - r["ua" + own] for r in rows.values()])
        ),  # fmt: skip
        "config": str(Path(args.config).resolve().relative_to(REPO)),
        "normalise": args.normalise or config.train.normalise,
        "command": common.command_line(),
        "machine": common.machine_info(),
        "threads": args.threads,
    }


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, object, list[str]]:
    """The options, the config and the held-out corpora to run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "accurate.yaml"))
    parser.add_argument("--corpora", nargs="+", help="held-out corpora (default: every one)")
    parser.add_argument("--out", default=str(REPO / "results" / "loco8"))
    parser.add_argument("--work", default=str(REPO / "runs" / "loco8"))
    parser.add_argument("--normalise", choices=("global", "speaker"),
                        help="override the config's train.normalise")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="60 held-out files per corpus")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    configured = list(dict.fromkeys(s.name for s in config.data.corpora))
    unknown = sorted(set(args.corpora or ()) - set(configured))
    if unknown:
        parser.error(f"--corpora {unknown} not in {args.config}: {configured}")
    return args, config, args.corpora or configured


def main(argv: list[str] | None = None) -> None:
    args, config, corpora = parse_args(argv)
    set_threads(args.threads)
    rows = {}
    for corpus in corpora:
        row_file = Path(args.work) / corpus / ("row-quick.json" if args.quick else "row.json")
        if row_file.is_file():  # finished before (another process, an interrupted run)
            rows[corpus] = json.loads(row_file.read_text())
            continue
        rows[corpus] = held_out_row(config, corpus, args)
        write_json(rows[corpus], row_file)
        print(corpus, {k: v for k, v in rows[corpus].items() if k != "adapted_on"}, flush=True)
    summary = summarize(rows, config, args)
    common.write_results("summary", summary, markdown(summary), Path(args.out), quick=args.quick)


def markdown(summary: dict) -> str:
    percent = lambda v: "" if v is None else f"{100 * v:.1f}"  # noqa: E731
    ece = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    own = "_own_labels"
    rows = [[name, r["files"], percent(r["ua"]),
             f"{percent(r['max_share'])} ({r['most_given']})", percent(r["ua" + own]),
             percent(r["wa" + own]), f"{percent(r['max_share' + own])} ({r['most_given' + own]})",
             ece(r["ece" + own]), percent(r["ua_adapted" + own]),
             percent(r["ua_adapted" + own] - r["ua" + own]), r.get("no_speech", "")]
            for name, r in summary["corpora"].items()]  # fmt: skip
    rows.append(["mean", "", percent(summary["mean_ua"]), "",
                 percent(summary.get("mean_ua" + own)), "", "", "",
                 percent(summary.get("mean_ua_adapted" + own)), "", ""])  # fmt: skip
    table = common.markdown_table(
        ["held-out corpus", "files", "UA % (7 labels)", "most-given % (7)", "UA % own labels",
         "WA %", "most-given %", "ECE", "UA % adapted", "gain", "no speech"], rows)  # fmt: skip
    machine = summary["machine"]
    return (f"# Leave one corpus out, through the recogniser ({summary['config']}, "
            f"normalise {summary.get('normalise', 'speaker')})\n\n{table}\n\n"
            "Own labels: the answer restricted to the labels the held-out corpus has "
            "(`--labels`); WA, ECE and the adapted columns are over them too.\n\n"
            f"Worst held-out UA (own labels) {percent(summary.get('worst_ua' + own))} %. "
            "Reproduce: "
            f"`{summary['command']}`. Machine: {machine.get('cpu_model')}, "
            f"{machine.get('usable_cores')} cores, {summary['threads']} thread(s).\n")  # fmt: skip


if __name__ == "__main__":
    main()
