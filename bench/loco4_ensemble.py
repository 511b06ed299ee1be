"""Leave one corpus out: the accurate model, the fast model, and their probabilities averaged.

For each held-out corpus, the two models ``bench/loco4.py`` trained without it (``--accurate``,
``--fast``) predict every held-out file; the ensemble is ``(1 - w) * accurate + w * fast`` per
weight ``w``, scored as ``bench/loco4.py`` scores.

    python bench/loco4_ensemble.py --threads 1    # writes results/loco4/ensemble.{json,md}
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common as common
import numpy as np
from loco import CORPORA, REPO, answers, held_out_files, scored

from emofuse.config import load_config
from emofuse.device import set_threads
from emofuse.inference import EmotionRecognizer

WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # the fast model's share


def held_out(corpus: str, config, args: argparse.Namespace) -> dict[str, dict]:
    """Per weight (as ``f"{w:g}"``), the scores of the two models' averaged probabilities on
    the held-out ``corpus`` (both trained without it)."""
    spec = next(s for s in config.data.corpora if s.name == corpus)
    paths, labels = held_out_files(corpus, spec, config.data.task, None)
    models = [EmotionRecognizer.load(Path(folder) / corpus / "model.pt", device="cpu",
                                     precision="fp32")
              for folder in (args.accurate, args.fast)]  # fmt: skip
    names = models[0].labels
    if models[1].labels != names:
        raise SystemExit(f"{corpus}: the two models' labels differ: {names} / {models[1].labels}")
    accurate, fast = (answers(model, paths) for model in models)
    rows = {f"{w:g}": scored((1 - w) * accurate + w * fast, labels, names) for w in WEIGHTS}
    print(corpus, {w: round(r["ua"], 3) for w, r in rows.items()}, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accurate", default=str(REPO / "runs" / "loco4"))
    parser.add_argument("--fast", default=str(REPO / "runs" / "loco4-fast"))
    parser.add_argument("--config", default=str(REPO / "configs" / "accurate.yaml"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "loco4")
    args = parser.parse_args()
    set_threads(args.threads)
    config = load_config(args.config)
    rows = {corpus: held_out(corpus, config, args) for corpus in CORPORA}
    means = {f"{w:g}": float(np.mean([rows[c][f"{w:g}"]["ua"] for c in rows])) for w in WEIGHTS}
    summary = {"corpora": rows, "mean_ua": means, "weights": list(WEIGHTS),
               "accurate_models": args.accurate, "fast_models": args.fast,
               "command": common.command_line(), "machine": common.machine_info()}  # fmt: skip
    common.write_results("ensemble", summary, render_markdown(summary), args.out)


def render_markdown(summary: dict) -> str:
    """The report (the JSON, as written or read back)."""
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    header = ["fast model's weight", *[f"{c} UA % (top label %)" for c in summary["corpora"]],
              "mean UA %"]  # fmt: skip
    rows = [[w, *[f"{pct(r[w]['ua'])} ({pct(r[w]['max_share'])})"
                  for r in summary["corpora"].values()], pct(summary["mean_ua"][w])]
            for w in (f"{w:g}" for w in summary["weights"])]  # fmt: skip
    table = common.markdown_table(header, rows)
    return ("# Leave one corpus out: accurate, fast and their average\n\n"
            f"{table}\n\nWeight 0: the accurate model alone; 1: the fast "
            "model alone; between: probabilities averaged with that weight on the fast model. "
            f"Reproduce: `{summary['command']}`.\n")  # fmt: skip


if __name__ == "__main__":
    main()
