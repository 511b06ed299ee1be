"""Throughput and memory of ``emofuse predict`` over many short files, from a cold process.

Each row is a fresh ``python -m emofuse predict DIR --model M --threads T --format jsonl``: wall
time, files/s, peak RSS. Throughput of both models over ``--files`` 3 s clips at 1 and 2
threads; flat memory: the fast model's peak over 100 and 10,000 files. Clips: the middle 3 s of
RAVDESS's files (else synthetic voice).

    python bench/predict_many.py [--quick]    # writes bench/results/predict_many.{json,md}
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import _common as common
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
CORPUS = common.CORPORA / "ravdess"
TARGETS = {"fast": 200.0, "accurate": 100.0}  # files/s
TARGET_RSS_MB = 600.0
FLAT_RATIO = 1.2  # 10,000-file peak RSS / 100-file peak RSS
CLIP_SECONDS = 3


def clip_sources(workdir: Path) -> tuple[list[Path], str]:
    """3 s FLAC clips: the middle 3 s of each RAVDESS file (real speech) when the corpus is
    present, else 200 synthetic voice-like signals (no speech to the VAD: a lighter load)."""
    folder = workdir / "sources"
    folder.mkdir()
    files = []
    if CORPUS.is_dir():
        for i, source in enumerate(sorted(CORPUS.rglob("*.flac"))):
            wave, rate = sf.read(source, dtype="float32")
            start = max(0, (wave.shape[0] - CLIP_SECONDS * rate) // 2)
            files.append(folder / f"{i:04d}_{source.name}")
            sf.write(files[-1], wave[start : start + CLIP_SECONDS * rate], rate)
        if files:
            return files, (f"the middle {CLIP_SECONDS} s of each of RAVDESS's {len(files)} "
                           "files (real speech), reused under new names")  # fmt: skip
    from emofuse.testing import synthetic_voice

    rng = np.random.default_rng(0)
    for i in range(200):
        files.append(folder / f"voice_{i:03d}.flac")
        sf.write(files[-1], synthetic_voice(CLIP_SECONDS, pitch=rng.uniform(100, 250), seed=i),
                 16000)  # fmt: skip
    return files, (f"synthetic voice-like {CLIP_SECONDS} s signals (200 files, reused under new "
                   "names; not speech to the VAD, so lighter than real speech)")  # fmt: skip


def make_folder(workdir: Path, sources: list[Path], n: int) -> Path:
    """A folder of ``n`` symbolic links to ``sources``, cycled, each under its own name."""
    folder = workdir / f"clips_{n}"
    if not folder.exists():
        folder.mkdir()
        for i in range(n):
            source = sources[i % len(sources)]
            os.symlink(source, folder / f"{i:05d}_{source.name}")
    return folder


def measure(args: argparse.Namespace, n_files: int, sizes: tuple[int, int]) -> tuple:
    """Throughput per model, precision and threads over ``n_files`` files; the fast model's
    peak RSS over each of ``sizes`` files; where the clips come from."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sources, about = clip_sources(workdir)
        out = workdir / "out.jsonl"
        throughput = []
        folder = make_folder(workdir, sources, n_files)
        for model in args.models:
            for precision in args.precisions:
                for threads in args.threads:
                    row = asdict(common.predict_process([folder], n_files, model, threads, out,
                                                        precision))  # fmt: skip
                    print(row, flush=True)
                    throughput.append(row)
        memory = []
        for n in sizes:
            row = asdict(common.predict_process([make_folder(workdir, sources, n)], n, "fast", 1,
                                                out))  # fmt: skip
            print(row, flush=True)
            memory.append(row)
    return throughput, memory, about


def target_checks(throughput: list[dict], memory: list[dict]) -> list[common.Check]:
    """Files/s and peak RSS per model; the flat-memory ratio of the two memory runs."""
    checks = []
    for model, goal in TARGETS.items():
        runs = [r for r in throughput if r["model"] == model]
        if runs:
            best = max(runs, key=lambda r: r["files_per_second"])
            checks.append(common.Check.of(
                f"{model}: >= {goal:g} files/s", f"{best['files_per_second']:g}",
                f"{best['threads']} thread(s), {best['precision']}",
                best["files_per_second"] >= goal))  # fmt: skip
            peak = max(r["peak_rss_mb"] for r in runs)
            checks.append(common.Check.of(f"{model}: peak RSS < {TARGET_RSS_MB:g} MB",
                                          f"{peak:g} MB", "", peak < TARGET_RSS_MB))  # fmt: skip
    small, large = memory
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    checks.append(common.Check.of(
        f"peak RSS over {large['files']:,} files <= {FLAT_RATIO:g} x over {small['files']:,}",
        f"{ratio:.2f} x", "fast, 1 thread", ratio <= FLAT_RATIO))  # fmt: skip
    return checks


KEYS = ["model", "precision", "threads", "files", "seconds", "files_per_second", "peak_rss_mb"]


def render_markdown(results: dict) -> str:
    """The report of a run (its JSON, as written or read back)."""
    machine, rows = results["machine"], lambda runs: [[r[k] for k in KEYS] for r in runs]
    return "\n\n".join([
        "# `emofuse predict` over many files: throughput and memory (cold process)",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; "
        f"torch {machine['torch']}. "
        f"Load average before {results['load_before']}, after {results['load_after']}; other "
        f"processes kept {results['other_processes_cores']} cores busy on average. Clips: "
        f"{results['clips']}. Command per row: `python -m emofuse "
        "predict DIR --model M --threads T --precision P --format jsonl --output OUT` in a fresh "
        "process "
        "(start-up and model loading included). Reproduce: `python bench/predict_many.py`.",
        "## Targets",
        common.checks_table(target_checks(results["throughput"], results["memory"])),
        "## Throughput", common.markdown_table(KEYS, rows(results["throughput"])),
        "## Memory (fast model, 1 thread)", common.markdown_table(KEYS, rows(results["memory"])),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="small runs (smoke test)")
    parser.add_argument("--files", type=int, default=2000, help="files per throughput run")
    parser.add_argument("--models", nargs="+", default=["fast", "accurate"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--memory-files", type=int, nargs=2, default=[100, 10000], metavar="N")
    args = parser.parse_args(argv)
    n_files = 200 if args.quick else args.files
    sizes = (100, 1000) if args.quick else tuple(args.memory_files)
    start_cpu = common.cpu_snapshot()
    before = common.load_average()
    throughput, memory, about = measure(args, n_files, sizes)
    busy = common.other_processes_cores(start_cpu)
    ratio = memory[1]["peak_rss_mb"] / memory[0]["peak_rss_mb"]
    results = {"machine": common.machine_info(), "clips": about, "load_before": before,
               "load_after": common.load_average(), "other_processes_cores": busy,
               "throughput": throughput, "memory": memory,
               "rss_ratio": round(ratio, 3)}  # fmt: skip
    common.report("predict_many", results, render_markdown, args)


if __name__ == "__main__":
    main()
