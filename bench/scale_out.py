"""Scale-out: training throughput in 1 vs 2 data-parallel processes, and cross-validation wall
time with folds run one at a time vs two at once.

Training: ``fit`` of the default network on synthetic 3 s clips, global batch 32, in one process
or two under ``torchrun`` (gloo); clips/s after the first epoch. Cross-validation: ``emofuse
crossval`` on EmoDB with ``--epochs E``, ``--jobs 1/2`` and ``--threads 1/2``: wall time, and
whether the two ``--threads 1`` rows agree. With CUDA: GPU clips/s and a full EmoDB run.

    python bench/scale_out.py [--quick]    # writes bench/results/scale_out.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import _common as common
from train_speed import LABELS, synthetic_features

REPO = Path(__file__).resolve().parents[1]
EMODB = common.CORPORA / "emodb"


@dataclass(frozen=True)
class Training:
    """One training run, timed by rank 0 (a row of the JSON)."""

    processes: int
    torch_threads: int
    device: str
    precision: str
    global_batch: int
    clips_per_epoch: int
    epoch_seconds: list
    clips_per_second: float


def train_worker(n_clips: int, epochs: int, batch: int, precision: str, device: str,
                 out: Path) -> None:  # fmt: skip
    """Inside each process: fit on synthetic clips; rank 0 writes the timing to ``out``."""
    import torch

    from emofuse.config import ExperimentConfig, TrainConfig
    from emofuse.training import distributed
    from emofuse.training.train import fit

    config = ExperimentConfig(train=TrainConfig(
        epochs=epochs, batch_size=batch, precision=precision, device=device, patience=epochs,
    ))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(synthetic_features(n_clips), synthetic_features(16, seed=5), list(LABELS),
                     config, tmp, progress=False)  # fmt: skip
    if not distributed.world().is_main:
        return
    ends = [h["seconds"] for h in result.history]
    epoch_seconds = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    median = statistics.median(epoch_seconds)
    out.write_text(json.dumps(asdict(Training(
        distributed.world().size, torch.get_num_threads(), device, precision, batch, n_clips,
        epoch_seconds, n_clips / median))))  # fmt: skip


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}


def measure_training(processes: int, threads: int, n_clips: int, epochs: int, batch: int,
                     precision: str = "fp32", device: str = "cpu") -> dict:  # fmt: skip
    """One fresh run of :func:`train_worker` in ``processes`` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        worker = [__file__, "--worker", str(out), "--clips", str(n_clips), "--epochs",
                  str(epochs), "--batch", str(batch), "--precision", precision,
                  "--device", device]  # fmt: skip
        launcher = [sys.executable]
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone",
                         f"--nproc_per_node={processes}"]  # fmt: skip
        subprocess.run(launcher + worker, check=True, env=_env(threads), capture_output=True)
        return json.loads(out.read_text())


