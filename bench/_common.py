"""Helpers shared by the benchmarks: machine description, timing, result files.

Results go to ``bench/results/<name>.json`` (everything measured, with the machine and the
load average before and after) and ``bench/results/<name>.md`` (a short readable table).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "RESULTS_DIR",
    "machine_info",
    "load_average",
    "cpu_snapshot",
    "other_processes_cores",
    "summarize_times",
    "time_call",
    "time_interleaved",
    "markdown_table",
    "write_results",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_snapshot() -> dict:
    """Wall clock, system-wide busy CPU seconds (``/proc/stat``) and the CPU seconds of this
    process and its children."""
    busy = None
    try:
        with open("/proc/stat") as handle:
            ticks = [int(x) for x in handle.readline().split()[1:]]
        # user + nice + system + irq + softirq (guest time is counted in user; no steal)
        busy = (sum(ticks[:3]) + sum(ticks[5:7])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    own = os.times()
    # own: this process and its waited-for children (a benchmark that runs the work in
    # subprocesses must not count them as "other processes")
    mine = own.user + own.system + own.children_user + own.children_system
    return {"wall": time.perf_counter(), "busy": busy, "own": mine}


def other_processes_cores(start: dict, end: dict) -> float | None:
    """Mean number of cores kept busy by other processes between two :func:`cpu_snapshot`."""
    if start["busy"] is None or end["busy"] is None:
        return None
    wall = end["wall"] - start["wall"]
    others = (end["busy"] - start["busy"]) - (end["own"] - start["own"])
    return round(max(0.0, others) / wall, 2) if wall > 0 else None


def machine_info() -> dict:
    """CPU model, core counts and library versions; torch and numpy imported here."""
    import numpy
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_default_threads": torch.get_num_threads(),
    }


def summarize_times(seconds: Sequence[float]) -> dict:
    """Median, p90 (nearest rank), min and the run count of a list of durations, in ms."""
    ordered = sorted(seconds)
    n = len(ordered)
    p90 = ordered[min(n - 1, max(0, -(-9 * n // 10) - 1))]  # ceil(0.9 n)-th smallest
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p90_ms": p90 * 1e3,
        "min_ms": ordered[0] * 1e3,
        "runs": n,
    }


def time_call(fn: Callable[[], object], *, runs: int, warmup: int = 2) -> dict:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times with ``time.perf_counter``."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - began)
    return summarize_times(seconds)


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    runs: int | Mapping[str, int],
    warmup: int = 2,
) -> dict[str, dict]:
    """Time several systems in alternating rounds, so a change in background load hits all.

    ``runs`` is one count for all, or one per name; a system with fewer runs sits out the
    last rounds. Returns :func:`summarize_times` per name.
    """
    counts = {name: runs if isinstance(runs, int) else runs[name] for name in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(max(counts.values())):
        for name, fn in fns.items():
            if round_ >= counts[name]:
                continue
            began = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - began)
    return {name: summarize_times(values) for name, values in seconds.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are written as given (format them before)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(
    name: str, data: dict, markdown: str, results_dir: Path = RESULTS_DIR, *, quick: bool = False
) -> None:
    """Print the markdown, write ``<name>.json`` and ``<name>.md`` (``<name>-quick.*`` for
    smoke runs) into ``results_dir`` and say where."""
    print()
    print(markdown)
    name = f"{name}-quick" if quick else name
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results_dir / f"{name}.json", results_dir / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    print(f"wrote {json_path} and {md_path}")
