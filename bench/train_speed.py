"""CPU training and evaluation throughput of the default model, and feature caching speed.

Training (``train_one_epoch`` on synthetic 3 s MFCC and log-Mel frames, batch 32) and evaluation
(``predict_posteriors``, batch 64) clips/s at 2 and 1 threads; with ``../shared/corpora/emodb``,
``FeatureCache.get_many`` cold and warm files/s.

    python bench/train_speed.py [--quick]    # writes bench/results/train_speed.{json,md}
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import _common as common
import numpy as np
import torch

THREADS = (2, 1)
LABELS = ("angry", "happy", "neutral", "sad")
CLIP_FRAMES = 300  # 3 s at 100 frames per second
DEFAULT_EMODB = common.CORPORA / "emodb"
FULL = {"train_clips": 96, "train_repeats": 3, "eval_clips": 192, "eval_repeats": 3,
        "cache_files": None}  # fmt: skip
QUICK = {"train_clips": 64, "train_repeats": 1, "eval_clips": 64, "eval_repeats": 1,
         "cache_files": 24}  # fmt: skip


def synthetic_features(n_clips: int, *, seed: int = 0, n_classes: int = len(LABELS)):
    """A FeatureSet of ``n_clips`` raw-feature tensors (40 MFCC + 64 log-Mel, 300 frames), with
    value ranges like real raw features (c0 large and negative, log-Mel around -6)."""
    from emofuse.training.batches import FeatureSet

    rng = np.random.default_rng(seed)
    arrays = []
    for _ in range(n_clips):
        mfcc = rng.normal(0.0, 5.0, (40, CLIP_FRAMES))
        mfcc[0] += -150.0
        logmel = rng.normal(-6.0, 2.5, (64, CLIP_FRAMES))
        arrays.append({"mfcc": mfcc.astype(np.float32), "logmel": logmel.astype(np.float32)})
    labels = [i % n_classes for i in range(n_clips)]
    ids = [f"clip{i:04d}" for i in range(n_clips)]
    return FeatureSet.from_arrays(arrays, labels, ids, {"mfcc": 100.0, "logmel": 100.0})


def _new_pipeline(data):
    from emofuse.config import ExperimentConfig
    from emofuse.pipeline import pipeline_from_config

    pipeline = pipeline_from_config(ExperimentConfig(), LABELS)
    pipeline.fit_normalizers(data.moments())
    return pipeline


def measure_training(n_clips: int, repeats: int, threads: int) -> dict:
    """Time ``train_one_epoch`` over ``n_clips`` synthetic clips, ``repeats`` epochs."""
    from emofuse.config import TrainConfig
    from emofuse.training.train import _class_weights, train_one_epoch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = TrainConfig(device="cpu")
    data = synthetic_features(n_clips)
    pipeline = _new_pipeline(data)
    optimizer = torch.optim.AdamW(
        pipeline.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    weights = _class_weights(data.labels, len(LABELS))  # as fit() does (class_weighted=True)
    generator = torch.Generator().manual_seed(0)
    warmup = synthetic_features(2 * config.batch_size, seed=1)
    train_one_epoch(pipeline, warmup, optimizer, scheduler, config, generator, weights)
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        train_one_epoch(pipeline, data, optimizer, scheduler, config, generator, weights)
        seconds.append(time.perf_counter() - began)
    median = statistics.median(seconds)
    steps = math.ceil(n_clips / config.batch_size)
    return {
        "torch_threads": torch.get_num_threads(),
        "clips_per_epoch": n_clips,
        "batch_size": config.batch_size,
        "epochs_timed": repeats,
        "epoch_seconds": seconds,
        "median_epoch_seconds": median,
        "clips_per_second": n_clips / median,
        "ms_per_step": median / steps * 1e3,
    }


def measure_evaluation(n_clips: int, repeats: int, threads: int) -> dict:
    """Time ``predict_posteriors`` over ``n_clips`` synthetic 3 s clips."""
    from emofuse.training.evaluation import predict_posteriors

    torch.set_num_threads(threads)
    data = synthetic_features(n_clips, seed=2)
    pipeline = _new_pipeline(data).eval()
    predict_posteriors(pipeline, synthetic_features(64, seed=3))  # warm-up
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        predict_posteriors(pipeline, data)
        seconds.append(time.perf_counter() - began)
    median = statistics.median(seconds)
    return {
        "torch_threads": torch.get_num_threads(),
        "clips": n_clips,
        "batch_size": 64,
        "repeats": repeats,
        "seconds": seconds,
        "median_seconds": median,
        "clips_per_second": n_clips / median,
    }


@dataclass(frozen=True)
class Caching:
    """Cold and warm ``FeatureCache.get_many`` over ``files`` files (a row of the JSON)."""

    torch_threads: int
    files: int
    audio_seconds: float
    cold_seconds: float
    cold_files_per_second: float
    cold_audio_seconds_per_second: float
    warm_seconds: float
    warm_files_per_second: float
    warm_audio_seconds_per_second: float


def measure_caching(root: Path, max_files: int | None, threads: int) -> dict:
    """Cold (decode + extract + write) and warm (read) ``FeatureCache.get_many`` on EmoDB."""
    from emofuse.corpora import emodb
    from emofuse.features import default_features
    from emofuse.pipeline.cache import FeatureCache
    from emofuse.signal.audio import audio_duration

    torch.set_num_threads(threads)
    paths = [u.path for u in emodb.prepare(root)][:max_files]
    audio_seconds = sum(audio_duration(p) for p in paths)
    for p in paths:  # warm the OS page cache so every pass reads from memory
        Path(p).read_bytes()
    with tempfile.TemporaryDirectory(prefix="emofuse-bench-cache-") as tmp:
        cache = FeatureCache(default_features(), root=tmp)
        began = time.perf_counter()
        cache.get_many(paths)
        cold = time.perf_counter() - began
        began = time.perf_counter()
        cache.get_many(paths)
        warm = time.perf_counter() - began
    n = len(paths)
    return asdict(Caching(torch.get_num_threads(), n, audio_seconds, cold, n / cold,
                          audio_seconds / cold, warm, n / warm, audio_seconds / warm))  # fmt: skip


def measured(fn, *args) -> dict:
    """``fn(*args)``'s result with the cores other processes kept busy meanwhile."""
    snapshot = common.cpu_snapshot()
    return fn(*args) | {"other_processes_cores": common.other_processes_cores(snapshot)}


