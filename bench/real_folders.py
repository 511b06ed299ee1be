"""Memory and speed of ``emofuse predict`` on real folders, as users have them, from cold processes.

Each row is a fresh ``python -m emofuse predict INPUTS --model M --precision P --threads 2``:
wall time, files/s, audio seconds/s, peak RSS. Inputs: each shared corpus, ``mixed`` (1 s to
10 min files), ``cmdline`` (2,028 paths, ``--format json``), ``crops`` (3 s RAVDESS crops).

    python bench/real_folders.py [--quick]    # writes bench/results/real_folders.{json,md}
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import _common as common
import numpy as np
import soundfile as sf

NAMES = ("emodb", "ravdess", "emovo", "ased")
RATE = 16000
TARGET_RSS_MB = 600.0
TARGETS = {
    ("accurate", "fp32"): 60.0,
    ("accurate", "bf16"): 100.0,
    ("accurate", "auto"): 80.0,  # issue #31's target, set for a CPU with AMX
    ("fast", "fp32"): 200.0,
    ("fast", "bf16"): 200.0,
}  # files/s, the corpora together
MIXED = ((1.0, 40), (14.0, 20), (60.0, 5), (600.0, 1))  # (seconds, files)


@dataclass(frozen=True)
class Input:
    """One input: what goes on the command line, its files, their audio seconds, the format."""

    args: list
    files: list[Path]
    format: str = "jsonl"

    @property
    def audio_seconds(self) -> float:
        return float(sum(sf.info(str(f)).duration for f in self.files))


@dataclass(frozen=True)
class Target:
    """A target and what was measured (``met``: reached), as the JSON's ``targets`` hold it."""

    target: str
    measured: object
    met: bool


def joined_speech(files: list[Path], rng: np.random.Generator):
    """Corpus clips in random order, each followed by 0.2-0.8 s of silence, forever."""
    while True:
        for i in rng.permutation(len(files)):
            wave, _ = sf.read(str(files[i]), dtype="float32")
            yield wave
            yield np.zeros(int(rng.uniform(0.2, 0.8) * RATE), np.float32)


def make_mixed(folder: Path, sources: list[Path]) -> list[Path]:
    """The ``MIXED`` files: each cut from corpus clips joined end to end."""
    folder.mkdir()
    speech, files = joined_speech(sources, np.random.default_rng(0)), []
    for seconds, count in MIXED:
        for i in range(count):
            need, parts = round(seconds * RATE), []
            while sum(p.size for p in parts) < need:
                parts.append(next(speech))
            files.append(folder / f"{seconds:g}s_{i:02d}.flac")
            sf.write(files[-1], np.concatenate(parts)[:need], RATE)
    return files


