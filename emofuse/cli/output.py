"""How predictions and timeline segments are written, row by row as they are computed.

Formats: ``table`` (aligned columns; widths fixed from the file names up front), ``csv`` (one
column per label), ``json`` (one list, written as it goes) and ``jsonl`` (one object per line).
Times are rounded to milliseconds and probabilities to 4 decimals.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["FORMATS", "RowWriter", "open_output", "check_writable"]

FORMATS = ("table", "csv", "json", "jsonl")
TIME_DECIMALS = 3
PROB_DECIMALS = 4


def check_writable(path: str | os.PathLike, option: str) -> None:
    """Before any work: make ``path``'s folder (as every emofuse output does), or fail if
    ``path`` is a folder or cannot be written there."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give a file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot make folder {folder} ({error})") from None
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option} {path}: folder {folder} is not writable")


@contextlib.contextmanager
def open_output(path: str | os.PathLike | None) -> Iterator[TextIO]:
    """Standard output, or a file written atomically: rows go to a temporary file beside
    ``path``, renamed to ``path`` when all went well. If the run stops early (an error, Ctrl-C),
    ``path`` keeps its old content and the rows written so far are kept in ``path.partial``."""
    if path is None:
        yield sys.stdout
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", errors="surrogateescape") as out:
            yield out
    except BaseException:
        if tmp.exists() and tmp.stat().st_size:
            partial = path.with_name(path.name + ".partial")
            os.replace(tmp, partial)
            print(f"emofuse: stopped early; the rows written so far are in {partial}",
                  file=sys.stderr)  # fmt: skip
        raise
    else:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RowWriter:
    """Writes prediction rows (``keys``: ``file, duration``) or timeline rows (``file, start,
    end``) to ``out`` in ``fmt``, flushing each. Rows are ``Prediction.to_dict()`` or
    ``Segment.to_dict()`` with ``file`` added."""

    def __init__(
        self,
        out: TextIO,
        fmt: str,
        labels: Sequence[str],
        keys: Sequence[str],
        files: Sequence[str] = (),
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.out, self.fmt, self.labels, self.keys = out, fmt, tuple(labels), list(keys)
        self.rows = 0
        self._csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        if fmt == "csv":
            self._csv.writerow([*self.keys, "label", "confidence", "silent", "reason",
                                *self.labels])  # fmt: skip
        elif fmt == "table":
            header = ["file", "seconds"] if len(self.keys) == 2 else ["file", "start", "end"]
            names = [len(f) for f in files] + [len("file")]
            label = max([len(k) for k in self.labels] + [len("no speech"), len("label")])
            self._widths = [max(names), *[9] * (len(header) - 1), label, len("confidence")]
            self._line([*header, "label", "confidence", "top / reason"])
        elif fmt == "json":
            out.write("[")
        out.flush()

    def _line(self, cells: list[str]) -> None:
        padded = [c.ljust(w) for c, w in zip(cells, self._widths, strict=False)]
        self.out.write("  ".join(padded + cells[len(self._widths) :]).rstrip() + "\n")

    def write(self, row: dict) -> None:
        """One row, written and flushed at once."""
        row = {k: v for k, v in row.items() if k != "source"}
        probabilities = {k: round(p, PROB_DECIMALS) for k, p in row["probabilities"].items()}
        confidence = probabilities.get(row["label"], 0.0)
        times = [round(row[k], TIME_DECIMALS) for k in self.keys[1:]]
        if self.fmt in ("json", "jsonl"):
            record = {**row, **dict(zip(self.keys[1:], times, strict=True)),
                      "confidence": confidence, "probabilities": probabilities}  # fmt: skip
            text = json.dumps(record)
            if self.fmt == "json":
                text = ("\n  " if self.rows == 0 else ",\n  ") + text
            else:
                text += "\n"
            self.out.write(text)
        elif self.fmt == "csv":
            probs = ["" if row["silent"] else f"{probabilities[k]:.4f}" for k in self.labels]
            self._csv.writerow([row["file"], *times, row["label"], f"{confidence:.4f}",
                                int(row["silent"]), row.get("reason") or "", *probs])  # fmt: skip
        else:
            top = sorted(probabilities.items(), key=lambda kv: -kv[1])[:3]
            detail = row.get("reason") or "  ".join(f"{k} {p:.2f}" for k, p in top)
            self._line([row["file"], *(f"{t:.2f}" for t in times), row["label"],
                        "-" if row["silent"] else f"{confidence:.3f}", detail])  # fmt: skip
        self.rows += 1
        self.out.flush()

    def close(self) -> None:
        """End the output (closes the JSON list)."""
        if self.fmt == "json":
            self.out.write("\n]\n" if self.rows else "]\n")
            self.out.flush()