def measure_crossval(jobs: int, threads: int, epochs: int, folds: str | None,
                     device: str = "cpu") -> dict:  # fmt: skip
    """Wall time of ``emofuse crossval`` on EmoDB as a fresh process, and its fold results."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "emofuse", "crossval", "--corpus", "emodb", "--root",
                   str(EMODB), "--epochs", str(epochs), "--jobs", str(jobs), "--threads",
                   str(threads), "--device", device, "--out", tmp]  # fmt: skip
        if folds:
            command += ["--folds", folds]
        began = time.perf_counter()
        subprocess.run(command, check=True, env=_env(threads), capture_output=True)
        wall = time.perf_counter() - began
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        ua = [round(f["ua"], 6) for f in summary["folds"]]
        return {"jobs": jobs, "threads": threads, "epochs": epochs, "device": device,
                "folds": len(ua), "wall_seconds": wall, "fold_ua": ua,
                "mean_ua": summary["mean"]["ua"]}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.parser(__doc__, quick="smoke run: small and short")
    parser.add_argument("--epochs", type=int, default=2, help="cross-validation epochs (CPU)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clips", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure_cpu(quick: bool, crossval_epochs: int) -> tuple[list[dict], list[dict]]:
    """Training in 1 x 1, 1 x 2 and 2 x 1 processes x threads; crossval (if EmoDB is here)."""
    clips, epochs = (128, 3) if quick else (512, 4)
    training = [measure_training(p, t, clips, epochs, 32) for p, t in ((1, 1), (1, 2), (2, 1))]
    for row in training:
        print(f"train: {row['processes']} process(es) x {row['torch_threads']} thread(s): "
              f"{row['clips_per_second']:.1f} clips/s", flush=True)  # fmt: skip
    crossval = []
    if EMODB.is_dir():
        folds = "0,1" if quick else None
        for jobs, threads in ((1, 2), (1, 1), (2, 1)):
            crossval.append(measure_crossval(jobs, threads, crossval_epochs, folds))
            row = crossval[-1]
            print(f"crossval: --jobs {jobs} --threads {threads}: {row['wall_seconds']:.1f} s",
                  flush=True)  # fmt: skip
    return training, crossval


def measure_gpu(quick: bool) -> dict:
    """Training at two batch sizes in fp32 and bf16 and a full crossval on CUDA, if present."""
    import torch

    if not torch.cuda.is_available():
        return {}
    epochs = 3 if quick else 4
    return {
        "training": [measure_training(1, 4, 4096, epochs, batch, precision, "cuda")
                     for batch in (32, 256) for precision in ("fp32", "bf16")],
        "emodb_10fold_30_epochs": measure_crossval(1, 4, 30, None, "cuda"),
    }  # fmt: skip


def table_rows(data: dict) -> list[list[str]]:
    """One row per training run and crossval, ratios against the first of each."""
    training, crossval, gpu = data["training"], data["crossval"], data["gpu"]
    base = training[0]["clips_per_second"]
    rows = [[f"train, {r['processes']} process(es) x {r['torch_threads']} thread(s)",
             f"{r['clips_per_second']:.1f} clips/s", f"{r['clips_per_second'] / base:.2f}x"]
            for r in training]  # fmt: skip
    if crossval:
        serial = crossval[0]["wall_seconds"]
        rows += [[f"EmoDB crossval ({c['folds']} folds, {c['epochs']} epochs), --jobs "
                  f"{c['jobs']} --threads {c['threads']}", f"{c['wall_seconds']:.0f} s wall",
                  f"{serial / c['wall_seconds']:.2f}x"] for c in crossval]  # fmt: skip
    for g in gpu.get("training", []):
        rows.append([f"train on CUDA, {g['precision']}, batch {g['global_batch']}",
                     f"{g['clips_per_second']:.0f} clips/s", ""])  # fmt: skip
    if gpu:
        c = gpu["emodb_10fold_30_epochs"]
        rows.append(["EmoDB crossval, 10 folds x 30 epochs, CUDA",
                     f"{c['wall_seconds']:.0f} s wall", ""])  # fmt: skip
    return rows


def render_markdown(data: dict, quick: bool = False) -> str:
    """The report of a run (its JSON, as written or read back)."""
    machine, identical = data["machine"], data["crossval_identical"]
    return "\n".join([
        f"# Scale-out{' (quick)' if quick else ''}",
        "",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores, torch "
        f"{machine['torch']}; CUDA: {'yes' if data['gpu'] else 'none'}. Load average before "
        f"{data['load_before']}, after {data['load_after']}.",
        "",
        common.markdown_table(["what", "measured", "vs first row"], table_rows(data)),
        "",
        "Training: default network, synthetic 3 s clips, global batch 32; 2 processes = "
        "torchrun DDP over gloo. Cross-validation: fresh `emofuse crossval` process, warm "
        "feature cache; ratio = wall time of `--jobs 1 --threads 2` / this row."
        + ("" if identical is None else
           f" Fold UAs of `--jobs 1 --threads 1` and `--jobs 2 --threads 1` identical: "
           f"{'yes' if identical else 'NO'}."),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        train_worker(args.clips, 3 if args.quick else 4, args.batch, args.precision,
                     args.device, args.worker)  # fmt: skip
        return
    before = common.load_average()
    training, crossval = measure_cpu(args.quick, args.epochs)
    gpu = measure_gpu(args.quick)
    identical = None
    if len(crossval) == 3:
        identical = crossval[1]["fold_ua"] == crossval[2]["fold_ua"]
    data = {"machine": common.machine_info(), "load_before": before,
            "load_after": common.load_average(), "training": training, "crossval": crossval,
            "crossval_identical": identical, "gpu": gpu}  # fmt: skip
    common.write_results("scale_out", data, render_markdown(data, args.quick), args.results_dir,
                         quick=args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