def make_crops(folder: Path, sources: list[Path]) -> list[Path]:
    """The middle 3 s of each source."""
    folder.mkdir()
    files = []
    for i, source in enumerate(sources):
        wave, _ = sf.read(str(source), dtype="float32")
        start = max(0, (wave.size - 3 * RATE) // 2)
        files.append(folder / f"{i:04d}.flac")
        sf.write(files[-1], wave[start : start + 3 * RATE], RATE)
    return files


def inputs(workdir: Path, quick: bool) -> dict[str, Input]:
    """Per input name: what goes on the command line, its files and the output format."""
    found = {name: common.corpus_files(name) for name in NAMES}
    limit = 60 if quick else None
    sets = {}
    for name, files in found.items():
        files = files[:: max(1, len(files) // limit)][:limit] if limit else files
        sets[name] = Input([_linked(workdir / name, files) if limit else common.CORPORA / name],
                           files)  # fmt: skip
    mixed = make_mixed(workdir / "mixed", found["emodb"] + found["emovo"])[:limit]
    sets["mixed"] = Input([str(f) for f in mixed] if limit else [workdir / "mixed"], mixed)
    listed = (found["ravdess"] + found["emovo"])[:limit]
    sets["cmdline"] = Input([str(f) for f in listed], listed, "json")
    crops = make_crops(workdir / "crops", found["ravdess"][:limit])
    sets["crops"] = Input([workdir / "crops"], crops)
    return sets


def _linked(folder: Path, files: list[Path]) -> Path:
    folder.mkdir()
    for i, f in enumerate(files):
        (folder / f"{i:04d}_{f.name}").symlink_to(f)
    return folder


def measure(args: argparse.Namespace, workdir: Path) -> list[dict]:
    """One cold ``emofuse predict`` process per model, precision and input."""
    sets, rows = inputs(workdir, args.quick), []
    seconds = {name: sets[name].audio_seconds for name in args.inputs}
    for model, precision, name in product(args.models, args.precisions, args.inputs):
        entry, out = sets[name], workdir / f"out.{sets[name].format}"
        row = asdict(common.predict_process(entry.args, len(entry.files), model, args.threads,
                                            out, precision, entry.format))  # fmt: skip
        row.update(
            input=name,
            audio_seconds=round(seconds[name], 1),
            audio_seconds_per_second=round(seconds[name] / row["seconds"], 1),
        )
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = common.parser(__doc__, quick="60 files per input")
    parser.add_argument("--models", nargs="+", default=["fast", "accurate"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "auto"])
    parser.add_argument("--inputs", nargs="+", default=[*NAMES, "mixed", "cmdline", "crops"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not common.CORPORA.is_dir():
        raise SystemExit(f"needs the shared corpora in {common.CORPORA}")
    start_cpu, before = common.cpu_snapshot(), common.load_average()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args, Path(tmp))
    results = {"machine": common.machine_info(), "load_before": before,
               "load_after": common.load_average(),
               "other_processes_cores": common.other_processes_cores(start_cpu),
               "threads": args.threads, "rows": rows, "targets": targets(rows),
               "mixed_files": [list(m) for m in MIXED]}  # fmt: skip
    common.report("real_folders", results, render_markdown, args)


def targets(rows: list[dict]) -> list[dict]:
    """Each target with its measured value: speed on the four corpora together (files over
    seconds summed), the largest peak RSS per model."""
    checks = []
    for (model, precision), goal in TARGETS.items():
        runs = [r for r in rows if (r["model"], r["precision"]) == (model, precision)
                and r["input"] in NAMES]  # fmt: skip
        if runs:
            speed = sum(r["files"] for r in runs) / sum(r["seconds"] for r in runs)
            checks.append(Target(f"{model} {precision}: >= {goal:g} files/s on the corpora",
                                 round(speed, 1), speed >= goal))  # fmt: skip
    for model in dict.fromkeys(r["model"] for r in rows):
        worst = max((r for r in rows if r["model"] == model), key=lambda r: r["peak_rss_mb"])
        checks.append(
            Target(
                f"{model}: peak RSS < {TARGET_RSS_MB:g} MB on every input",
                f"{worst['peak_rss_mb']:g} MB ({worst['input']}, {worst['precision']})",
                worst["peak_rss_mb"] < TARGET_RSS_MB,
            )
        )
    return [asdict(check) for check in checks]


def render_markdown(results: dict) -> str:
    """The report (the JSON, as written or read back)."""
    keys = ["model", "precision", "precision_used", "input", "files", "audio_seconds", "seconds",
            "files_per_second", "audio_seconds_per_second", "peak_rss_mb"]  # fmt: skip
    machine = results["machine"]
    checks = [[c.target, c.measured, "met" if c.met else "MISSED"]
              for c in (Target(**t) for t in results["targets"])]  # fmt: skip
    mixed = ", ".join(f"{n} x {s:g} s" for s, n in results["mixed_files"])
    return "\n\n".join([
        "# `emofuse predict` on real folders: memory and speed (cold processes)",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores, torch "
        f"{machine['torch']}; `--threads {results['threads']}`. Load average before "
        f"{results['load_before']}, after {results['load_after']}; other processes kept "
        f"{results['other_processes_cores']} cores busy on average. Inputs: every file of each "
        f"shared corpus as it is; `mixed`: {mixed} of joined corpus speech, predicted whole; "
        "`cmdline`: every RAVDESS and EMOVO file as paths on the command line (`--format json`); "
        "`crops`: the middle 3 s of each RAVDESS file. Reproduce: "
        "`python bench/real_folders.py`.",
        "## Targets", common.markdown_table(["target", "measured", "status"], checks),
        "## Runs", common.markdown_table(keys, [[r[k] for k in keys] for r in results["rows"]]),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
