"""Leave one corpus out over the four shared corpora, as a user's files go (the deployment
benchmark of the default model).

For each held-out corpus: the recipe of ``--config`` (default ``configs/accurate.yaml``) is
trained on every other configured corpus (their degraded copies included, none of the held-out
one's), then every held-out file goes through ``EmotionRecognizer.predict_many`` (voice
activity detection on, each clip on its own), then through the same recogniser after
``adapt`` on the held-out corpus's audio (labels unused). Per corpus: UA, WA, the share and name
of the most-given label, expected calibration error (15 bins; clips answered "no speech" count
as errors in UA and WA and are left out of ECE), and the adapted UA, WA and share.

    python bench/loco4.py --threads 1               # about 40 min on 2 cores
    python bench/loco4.py --corpora emovo --quick   # one corpus, 60 files: a smoke run

Writes ``results/loco4/summary.json`` and ``summary.md`` (``-quick`` files for smoke runs);
models under ``runs/loco4/<corpus>/``. Needs the shared corpora (``../shared/corpora``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, markdown_table, write_results  # noqa: E402

from emofuse.config import CorpusSpec, load_config  # noqa: E402
from emofuse.corpora import load_corpus  # noqa: E402
from emofuse.corpora.labels import apply_task, get_task  # noqa: E402
from emofuse.device import set_threads  # noqa: E402
from emofuse.experiments.deployable import train_final  # noqa: E402
from emofuse.inference import EmotionRecognizer  # noqa: E402
from emofuse.metrics import (  # noqa: E402
    expected_calibration_error,
    max_share,
    unweighted_accuracy,
    weighted_accuracy,
)

REPO = Path(__file__).resolve().parents[1]
CORPORA = ("emodb", "ravdess", "emovo", "ased")


def answers(recognizer: EmotionRecognizer, paths: list[str]) -> np.ndarray:
    """(N, C) probabilities of the recogniser's answers on ``paths`` in its label order; rows
    of NaN where it answered "no speech"."""
    return np.array([[np.nan] * len(recognizer.labels) if p.silent
                     else [p.probabilities[k] for k in recognizer.labels]
                     for p in recognizer.predict_many(paths, batch_size=16)])  # fmt: skip


def scored(probabilities: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    """UA, WA, most-given label and its share, ECE of :func:`answers`-like probabilities;
    "no speech" rows count as errors in UA and WA and are left out of ECE."""
    spoken = ~np.isnan(probabilities).any(axis=1)
    predicted = np.where(spoken, np.nan_to_num(probabilities).argmax(axis=1), -1)
    given, counts = np.unique(predicted, return_counts=True)
    return {
        "ua": unweighted_accuracy(labels, predicted),
        "wa": weighted_accuracy(labels, predicted),
        "max_share": max_share(predicted),
        "most_given": names[given[counts.argmax()]] if given[counts.argmax()] >= 0
        else "no speech",
        "ece": expected_calibration_error(probabilities[spoken], labels[spoken])
        if spoken.any() else None,
        "no_speech": int((~spoken).sum()),
    }  # fmt: skip


def score(recognizer: EmotionRecognizer, paths: list[str], labels: np.ndarray) -> dict:
    """:func:`scored` answers of ``recognizer`` on ``paths``."""
    return scored(answers(recognizer, paths), labels, recognizer.labels)


def held_out_files(corpus: str, spec: CorpusSpec, task_name: str, limit: int | None):
    task = get_task(task_name)
    utterances = apply_task(load_corpus(corpus, spec.root), task).utterances
    if limit:
        utterances = utterances[:: max(1, len(utterances) // limit)][:limit]
    return [str(u.path) for u in utterances], np.array([task.index(u.label) for u in utterances])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "accurate.yaml"))
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=CORPORA)
    parser.add_argument("--out", default=str(REPO / "results" / "loco4"))
    parser.add_argument("--work", default=str(REPO / "runs" / "loco4"))
    parser.add_argument("--normalise", choices=("global", "speaker"),
                        help="override the config's train.normalise")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="60 held-out files per corpus")
    args = parser.parse_args()
    set_threads(args.threads)
    config = load_config(args.config)
    rows = {}
    for corpus in args.corpora:
        began = time.perf_counter()
        specs = config.data.corpora
        original = next(s for s in specs if s.name == corpus)
        trained_on = [s for s in specs if s.name != corpus]
        data = dataclasses.replace(config.data, corpora=trained_on)
        held = dataclasses.replace(config, data=data)
        held.train = dataclasses.replace(held.train, num_threads=args.threads,
                                         normalise=args.normalise or held.train.normalise)
        model_dir = Path(args.work) / corpus
        report = train_final(held, model_dir, progress=False)
        limit = 60 if args.quick else None
        paths, labels = held_out_files(corpus, original, config.data.task, limit)
        recognizer = EmotionRecognizer.load(model_dir / "model.pt", device="cpu")
        plain = score(recognizer, paths, labels)
        adapted_recognizer = recognizer.adapt(paths, min_seconds=30.0 if args.quick else 60.0)
        adapted = score(adapted_recognizer, paths, labels)
        rows[corpus] = {
            **plain,
            "ua_adapted": adapted["ua"],
            "wa_adapted": adapted["wa"],
            "max_share_adapted": adapted["max_share"],
            "ece_adapted": adapted["ece"],
            "adapted_on": adapted_recognizer.adaptation,
            "files": len(paths),
            "trained_on": sorted({s.name for s in trained_on}),
            "train_utterances": sum(report["train_utterances"].values()),
            "seconds": round(time.perf_counter() - began, 1),
        }
        print(corpus, {k: v for k, v in rows[corpus].items() if k != "adapted_on"}, flush=True)
    uas = [r["ua"] for r in rows.values()]
    summary = {
        "corpora": rows,
        "mean_ua": float(np.mean(uas)),
        "worst_ua": float(np.min(uas)),
        "mean_ua_adapted": float(np.mean([r["ua_adapted"] for r in rows.values()])),
        "config": str(Path(args.config).resolve().relative_to(REPO)),
        "normalise": args.normalise or config.train.normalise,
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(),
        "threads": args.threads,
    }
    write_results("summary", summary, markdown(summary), Path(args.out), quick=args.quick)


def markdown(summary: dict) -> str:
    percent = lambda v: "" if v is None else f"{100 * v:.1f}"  # noqa: E731
    rows = [[name, r["files"], percent(r["ua"]), percent(r["wa"]),
             f"{percent(r['max_share'])} ({r['most_given']})", f"{r['ece']:.3f}",
             percent(r["ua_adapted"]), f"{percent(r['ua_adapted'] - r['ua'])}",
             percent(r["max_share_adapted"])]
            for name, r in summary["corpora"].items()]  # fmt: skip
    rows.append(["mean", "", percent(summary["mean_ua"]), "", "", "",
                 percent(summary["mean_ua_adapted"]), "", ""])  # fmt: skip
    table = markdown_table(
        ["held-out corpus", "files", "UA %", "WA %", "most-given label %", "ECE",
         "UA % adapted", "gain", "most-given % adapted"], rows)  # fmt: skip
    machine = summary["machine"]
    return (f"# Leave one corpus out, through the recogniser ({summary['config']}, "
            f"normalise {summary.get('normalise', 'speaker')})\n\n{table}\n\n"
            f"Worst held-out UA {percent(summary['worst_ua'])} %. Reproduce: "
            f"`{summary['command']}`. Machine: {machine.get('cpu_model')}, "
            f"{machine.get('usable_cores')} cores, {summary['threads']} thread(s).\n")  # fmt: skip


if __name__ == "__main__":
    main()
