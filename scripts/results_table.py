"""Print the README's results table from results/*/summary.json (run from the repo root)."""

import json
from pathlib import Path

CORPORA = {"emodb": "EmoDB (10 speakers, 7 classes)", "ravdess": "RAVDESS (24 actors, 8 classes)",
           "emovo": "EMOVO (6 speakers, 7 classes)"}  # fmt: skip


def cell(summary: dict | None, key: str) -> str:
    if summary is None:
        return "not run"
    done = (
        f" ({len(summary['folds'])}/{summary['n_folds']} folds)"
        if len(summary["folds"]) < summary["n_folds"]
        else ""
    )
    return f"{100 * summary['mean'][key]:.1f} +- {100 * summary['std'][key]:.1f}{done}"


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


print("| corpus, speaker-independent folds | system | UA % | WA % | training time |")
print("| --- | --- | ---: | ---: | ---: |")
for name, title in CORPORA.items():
    for system, folder in (
        ("emofuse (default model)", name),
        ("eGeMAPS + SVM", f"{name}-egemaps-svm"),
    ):
        summary = load(Path("results") / folder / "summary.json")
        seconds = f"{summary['train_seconds'] / 60:.1f} min" if summary else ""
        print(f"| {title} | {system} | {cell(summary, 'ua')} | {cell(summary, 'wa')} | {seconds} |")

loco = load(Path("results/loco/summary.json"))
if loco:
    print()
    print(
        "| held-out corpus (trained on the other two, task bundled7) | UA % | WA % | macro-F1 % |"
    )
    print("| --- | ---: | ---: | ---: |")
    for fold in loco["folds"]:
        corpus = fold["name"].removeprefix("corpus-")
        ua, wa, f1 = (100 * fold[k] for k in ("ua", "wa", "macro_f1"))
        print(f"| {corpus} | {ua:.1f} | {wa:.1f} | {f1:.1f} |")
