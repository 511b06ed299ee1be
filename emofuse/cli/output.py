"""How predictions and timeline segments are written: table, JSON, CSV."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["print_rows"]


def print_rows(rows: list[dict], labels: Sequence[str], fmt: str, keys: list[str]) -> None:
    """Predictions or segments as a table, JSON list or CSV (one column per label)."""
    import csv
    import json

    for row in rows:
        row.pop("source", None)
        row["confidence"] = row["probabilities"].get(row["label"], 0.0)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*keys, "label", "confidence", "silent", *labels])
        for row in rows:
            probs = [f"{row['probabilities'][k]:.4f}" if not row["silent"] else "" for k in labels]
            writer.writerow([*(row[k] for k in keys), row["label"], f"{row['confidence']:.4f}",
                             int(row["silent"]), *probs])  # fmt: skip
    else:
        header = ["file", "start", "end"] if "start" in keys else ["file", "seconds"]
        cells = [[*header, "label", "confidence", "top"]]
        for row in rows:
            top = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            times = [f"{row[k]:.2f}" for k in keys[1:]]
            confidence = "-" if row["silent"] else f"{row['confidence']:.3f}"
            cells.append([row["file"], *times, row["label"], confidence,
                          "  ".join(f"{k} {p:.2f}" for k, p in top)])  # fmt: skip
        widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        for c in cells:
            print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())

