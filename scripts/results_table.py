"""Print the README's results tables from the run folders' summary.json (run from the repo root)."""

import json
from pathlib import Path

CORPORA = {"emodb": "EmoDB (10 speakers, 7 classes)", "ravdess": "RAVDESS (24 actors, 8 classes)",
           "emovo": "EMOVO (6 speakers, 7 classes)"}  # fmt: skip
TARGETS = {"emodb": 85, "ravdess": 70, "emovo": 50}
SYSTEMS = {
    "eGeMAPS + SVM": "results/{}-egemaps-svm",
    "default network": "results/{}",
    "+ prosody feature": "results/accuracy/{}-prosody",
    "prosody network + SVM (posterior mean)": "results/accuracy/{}-prosody-svm",
}


def cell(folder: str) -> str:
    path = Path(folder) / "summary.json"
    if not path.exists():
        return "not run"
    s = json.loads(path.read_text())
    done = "" if len(s["folds"]) == s["n_folds"] else f" ({len(s['folds'])}/{s['n_folds']} folds)"
    ua, wa = (f"{100 * s['mean'][k]:.1f} +- {100 * s['std'][k]:.1f}" for k in ("ua", "wa"))
    return f"{ua} / {wa}{done}"


print(f"| corpus | {' | '.join(SYSTEMS)} | target UA |")
print(f"| --- |{' ---: |' * len(SYSTEMS)} ---: |")
for name, title in CORPORA.items():
    cells = " | ".join(cell(folder.format(name)) for folder in SYSTEMS.values())
    print(f"| {title}, UA / WA % | {cells} | {TARGETS[name]} |")

loco = Path("results/loco/summary.json")
if loco.exists():
    print()
    print(
        "| held-out corpus (trained on the other two, task bundled7) | UA % | WA % | macro-F1 % |"
    )
    print("| --- | ---: | ---: | ---: |")
    for fold in json.loads(loco.read_text())["folds"]:
        corpus = fold["name"].removeprefix("corpus-")
        ua, wa, f1 = (100 * fold[k] for k in ("ua", "wa", "macro_f1"))
        print(f"| {corpus} | {ua:.1f} | {wa:.1f} | {f1:.1f} |")
