"""Print the accuracy experiment tables (results/accuracy.md) from the run folders (repo root).

Every recipe is paired fold by fold with the eGeMAPS + SVM baseline and with the default
network on the same test speakers: mean UA difference, a 95% fold-bootstrap interval and a
two-sided sign test (emofuse.experiments.stats.paired_comparison).
"""

import json
from pathlib import Path

from emofuse.experiments.stats import paired_comparison

SVM, DEFAULT = "eGeMAPS + SVM", "default network"
RECIPES = {
    "emodb": {
        SVM: "results/emodb-egemaps-svm",
        DEFAULT: "results/emodb",
        "no augmentation": "results/augment/emodb-none",
        "default + mixup 0.2": "results/augment/emodb-mixup",
        "+ prosody feature": "results/accuracy/emodb-prosody",
        "ensemble: default + SVM": "results/accuracy/emodb-hybrid",
        "ensemble: prosody + SVM": "results/accuracy/emodb-prosody-svm",
        "ensemble: 3 networks (default, no aug., mixup)": "results/accuracy/emodb-3net",
        "ensemble: those 3 + SVM (weight 1/2)": "results/accuracy/emodb-3net-svm",
        "ensemble: 4 networks (+ prosody)": "results/accuracy/emodb-4net",
        "ensemble: those 4 + SVM (weight 1/2)": "results/accuracy/emodb-4net-svm",
    },
    "ravdess": {
        SVM: "results/ravdess-egemaps-svm",
        DEFAULT: "results/ravdess",
        "+ prosody feature": "results/accuracy/ravdess-prosody",
        "ensemble: default + SVM": "results/accuracy/ravdess-hybrid",
        "ensemble: prosody + SVM": "results/accuracy/ravdess-prosody-svm",
    },
    "emovo": {
        SVM: "results/emovo-egemaps-svm",
        DEFAULT: "results/emovo",
        "+ prosody feature": "results/accuracy/emovo-prosody",
        "ensemble: default + SVM": "results/accuracy/emovo-hybrid",
        "ensemble: prosody + SVM": "results/accuracy/emovo-prosody-svm",
    },
}


def fold_metrics(folder: str) -> dict[int, dict]:
    """Finished folds of a run: fold index -> its record (without predictions)."""
    return {
        int(p.stem[5:]): json.loads(p.read_text()) for p in sorted(Path(folder).glob("fold_*.json"))
    }


def interval(better: dict[int, dict], worse: dict[int, dict]) -> str:
    stats = paired_comparison(
        {(0, k): v["ua"] for k, v in better.items()}, {(0, k): v["ua"] for k, v in worse.items()}
    )
    if stats is None:
        return "-"
    return (
        f"{100 * stats['mean_diff']:+.1f} [{100 * stats['ci_low']:+.1f}, "
        f"{100 * stats['ci_high']:+.1f}], p {stats['sign_test_p']:.2f}"
    )


def main() -> None:
    for corpus, recipes in RECIPES.items():
        runs = {name: fold_metrics(folder) for name, folder in recipes.items()}
        n_folds = max(len(r) for r in runs.values())
        print(f"\n**{corpus}** (speaker-independent, {n_folds} folds)\n")
        print(
            "| recipe | folds | UA % | WA % | training min | UA vs SVM (points, 95% CI, sign p) "
            "| UA vs default |"
        )
        print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
        for name, folds in runs.items():
            if not folds:
                print(f"| {name} | not run | | | | | |")
                continue
            ua = [100 * f["ua"] for f in folds.values()]
            wa = [100 * f["wa"] for f in folds.values()]
            minutes = sum(f["train_seconds"] for f in folds.values()) / 60
            mean_sd = [f"{sum(v) / len(v):.1f} +- {_sd(v):.1f}" for v in (ua, wa)]
            versus = [
                "" if name == other else interval(folds, runs[other]) for other in (SVM, DEFAULT)
            ]
            print(
                f"| {name} | {len(folds)} | {mean_sd[0]} | {mean_sd[1]} | {minutes:.1f} "
                f"| {versus[0]} | {versus[1]} |"
            )


def _sd(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


if __name__ == "__main__":
    main()
