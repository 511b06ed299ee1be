"""Unlabelled adaptation measured with leave-one-corpus-out: each fold's model predicts its
held-out corpus as trained, then after ``EmotionRecognizer.adapt`` on that corpus's audio (its
labels unused). Both go through the recogniser, as a user's files would.

Usage: python scripts/adapt_loco.py RUN_DIR [--threads 1]
RUN_DIR: a finished ``emofuse crossval --protocol loco`` run whose fold folders keep model.pt.
Writes RUN_DIR/adaptation.json and RUN_DIR/adaptation.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from emofuse.config import load_config
from emofuse.device import set_threads
from emofuse.experiments.loading import prepare_experiment
from emofuse.experiments.machine import machine_description
from emofuse.files import write_json, write_text
from emofuse.inference import EmotionRecognizer
from emofuse.metrics import unweighted_accuracy, weighted_accuracy


def score(recognizer: EmotionRecognizer, paths: list[str], labels: np.ndarray) -> dict:
    predictions = recognizer.predict_many(paths, batch_size=16)
    index = {name: i for i, name in enumerate(recognizer.labels)}
    predicted = np.array([index.get(p.label, -1) for p in predictions])
    return {"ua": round(100 * unweighted_accuracy(labels, predicted), 1),
            "wa": round(100 * weighted_accuracy(labels, predicted), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    run = Path(args.run_dir)
    experiment = prepare_experiment(load_config(run / "config.yaml"))
    task = experiment.task
    rows = []
    for i, fold in enumerate(experiment.folds):
        began = time.perf_counter()
        recognizer = EmotionRecognizer.load(run / f"fold_{i:02d}" / "model.pt", device="cpu")
        paths = [str(u.path) for u in fold.test]
        labels = np.array([task.index(u.label) for u in fold.test])
        corpus = fold.test[0].corpus
        plain = score(recognizer, paths, labels)
        adapted = recognizer.adapt(paths)
        row = {"held_out": corpus, "n": len(paths), "plain": plain,
               "adapted": score(adapted, paths, labels), "adapted_on": adapted.adaptation,
               "seconds": round(time.perf_counter() - began, 1)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    write_report(run, rows)


def write_report(run: Path, rows: list[dict]) -> None:
    """``adaptation.json`` and ``adaptation.md`` in ``run`` from the per-fold rows."""
    result = {"run": str(run), "machine": machine_description(), "folds": rows,
              "mean": {k: round(float(np.mean([r[k]["ua"] for r in rows])), 1)
                       for k in ("plain", "adapted")}}  # fmt: skip
    write_json(result, run / "adaptation.json")
    lines = ["| held-out corpus | n | UA % as trained | UA % adapted | WA % as trained | "
             "WA % adapted |", "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['held_out']} | {r['n']} | {r['plain']['ua']} | {r['adapted']['ua']} "
                     f"| {r['plain']['wa']} | {r['adapted']['wa']} |")  # fmt: skip
    lines.append(f"| **mean** | | **{result['mean']['plain']}** | **{result['mean']['adapted']}**"
                 " | | |")  # fmt: skip
    write_text(run / "adaptation.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
