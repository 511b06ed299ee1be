"""What bfloat16 changes: each bundled model's answers in bfloat16 vs float32, per shared corpus.

Every clip of EmoDB, RAVDESS, EMOVO and ASED through ``predict_many`` (no VAD) in float32 and
in bfloat16: the share of clips given the same label, the largest probability difference, UA of
each (agreement, not accuracy: the models saw most clips) and the time. ``--precision auto``
picks bfloat16 for a model only when its share is at least 98.5 % on every corpus; with
``--save-into-models`` each model's shares are written into its model file
(``extra["bf16_agreement"]``; the bundled ones in ``emofuse/pretrained/``), where ``auto`` reads
them. Also timed: deciding ``auto`` (what start-up pays for it).

    python bench/precision.py [--models accurate fast] [--limit N] [--save-into-models]
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import _common as common
import numpy as np
import torch

NAMES = ("emodb", "ravdess", "emovo", "ased")


@dataclass(frozen=True)
class Row:
    """One model on one corpus: how far bf16's answers are from fp32's."""

    model: str
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


def compare(corpus: str, model: str, limit: int | None) -> Row:
    """Every clip of ``corpus`` (its default task) in fp32 and bf16."""
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
    labels = recognizer.labels
    kept = [(a, b, u.label) for a, b, u in zip(answers["fp32"], answers["bf16"], utterances,
                                                 strict=True) if not a.silent]  # fmt: skip
    expected = [label for _, _, label in kept]
    same = float(np.mean([a.label == b.label for a, b, _ in kept]))
    return Row(
        model, corpus, len(kept), round(same, 4),
        round(max(abs(a.probabilities[k] - b.probabilities[k]) for a, b, _ in kept
                  for k in labels), 4),
        round(model_ua([a.label for a, _, _ in kept], expected, labels), 4),
        round(model_ua([b.label for _, b, _ in kept], expected, labels), 4),
        seconds["fp32"], seconds["bf16"],
    )  # fmt: skip


def save_agreement(model: str, rows: list[Row]) -> str:
    """Write ``model``'s shares into its model file (``extra["bf16_agreement"]``); its path."""
    from emofuse.pipeline import load_model, save_pipeline
    from emofuse.pipeline.modelfile import BUNDLED_MODELS, PRETRAINED_DIR

    path = PRETRAINED_DIR / f"{model}.pt" if model in BUNDLED_MODELS else model
    pipeline = load_model(path)
    agreement = {row.corpus: row.same_label for row in rows if row.model == model}
    save_pipeline(pipeline, path, **{**pipeline.extra, "bf16_agreement": agreement})
    return str(path)


def decision_ms() -> dict:
    """What ``auto`` costs at start-up: detecting the native bfloat16 unit, then choosing."""
    from emofuse.device import native_bf16
    from emofuse.inference.precision import choose_precision

    native_bf16.cache_clear()
    start = time.perf_counter()
    unit = native_bf16("cpu")
    choose_precision("auto", "cpu", {"emodb": 0.99})
    return {"native_bf16": unit, "decision_ms": round((time.perf_counter() - start) * 1000, 3)}


def render_markdown(results: dict) -> str:
    """The report (the JSON, as written or read back)."""
    machine, keys = results["machine"], [f.name for f in fields(Row)]
    rows = results["rows"]
    worst = {m: min(r["same_label"] for r in rows if r["model"] == m) for m in results["models"]}
    verdicts = [[m, f"{100 * share:.1f} %", "bf16" if share >= 0.985 else "fp32"]
                for m, share in worst.items()]  # fmt: skip
    return "\n\n".join([
        "# bfloat16 vs float32: the bundled models' answers",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; torch "
        f"{machine['torch']}; native bfloat16: {results['detection']['native_bf16']}; other "
        f"processes kept {results['other_processes_cores']} cores busy on average. Every clip "
        "of each corpus (default label task), `predict_many(workers=2)`, one torch thread, no "
        "VAD. The bundled models saw most of these clips in training: the UA columns show that "
        "the precisions agree, not how accurate the model is. Deciding `--precision auto` took "
        f"{results['detection']['decision_ms']} ms. Reproduce: `python bench/precision.py`.",
        "## What `--precision auto` may pick (at least 98.5 % same labels on every corpus)",
        common.markdown_table(["model", "least same-label share", "auto on native bfloat16"],
                              verdicts),  # fmt: skip
        "## Per corpus",
        common.markdown_table(keys, [[r[k] for k in keys] for r in rows]),
    ])  # fmt: skip


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--models", nargs="+", default=["accurate", "fast"])
    parser.add_argument("--limit", type=int, help="clips per corpus (default: all)")
    parser.add_argument("--save-into-models", action="store_true",
                        help="write each model's shares into its model file")  # fmt: skip
    args = parser.parse_args()
    if not common.CORPORA.is_dir():
        raise SystemExit(f"needs the corpora in {common.CORPORA}")
    torch.set_num_threads(1)
    before, start = common.load_average(), common.cpu_snapshot()
    names = [name for name in NAMES if (common.CORPORA / name).is_dir()]
    rows = [compare(name, model, args.limit) for model in args.models for name in names]
    saved = [save_agreement(model, rows) for model in args.models] if args.save_into_models else []
    results = {
        "machine": common.machine_info(), "models": args.models, "load_before": before,
        "other_processes_cores": common.other_processes_cores(start),
        "detection": decision_ms(), "saved_into": saved, "rows": [asdict(r) for r in rows],
    }  # fmt: skip
    common.write_results("precision", results, render_markdown(results), args.results_dir,
                         quick=args.limit is not None)  # fmt: skip


if __name__ == "__main__":
    main()