def measure_all(threads: int, sizes: dict, emodb_root: Path) -> tuple[dict, dict, dict | None]:
    """Training, evaluation and (where EmoDB is) caching at ``threads`` torch threads."""
    training = measured(measure_training, sizes["train_clips"], sizes["train_repeats"], threads)
    print(f"train, {threads} thread(s): {training['clips_per_second']:.1f} clips/s")
    evaluation = measured(measure_evaluation, sizes["eval_clips"], sizes["eval_repeats"], threads)
    print(f"eval, {threads} thread(s): {evaluation['clips_per_second']:.1f} clips/s")
    if not emodb_root.is_dir():
        return training, evaluation, None
    caching = measured(measure_caching, emodb_root, sizes["cache_files"], threads)
    print(f"cache, {threads} thread(s): {caching['cold_files_per_second']:.1f} files/s cold")
    return training, evaluation, caching


def run(quick: bool = False, emodb_root: Path = DEFAULT_EMODB) -> dict:
    from emofuse.config import TrainConfig
    from emofuse.model import ModelConfig

    started = common.Run.start()
    with common.torch_threads_kept():
        rounds = [measure_all(t, QUICK if quick else FULL, emodb_root) for t in THREADS]
    training, evaluation, caching = (list(column) for column in zip(*rounds, strict=True))
    return started.header("train_speed", quick) | {
        "train_config": asdict(TrainConfig(device="cpu")),
        "model_config": ModelConfig().to_dict(),
        "clip_frames": CLIP_FRAMES,
        "training": training,
        "evaluation": evaluation,
        "caching": [c for c in caching if c is not None],
        "emodb_root": str(emodb_root.resolve()) if emodb_root.is_dir() else None,
        "elapsed_seconds": started.elapsed(),
    }


BUSY = "cores busy with other processes"


def _training_table(rows: list[dict]) -> str:
    cells = [[t["torch_threads"], f"{t['clips_per_second']:.1f}", f"{t['ms_per_step']:.0f}",
              t["clips_per_epoch"], t["epochs_timed"], t["other_processes_cores"]]
             for t in rows]  # fmt: skip
    headers = ["threads", "clips/s", "ms/step", "clips per epoch", "epochs timed", BUSY]
    return common.markdown_table(headers, cells)


def _evaluation_table(rows: list[dict]) -> str:
    cells = [[e["torch_threads"], f"{e['clips_per_second']:.1f}", e["clips"], e["repeats"],
              e["other_processes_cores"]] for e in rows]  # fmt: skip
    return common.markdown_table(["threads", "clips/s", "clips", "repeats", BUSY], cells)


def _caching_section(rows: list[dict]) -> list[str]:
    if not rows:
        return ["EmoDB not found: feature caching not measured."]
    cells = [[c["torch_threads"], c["files"], f"{c['audio_seconds']:.0f}",
              f"{c['cold_files_per_second']:.1f}", f"{c['cold_audio_seconds_per_second']:.0f}",
              f"{c['warm_files_per_second']:.0f}", c["other_processes_cores"]]
             for c in rows]  # fmt: skip
    headers = ["threads", "files", "audio s", "cold files/s", "cold audio s/s", "warm files/s",
               BUSY]  # fmt: skip
    return [
        "## Feature extraction + caching of EmoDB (FeatureCache.get_many, temporary folder)",
        "Cold: decode + extract + write each file; warm: read the cached features back. "
        "Audio files were read once beforehand (OS page cache warm).",
        common.markdown_table(headers, cells),
    ]


def render_markdown(results: dict) -> str:
    """The report of a run (its JSON, as written or read back)."""
    machine = results["machine"]
    quick = " (QUICK smoke run: too few repetitions to quote)" if results["quick"] else ""
    return "\n\n".join([
        f"# emofuse training throughput{quick}",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; "
        f"Python {machine['python']}, torch {machine['torch']}, numpy {machine['numpy']}. "
        f"Load average (1/5/15 min) before {results['load_average_before']}, after "
        f"{results['load_average_after']}; other processes kept "
        f"{results['other_processes_cores']} cores busy on average during the run. Other jobs "
        "share the machine: where they occupy the cores torch wants, the multi-thread numbers "
        "measure contention more than the code.",
        "## Training (train_one_epoch, default TrainConfig augmentation, AdamW)",
        "Synthetic raw features (104, 300) = 3 s clips, random crops, batches of 32.",
        _training_table(results["training"]),
        "## Evaluation (predict_posteriors, batches of 64, one 3 s window per clip)",
        _evaluation_table(results["evaluation"]),
        *_caching_section(results["caching"]),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="few repetitions (smoke run)")
    parser.add_argument("--emodb", type=Path, default=DEFAULT_EMODB, help="EmoDB root (caching)")
    args = parser.parse_args(argv)
    results = run(quick=args.quick, emodb_root=args.emodb)
    common.report("train_speed", results, render_markdown, args)


if __name__ == "__main__":
    main()
