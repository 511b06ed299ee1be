"""What ``--precision bf16`` changes: the accurate model's answers in bfloat16 vs float32.

Every clip of EmoDB, RAVDESS and EMOVO through ``predict_many`` in float32 and bfloat16: the
share of same labels, the largest probability difference, UA of each (agreement, not accuracy:
the models saw most clips) and the time.

    python bench/precision.py [--model accurate] [--limit N]    # bench/results/precision.*
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import _common as common
import numpy as np
import torch

NAMES = ("emodb", "ravdess", "emovo")


@dataclass(frozen=True)
class Row:
    """One corpus: how far bf16's answers are from fp32's (a row of the JSON and the table)."""

    corpus: str
    clips: int
    same_label: float
    max_probability_difference: float
    ua_fp32: float
    ua_bf16: float
    seconds_fp32: float
    seconds_bf16: float


def model_ua(predicted: list[str], truth: list[str], labels: tuple[str, ...]) -> float:
    """UA (:func:`emofuse.metrics.unweighted_accuracy`) over the clips whose class the model
    knows (a corpus class outside its labels, e.g. EmoDB's bored, is left out)."""
    from emofuse.metrics import unweighted_accuracy

    known = [(labels.index(t), p) for p, t in zip(predicted, truth, strict=True) if t in labels]
    y_true = np.array([t for t, _ in known])
    y_pred = np.array([labels.index(p) if p in labels else -1 for _, p in known])
    return unweighted_accuracy(y_true, y_pred)


def predictions(corpus: str, model: str, limit: int | None) -> tuple[dict, dict, list, tuple]:
    """Per precision the answers for the corpus's clips and the seconds they took; the labels
    of the clips and the model's labels."""
    from emofuse.corpora import load_corpus
    from emofuse.corpora.labels import apply_task, default_task
    from emofuse.inference import EmotionRecognizer

    task = default_task(corpus)
    utterances = apply_task(load_corpus(corpus, common.CORPORA / corpus), task).utterances[:limit]
    answers, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        recognizer = EmotionRecognizer.load(model, precision=precision, vad=False)
        start = time.perf_counter()
        answers[precision] = recognizer.predict_many([u.path for u in utterances], workers=2)
        seconds[precision] = round(time.perf_counter() - start, 1)
    return answers, seconds, [u.label for u in utterances], recognizer.labels


def compare(corpus: str, model: str, limit: int | None) -> Row:
    answers, seconds, truth, labels = predictions(corpus, model, limit)
    kept = [(a, b, label) for a, b, label in zip(answers["fp32"], answers["bf16"], truth,
                                                   strict=True) if not a.silent]  # fmt: skip
    expected = [label for _, _, label in kept]
    return Row(
        corpus, len(kept), round(float(np.mean([a.label == b.label for a, b, _ in kept])), 4),
        round(max(abs(a.probabilities[k] - b.probabilities[k]) for a, b, _ in kept
                  for k in labels), 4),
        round(model_ua([a.label for a, _, _ in kept], expected, labels), 4),
        round(model_ua([b.label for _, b, _ in kept], expected, labels), 4),
        seconds["fp32"], seconds["bf16"],
    )  # fmt: skip


def render_markdown(results: dict) -> str:
    """The report (the JSON, as written or read back)."""
    machine, keys = results["machine"], [f.name for f in fields(Row)]
    return "\n\n".join([
        f"# `--precision bf16` vs fp32: the {results['model']} model's answers",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; torch "
        f"{machine['torch']}; other processes kept {results['other_processes_cores']} cores "
        "busy on average. Every clip of each corpus (default label task), "
        "`predict_many(workers=2)`, one torch thread, no VAD. The bundled models saw most of "
        "these clips in training: the UA columns show that the precisions agree, not how "
        "accurate the model is. Reproduce: `python bench/precision.py`.",
        common.markdown_table(keys, [[r[k] for k in keys] for r in results["rows"]]),
    ])  # fmt: skip


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--model", default="accurate")
    parser.add_argument("--limit", type=int, help="clips per corpus (default: all)")
    args = parser.parse_args()
    if not common.CORPORA.is_dir():
        raise SystemExit(f"needs the corpora in {common.CORPORA}")
    torch.set_num_threads(1)
    before, start = common.load_average(), common.cpu_snapshot()
    names = [name for name in NAMES if (common.CORPORA / name).is_dir()]
    rows = [asdict(compare(name, args.model, args.limit)) for name in names]
    results = {
        "machine": common.machine_info(),
        "model": args.model,
        "load_before": before,
        "other_processes_cores": common.other_processes_cores(start),
        "rows": rows,
    }
    common.write_results("precision", results, render_markdown(results), args.results_dir,
                         quick=args.limit is not None)  # fmt: skip


if __name__ == "__main__":
    main()
