"""Print the augmentation comparison on EmoDB (paired by fold) from results/ (repo root)."""

import json
from pathlib import Path

from emofuse.compare import paired_comparison

RUNS = {"default (masks + gain)": "results/emodb", "no augmentation": "results/augment/emodb-none",
        "default + mixup 0.2": "results/augment/emodb-mixup"}  # fmt: skip


def fold_ua(folder: str) -> dict[tuple[int, int], float]:
    folds = Path(folder).glob("fold_*.json")
    return {(0, int(p.stem[5:])): json.loads(p.read_text())["ua"] for p in folds}


ua = {name: fold_ua(folder) for name, folder in RUNS.items()}
common = sorted(set.intersection(*(set(v) for v in ua.values())))
print(f"EmoDB, leave-one-speaker-out, seed 0, the {len(common)} folds all three runs finished.\n")
print("| recipe | UA % (these folds) | vs default: mean diff, 95% CI (fold bootstrap), sign test |")
print("| --- | ---: | --- |")
for name, values in ua.items():
    mean = 100 * sum(values[k] for k in common) / len(common)
    if name.startswith("default ("):
        print(f"| {name} | {mean:.1f} | |")
        continue
    default = ua["default (masks + gain)"]
    stats = paired_comparison({k: values[k] for k in common}, {k: default[k] for k in common})
    print(
        f"| {name} | {mean:.1f} | {100 * stats['mean_diff']:+.1f} points, "
        f"[{100 * stats['ci_low']:+.1f}, {100 * stats['ci_high']:+.1f}], "
        f"p = {stats['sign_test_p']:.2f} ({stats['verdict']}) |"
    )
