"""Helpers shared by the benchmarks: the machine and its load, timing, test audio, child
processes, the shared corpora, and the results (PASS/MISS checks, markdown tables, the JSON and
md files in ``bench/results/`` or ``--results-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"


# ------------------------------------------------------------------------ machine and load


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


def other_processes_cores(start: dict, end: dict | None = None) -> float | None:
    """Mean number of cores kept busy by other processes between two :func:`cpu_snapshot`
    (``end`` by default: now)."""
    end = cpu_snapshot() if end is None else end
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


def package_versions(packages: Sequence[str]) -> dict:
    """The installed version of each package (None when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def background_processes(skip: str, *, min_cpu: float = 10.0, most: int = 8) -> list[str]:
    """Other busy processes (``ps``: at least ``min_cpu`` % CPU, command lines cut short),
    leaving out those whose command line holds ``skip`` (this benchmark)."""
    try:
        done = subprocess.run(["ps", "-eo", "pcpu=,args=", "--sort=-pcpu"], capture_output=True,
                              text=True, check=False, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in done.stdout.splitlines():
        cpu, _, command = line.strip().partition(" ")
        try:
            if float(cpu) >= min_cpu and skip not in command and "ps -eo" not in command:
                rows.append(f"{cpu}% {command.strip()[:120]}")
        except ValueError:
            continue
    return rows[:most]


@dataclass(frozen=True)
class Run:
    """The start of a benchmark run: when, the load average and a :func:`cpu_snapshot`;
    :meth:`header` gives the JSON's opening keys (machine, versions, load before and after)."""

    began: float
    load_before: list[float]
    snapshot: dict

    @classmethod
    def start(cls) -> Run:
        return cls(time.perf_counter(), load_average(), cpu_snapshot())

    def header(
        self, benchmark: str, quick: bool, versions: dict | None = None, command: bool = False
    ) -> dict:
        """``benchmark``, ``quick``, the command line (with ``command``), ``machine``,
        ``versions`` (where given), the load average before and after, the other processes'
        cores: the opening keys of a result file, in its order."""
        head = {"benchmark": benchmark, "quick": quick}
        if command:
            head["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        head["machine"] = machine_info()
        if versions is not None:
            head["versions"] = versions
        return head | {
            "load_average_before": self.load_before, "load_average_after": load_average(),
            "other_processes_cores": other_processes_cores(self.snapshot),
        }  # fmt: skip

    def elapsed(self) -> float:
        return time.perf_counter() - self.began


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """torch's thread count as it was, whatever the block sets it to."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------ timing


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


def time_passes(
    configs: Sequence[Hashable],
    run_pass: Callable[[Hashable], object],
    *,
    rounds: int,
    before: Callable[[Hashable], object] | None = None,
    check: Callable[[Hashable, object], object] | None = None,
) -> tuple[dict, dict]:
    """``rounds`` alternating rounds of ``run_pass(config)`` over ``configs``, each pass timed
    with ``time.perf_counter``; ``before(config)`` runs untimed before a pass, ``check(config,
    result)`` after it. Returns per config the seconds of each pass and the cores other
    processes kept busy during it (:func:`cpu_snapshot`)."""
    seconds: dict[Hashable, list[float]] = {c: [] for c in configs}
    others: dict[Hashable, list[float | None]] = {c: [] for c in configs}
    for _ in range(rounds):
        for config in configs:
            if before is not None:
                before(config)
            snap = cpu_snapshot()
            began = time.perf_counter()
            result = run_pass(config)
            seconds[config].append(time.perf_counter() - began)
            others[config].append(other_processes_cores(snap))
            if check is not None:
                check(config, result)
    return seconds, others


def throughput_stats(
    seconds: Sequence[float], others: Sequence[float | None], files: int, file_seconds: float
) -> dict:
    """Files and audio seconds per second over passes of ``files`` files of ``file_seconds``
    each (median and best pass) and the mean cores busy with other processes."""
    times = sorted(seconds)
    median = statistics.median(times)
    busy = [x for x in others if x is not None]
    return {
        "files": files,
        "passes": len(times),
        "seconds_per_pass": times,
        "files_per_second_median": files / median,
        "files_per_second_best": files / times[0],
        "audio_seconds_per_second_median": files * file_seconds / median,
        "other_processes_cores": round(sum(busy) / len(busy), 2) if busy else None,
    }


def predict_many_passes(
    recognizers: Mapping[tuple, object],
    paths: Sequence[str],
    *,
    rounds: int,
    file_seconds: float,
    threads: Callable[[tuple], int],
) -> dict[tuple, dict]:
    """``predict_many`` over ``paths`` with each configuration's recogniser (a configuration: a
    tuple whose last item is the batch size; ``threads(config)`` torch threads), after a warm-up
    on two batches and every file read once (OS page cache): ``rounds`` alternating rounds
    (:func:`time_passes`), :func:`throughput_stats` per configuration."""
    import torch

    for config, recognizer in recognizers.items():
        torch.set_num_threads(threads(config))
        recognizer.predict_many(paths[: 2 * config[-1]], batch_size=config[-1])
    for path in paths:
        Path(path).read_bytes()
    seconds, others = time_passes(
        list(recognizers), lambda c: recognizers[c].predict_many(paths, batch_size=c[-1]),
        rounds=rounds, before=lambda c: torch.set_num_threads(threads(c)),
        check=lambda c, predictions: check_predictions(predictions, f"predict_many {c}"),
    )  # fmt: skip
    return {c: throughput_stats(seconds[c], others[c], len(paths), file_seconds)
            for c in recognizers}  # fmt: skip


# ------------------------------------------------------------------------ test audio


def check_predictions(predictions: Sequence[object], what: str) -> None:
    """Refuse a ``predict_many`` pass that returned None or a silent prediction for a file."""
    if any(p is None or p.silent for p in predictions):
        raise RuntimeError(f"{what} lost or silenced a file")


def write_clips(
    folder: Path, n: int, seconds: float, *, sample_rate: int, audio_format: str
) -> list[str]:
    """``n`` distinct voice-like clips as 16-bit ``audio_format`` ("WAV", "FLAC") files named
    ``clip_0000.wav`` (``.flac``)...; returns the paths."""
    import soundfile as sf

    from emofuse.testing import synthetic_voice

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i:04d}.{audio_format.lower()}"
        wave = synthetic_voice(seconds, sample_rate, pitch=110.0 + (i * 7) % 150, seed=i)
        sf.write(path, wave, sample_rate, subtype="PCM_16", format=audio_format)
        paths.append(str(path))
    return paths


def write_long_file(
    path: Path, seconds: int, *, audio_format: str, quiet_every: int = 0, sample_rate: int = 16000
) -> int:
    """A ``seconds``-long voice-like 16-bit file, written a minute at a time (the generator stays
    small); with ``quiet_every`` n, every n-th minute is quiet noise (-50 dBFS) instead. Returns
    its size in bytes."""
    import numpy as np
    import soundfile as sf

    from emofuse.testing import synthetic_voice

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sample_rate, 1, subtype="PCM_16", format=audio_format) as out:
        for i, start in enumerate(range(0, seconds, 60)):
            chunk = min(60, seconds - start)
            if quiet_every and i % quiet_every == quiet_every - 1:
                out.write((0.0045 * rng.standard_normal(chunk * sample_rate)).astype(np.float32))
            else:
                out.write(synthetic_voice(chunk, sample_rate, pitch=110.0 + (i * 13) % 150, seed=i))
    return path.stat().st_size


# ------------------------------------------------------------------------ corpora


def corpus_files(name: str | None = None, root: Path = CORPORA) -> list[Path]:
    """Every audio file (``.flac``, ``.wav``) of the corpus ``root/name`` (of every corpus in
    ``root`` without a name, one corpus after the other), sorted; none where it is missing."""
    folder = root if name is None else root / name
    if name is None:
        return [f for c in sorted(folder.glob("*/")) for f in corpus_files(c.name, root)]
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".flac", ".wav"))


# ------------------------------------------------------------------------ child processes


# The start of a child script (see run_child): imports and memory(), its RSS so far in KiB.
CHILD_MEMORY = r"""
import json, resource, sys, time

def memory():
    status = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                status[key] = int(value.split()[0])  # kB (KiB)
    return {"ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "vm_hwm_kib": status.get("VmHWM"), "vm_rss_kib": status.get("VmRSS")}

"""


def run_child(script: str, args: dict, *, what: str, cwd: Path | None = None) -> dict:
    """Run ``script`` (Python source, ``args`` as JSON in ``sys.argv[1]``) in a fresh process;
    return the JSON object on its last line of output, with ``process_seconds`` added.

    Launched as ``sh -c '"$@" & wait $!'``: on Linux a process's ``ru_maxrss`` starts at the
    high-water mark of the memory it replaced at ``exec``, and ``subprocess`` execs from (a
    vfork of) this benchmark process, which holds torch, models and test files; the shell
    forks the child, so the child's ``exec`` replaces only a copy of the small shell. ``VmHWM``
    (the high-water mark of the process's own memory map) is reported as well.
    """
    command = ["/bin/sh", "-c", '"$@" & wait $!', "sh", sys.executable, "-c", script,
               json.dumps(args)]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_seconds"] = elapsed
    return report


# A child that iterates a timeline (:func:`timeline`) and reports its memory and time.
TIMELINE_CHILD = (
    CHILD_MEMORY
    + r"""args = json.loads(sys.argv[1])
import torch
torch.set_num_threads(args["threads"])
from emofuse.inference.recognizer import EmotionRecognizer, TorchBackend
from emofuse.pipeline import load_pipeline
after_imports = memory()
if args.get("backend") == "onnx":
    from emofuse.inference.onnx import OnnxBackend
    backend = OnnxBackend(args["onnx"], num_threads=args["threads"])
else:
    backend = TorchBackend(load_pipeline(args["model"]), device="cpu", precision="fp32")
recognizer = EmotionRecognizer(backend, vad=False)  # the synthetic voice is no speech to a VAD
after_load = memory()
began = time.perf_counter()
segments = silent = 0
end = 0.0
for segment in recognizer.timeline(args["audio"], batch_size=args.get("batch_size")):
    segments += 1
    silent += segment.silent
    end = segment.end
wall = time.perf_counter() - began
print(json.dumps({"after_imports": after_imports, "after_load": after_load, "peak": memory(),
                  "wall_seconds": wall, "segments": segments, "silent_segments": silent,
                  "timeline_end_seconds": end}))
"""
)


def timeline(args: dict, audio_seconds: float, what: str, /, **extra: object) -> dict:
    """:data:`TIMELINE_CHILD` in a fresh process (:func:`run_child`) with ``args`` (``audio``,
    ``model`` or ``backend="onnx"`` and ``onnx``, ``threads``, ``batch_size``): its report with
    the other processes' cores, ``extra``, the RTF and the memory in MB (:func:`add_megabytes`)."""
    snap = cpu_snapshot()
    report = run_child(TIMELINE_CHILD, args, what=f"timeline child ({what})", cwd=REPO)
    report["other_processes_cores"] = other_processes_cores(snap)
    report.update(extra, rtf=report["wall_seconds"] / audio_seconds)
    add_megabytes(report)
    print(f"timeline {what}: peak RSS " + rss_line(report))
    return report


def add_megabytes(
    report: dict, keys: Sequence[str] = ("after_imports", "after_load", "peak")
) -> None:
    """Add ``ru_maxrss_mb`` and ``vm_hwm_mb`` (MB = 10**6 bytes) to the memory readings of a
    child's report (:data:`CHILD_MEMORY`'s KiB)."""
    for key in keys:
        mem = report[key]
        mem["ru_maxrss_mb"] = mem["ru_maxrss_kib"] * 1024 / 1e6
        mem["vm_hwm_mb"] = mem["vm_hwm_kib"] * 1024 / 1e6 if mem["vm_hwm_kib"] else None


def rss_line(report: dict) -> str:
    """The peak RSS of a timeline child's report, its RSS after the imports and after loading
    the model, segments, wall time, RTF and the other processes' cores, in words."""
    return (
        f"{report['peak']['ru_maxrss_mb']:.0f} MB (after imports "
        f"{report['after_imports']['ru_maxrss_mb']:.0f} MB, after loading the model "
        f"{report['after_load']['ru_maxrss_mb']:.0f} MB), {report['segments']} "
        f"segments in {report['wall_seconds']:.1f} s (RTF {report['rtf']:.4f}), "
        f"others {report['other_processes_cores']} cores"
    )


@dataclass(frozen=True)
class PredictRun:
    """One cold ``emofuse predict`` process (a row of the JSON, with ``dataclasses.asdict``)."""

    model: str
    precision: str
    precision_used: str  # what ``auto`` chose, as the process said on stderr
    threads: int
    files: int
    answers: int
    seconds: float
    files_per_second: float
    peak_rss_mb: float


def predict_process(
    inputs: Sequence[Path | str],
    n: int,
    model: str,
    threads: int,
    out: Path,
    precision: str = "fp32",
    output_format: str = "jsonl",
) -> PredictRun:
    """One cold ``python -m emofuse predict INPUTS`` process (``n`` files in ``inputs``, folders
    or files): wall time, files/s, its peak RSS (``ru_maxrss`` of the child), the answers
    written (lines of JSONL, rows of CSV, items of JSON) and the precision it ran in (what
    ``auto`` chose, as it says on stderr)."""  # fmt: skip
    command = [sys.executable, "-m", "emofuse", "predict", *map(str, inputs), "--model", model,
               "--threads", str(threads), "--format", output_format, "--output", str(out),
               "--precision", precision]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read().decode(errors="replace")  # read first: a full pipe blocks
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:8])} ... failed:\n{stderr[-2000:]}")
    text = out.read_text()
    answers = {"jsonl": lambda: len(text.splitlines()), "csv": lambda: len(text.splitlines()) - 1,
               "json": lambda: len(json.loads(text))}[output_format]()  # fmt: skip
    chosen = re.search(r"^emofuse: precision (\w+):", stderr, re.MULTILINE)
    return PredictRun(model, precision, chosen[1] if chosen else precision, threads, n, answers,
                      round(seconds, 2), round(n / seconds, 1),
                      round(usage.ru_maxrss / 1024, 1))  # fmt: skip


# ------------------------------------------------------------------------ results


@dataclass(frozen=True)
class Check:
    """One target: what it asks, what was measured, under which setting, PASS or MISS. As a
    dict (:meth:`to_dict`) it is the ``{"target", "measured", "setting", "status"}`` of the
    result files."""

    target: str
    measured: str
    setting: str
    status: str

    @classmethod
    def of(cls, target: str, measured: str, setting: str, ok: bool) -> Check:
        return cls(target, measured, setting, "PASS" if ok else "MISS")

    def to_dict(self) -> dict:
        return asdict(self)

    def row(self) -> list[str]:
        return [self.target, self.measured, self.setting, self.status]


def checks_table(checks: Iterable[Check | Mapping]) -> str:
    """The markdown table of targets (:class:`Check` or their dicts read back from JSON)."""
    rows = [c.row() if isinstance(c, Check) else [c["target"], c["measured"], c["setting"],
                                                  c["status"]] for c in checks]  # fmt: skip
    return markdown_table(["target", "measured", "setting", "status"], rows)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are written as given (format them before)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """This run's command line as the result files quote it: ``python bench/<name>.py ...``."""
    return "python " + " ".join(sys.argv)


def parser(doc: str, quick: str | None = None) -> argparse.ArgumentParser:
    """A benchmark's options: its docstring's first line as the description, ``--quick`` (with
    this help) where given, and ``--results-dir``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if quick is not None:
        parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help=f"where the result files go (default {RESULTS_DIR})")  # fmt: skip
    return parser


def report(name: str, results: dict, render: Callable[[dict], str], args) -> None:
    """:func:`write_results` of ``results`` and their markdown into ``args.results_dir``."""
    write_results(name, results, render(results), args.results_dir, quick=args.quick)


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
