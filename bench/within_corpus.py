"""The default model's recipe within each corpus, speaker-independent: the project's folds
(trained per corpus on the training speakers and their degraded copies), tested on the unseen
speakers alone and speaker-adapted; ASED also on its two common sentences.

    python bench/within_corpus.py --threads 1    # writes <out>/within.{json,md}
    python bench/within_corpus.py --speech-only --out results/loco8 --threads 1
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import _common as common
import numpy as np
from loco4_recipes import CORPORA, Data, add_data_args, load_data, pooled, read_moments

from emofuse.corpora import load_corpus
from emofuse.corpora.labels import apply_task, get_task
from emofuse.device import set_threads
from emofuse.experiments.splits import default_protocol, make_folds
from emofuse.metrics import unweighted_accuracy as ua
from emofuse.training.linear_head import fit_logistic, pooled_moments

LAYERS = [0, 1, 2]  # Whisper layers 1-3, as shipped


def fold_scores(data: list[Data], corpus: str, c: float, train_filter=None, test_filter=None):
    """Per fold: UA alone and speaker-adapted on the test speakers of ``corpus`` (folds with
    no test clip left by ``test_filter`` are skipped)."""
    original = data[0]
    utts = apply_task(load_corpus(corpus, original.roots[corpus]), get_task("bundled7")).utterances
    folds = make_folds(utts, default_protocol(corpus), seed=0)
    index = {u.id: i for i, u in enumerate(u for u in original.utterances if u.corpus == corpus)}
    offset = int(np.flatnonzero(original.corpus == corpus)[0])
    scores = []
    for fold in folds:
        train_ids = [u.id for u in fold.train + fold.val if train_filter is None or train_filter(u)]
        test_ids = [u.id for u in fold.test if test_filter is None or test_filter(u)]
        if not test_ids:  # ASED: the common sentences were recorded by some speakers only
            continue
        xs, ys = [], []
        for d in data:
            rows = np.array([offset + index[i] for i in train_ids])
            xs.append(pooled(d, rows, LAYERS, d.speaker[rows], None))
            ys.append(d.labels[rows])
        weight, bias = fit_logistic(np.concatenate(xs), np.concatenate(ys),
                                    np.zeros(sum(map(len, ys))), 7, c)  # fmt: skip
        train_rows = np.array([offset + index[i] for i in train_ids])
        prior = pooled_moments(original.moments(train_rows, LAYERS))
        test = np.array([offset + index[i] for i in test_ids])
        y = original.labels[test]
        alone = pooled(original, test, LAYERS, None, prior) @ weight.T + bias
        adapted = pooled(original, test, LAYERS, original.speaker[test], prior) @ weight.T + bias
        scores.append((ua(y, alone.argmax(1)), ua(y, adapted.argmax(1))))
    return np.array(scores)


@dataclass(frozen=True)
class Scores:
    """One row: UA alone and speaker-adapted per fold (``folds``: pairs, as the JSON keeps them)."""

    name: str
    folds: list[list[float]]

    def cells(self) -> list:
        scores = np.array(self.folds)
        mean, std = 100 * scores.mean(0), 100 * scores.std(0)
        return [self.name, len(scores), f"{mean[0]:.1f} +- {std[0]:.1f}",
                f"{mean[1]:.1f} +- {std[1]:.1f}"]  # fmt: skip

    def to_dict(self) -> dict:
        mean = 100 * np.array(self.folds).mean(0)
        return {"folds": self.folds, "ua_alone": mean[0], "ua_speaker": mean[1]}


def every_corpus(data: list[Data], c: float) -> list[Scores]:
    """Each corpus on its own folds, and ASED's common sentences trained on the others."""
    common_sentence = lambda u: u.extras.get("common", True)  # noqa: E731
    specific = lambda u: not u.extras.get("common", True)  # noqa: E731
    runs = [(c, c, None, None) for c in CORPORA]
    runs.append(("ased, common sentences (trained on the others)", "ased", specific,
                 common_sentence))  # fmt: skip
    rows = []
    for name, corpus, train_filter, test_filter in runs:
        rows.append(Scores(name, fold_scores(data, corpus, c, train_filter, test_filter).tolist()))
        print(rows[-1].cells(), flush=True)
    return rows


def render_markdown(results: dict) -> str:
    """The report (the JSON, as written or read back)."""
    rows = [Scores(name, r["folds"]).cells() for name, r in results["rows"].items()]
    table = common.markdown_table(["corpus", "folds", "UA % alone", "UA % speaker-adapted"], rows)
    return ("# The default model's recipe within each corpus (speaker-independent folds)\n\n"
            f"{table}\n\nReproduce: `{results['command']}`.\n")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    parser.add_argument("--no-degraded", action="store_true", help="train on the original "
                        "clips only (the eight-corpus recipe)")  # fmt: skip
    parser.add_argument("--speech-only", action="store_true", help="statistics of the speech "
                        "frames only (implies --no-degraded)")  # fmt: skip
    args = parser.parse_args()
    set_threads(args.threads)
    if args.speech_only:
        data = [read_moments({c: Path(args.corpora_root) / c for c in CORPORA})[1]]
    else:
        data = load_data(args, copies=0 if args.no_degraded else 2)
    rows = every_corpus(data, args.c)
    results = {"rows": {r.name: r.to_dict() for r in rows},
               "command": common.command_line(), "machine": common.machine_info()}  # fmt: skip
    common.write_results("within", results, render_markdown(results), Path(args.out))


if __name__ == "__main__":
    main()
