"""Plain training functions: ``train_one_epoch`` and ``fit`` (evaluation:
:mod:`emofuse.training.evaluation`).

``fit`` trains on random crops, validates every epoch on windowed validation utterances,
keeps the weights of the best validation UA (early stopping on it too), and writes an atomic
checkpoint after every epoch so a killed run resumes where it stopped (``resume=True``).

The same code runs in one process or in several under torchrun
(:mod:`emofuse.training.distributed`): the model is wrapped in DistributedDataParallel
(SyncBatchNorm on CUDA), every epoch's utterances are split by a ``DistributedSampler`` seeded
with the run's seed and the epoch, ``train.batch_size`` is the global batch (split over the
processes), evaluation shards utterances and gathers every rank's posteriors, and only rank 0
writes. ``train.precision`` runs the forward pass under autocast (bf16, or fp16 with loss
scaling). On CUDA, batches are built by ``train.loader_workers`` processes into pinned memory.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from emofuse.config import ExperimentConfig, TrainConfig
from emofuse.device import set_threads
from emofuse.files import atomic_path
from emofuse.pipeline import EmotionPipeline, pipeline_from_config, save_pipeline
from emofuse.progress import EpochProgress
from emofuse.training import distributed
from emofuse.training.augment import augment
from emofuse.training.batches import (
    Batch,
    FeatureSet,
    random_crops,
)
from emofuse.training.evaluation import autocast, evaluate, to_device

__all__ = [
    "FitResult",
    "Runtime",
    "check_precision",
    "train_one_epoch",
    "fit",
]

CHECKPOINT = "checkpoint.pt"
BEST_MODEL = "model.pt"


def _loss(logits: Tensor, targets: Tensor, weights: Tensor | None, smoothing: float) -> Tensor:
    if targets.ndim == 2:  # soft targets (mixup)
        n_classes = logits.shape[1]
        soft = targets * (1 - smoothing) + smoothing / n_classes
        per_item = -(soft * logits.log_softmax(dim=1))
        if weights is not None:
            per_item = per_item * weights[None, :]
        return per_item.sum(dim=1).mean()
    return nn.functional.cross_entropy(logits, targets, weight=weights, label_smoothing=smoothing)


class _FeatureForward(nn.Module):
    """``pipeline.forward_features`` as a module's forward, for DistributedDataParallel."""

    def __init__(self, pipeline: EmotionPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline

    def forward(self, features: dict[str, tuple[Tensor, Tensor]]) -> Tensor:
        return self.pipeline.forward_features(features)


@dataclass
class Runtime:
    """How this process runs training steps: the forward (DDP-wrapped among several
    processes), autocast precision, the fp16 loss scaler and the batch-building workers."""

    forward: nn.Module | None = None  # None: the pipeline's own forward_features
    precision: str = "fp32"
    loader_workers: int = 0
    scaler: torch.amp.GradScaler | None = None


@dataclass
class _Crops:
    """Random crops of utterances of ``data``, augmented: a training batch. Holds no model (so
    loader workers never touch CUDA tensors)."""

    data: FeatureSet
    kinds: dict
    n_classes: int
    config: TrainConfig

    def __call__(self, idx: Tensor, generator: torch.Generator) -> Batch:
        c = self.config
        return augment(
            random_crops(self.data, idx, c.crop_seconds, generator), self.kinds,
            reference=self.data.reference, n_classes=self.n_classes, generator=generator,
            time_masks=c.time_masks, time_mask_frames=c.time_mask_frames,
            freq_masks=c.freq_masks, freq_mask_bins=c.freq_mask_bins, gain_db=c.gain_db,
            mixup_alpha=c.mixup_alpha,
        )  # fmt: skip


class _EpochBatches(Dataset):
    """Batch ``i`` of an epoch for loader workers: its crops and augmentation drawn from a
    generator seeded by (the epoch's seed, ``i``), so the batches do not depend on which worker
    builds them."""

    def __init__(self, crops: _Crops, chunks: list[Tensor], seed: int) -> None:
        self.crops, self.chunks, self.seed = crops, chunks, seed

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> Batch:
        return self.crops(self.chunks[i], torch.Generator().manual_seed(self.seed + i))


def _batches(
    crops: _Crops, order: Tensor, batch_size: int, generator: torch.Generator, workers: int,
    device: torch.device,
) -> Iterator[Batch]:  # fmt: skip
    """The epoch's batches in ``order``: built here from ``generator``, or by ``workers``
    processes (into pinned memory on CUDA)."""
    chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    chunks = [c for c in chunks if len(c) >= 2 or len(order) == 1]  # BatchNorm needs 2 items
    if workers == 0:
        yield from (crops(idx, generator) for idx in chunks)
        return
    seed = int(torch.randint(2**62, (1,), generator=generator))
    yield from DataLoader(
        _EpochBatches(crops, chunks, seed), batch_size=None, num_workers=workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip


def train_one_epoch(
    pipeline: EmotionPipeline,
    data: FeatureSet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    generator: torch.Generator,
    class_weights: Tensor | None = None,
    *,
    order: Tensor | None = None,
    runtime: Runtime | None = None,
) -> float:
    """One pass over ``data``, one random crop per utterance; mean loss over all processes.

    ``order`` is this process's utterance indices (default: a random permutation drawn from
    ``generator``); each process takes ``config.batch_size / processes`` per step.
    """
    runtime = runtime or Runtime()
    device = next(pipeline.parameters()).device
    forward = runtime.forward or pipeline.forward_features
    scaler = runtime.scaler or torch.amp.GradScaler(device.type, enabled=False)
    pipeline.train()
    if order is None:
        order = torch.randperm(len(data), generator=generator)
    batch_size = max(1, config.batch_size // distributed.world().size)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    crops = _Crops(data, dict(pipeline.kinds), pipeline.model_config.n_classes, config)
    for batch in _batches(crops, order, batch_size, generator, runtime.loader_workers, device):
        targets = batch.targets.to(device, non_blocking=True)
        with autocast(runtime.precision, device):
            logits = forward(to_device(batch.features, device))
        loss = _loss(logits.float(), targets, class_weights, config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(pipeline.parameters(), 5.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.detach().double() * len(targets)
        count += len(targets)
    total_all, count_all = distributed.sum_over_ranks(total.item(), count)
    return total_all / max(count_all, 1)


@dataclass
class FitResult:
    pipeline: EmotionPipeline  # weights of the best validation UA
    best_epoch: int
    best_val_ua: float
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _class_weights(labels: Tensor, n_classes: int) -> Tensor:
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp_min(1)), 0.0)
    return weights


def _save_atomic(payload: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _optimizer(
    pipeline: EmotionPipeline, tc: TrainConfig, n_train: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with linear warm-up then cosine decay, per step (of this process's share)."""
    optimizer = torch.optim.AdamW(pipeline.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    processes = distributed.world().size
    n_local, batch = math.ceil(n_train / processes), tc.batch_size // processes
    steps_per_epoch = max(1, n_local // batch + (n_local % batch >= 2))
    total_steps, warmup = tc.epochs * steps_per_epoch, tc.warmup_epochs * steps_per_epoch

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (
            1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup)))
        )

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


def check_precision(precision: str, device: torch.device) -> None:
    """ValueError for a precision ``device`` cannot train in (fp16 on the CPU)."""
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("train.precision fp16 needs CUDA (torch's CPU LSTM has no fp16 kernel): "
                         "on the CPU use bf16 or fp32")  # fmt: skip


def _runtime(
    pipeline: EmotionPipeline, tc: TrainConfig, device: torch.device
) -> tuple[EmotionPipeline, Runtime]:
    """The pipeline to train (SyncBatchNorm on CUDA among several processes) and its runtime."""
    check_precision(tc.precision, device)
    workers = tc.loader_workers
    if workers == -1:  # auto: none on the CPU (they would take the training's cores)
        per_process = (os.cpu_count() or 1) // distributed.world().size
        workers = min(4, per_process) if device.type == "cuda" else 0
    runtime = Runtime(
        precision=tc.precision, loader_workers=workers,
        scaler=torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16"),
    )  # fmt: skip
    if distributed.world().distributed:
        if device.type == "cuda":
            pipeline = nn.SyncBatchNorm.convert_sync_batchnorm(pipeline)
        ids = [device.index] if device.type == "cuda" else None
        runtime.forward = DistributedDataParallel(_FeatureForward(pipeline), device_ids=ids)
    return pipeline, runtime


def _epoch_order(n: int, tc: TrainConfig, epoch: int, generator: torch.Generator) -> Tensor:
    """This process's utterance indices for ``epoch``: a permutation drawn from ``generator``
    in one process, a ``DistributedSampler`` share (seeded by the seed and epoch) in several."""
    w = distributed.world()
    if not w.distributed:
        return torch.randperm(n, generator=generator)
    sampler = DistributedSampler(range(n), num_replicas=w.size, rank=w.rank, seed=tc.seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def _rank_seed(seed: int, rank: int) -> int:
    """Rank 0 draws crops as a single process does; the others from seeds of their own."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def fit(
    train: FeatureSet,
    val: FeatureSet,
    labels: list[str],
    config: ExperimentConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
) -> FitResult:
    """Train a pipeline on ``train``, choosing the epoch by validation UA on ``val``.

    Writes ``out_dir/checkpoint.pt`` (everything needed to resume) after every epoch and
    ``out_dir/model.pt`` (the best pipeline) whenever validation UA improves (rank 0 only
    among several processes, whose returned pipelines are identical). The returned pipeline
    is on the training device.
    """
    out_dir = Path(out_dir)
    tc = config.train
    set_threads(tc.num_threads)
    device = distributed.process_device(tc.device)
    w = distributed.setup(device)
    if tc.batch_size < 2 * w.size:
        raise ValueError(f"train.batch_size {tc.batch_size} is under 2 per process ({w.size})")
    if w.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    generator = _seed_everything(tc.seed)

    def new_pipeline() -> EmotionPipeline:
        return pipeline_from_config(config, labels)

    pipeline = new_pipeline()
    pipeline.fit_normalizers(train.moments())
    pipeline.to(device)
    if w.rank:  # the same initial weights everywhere, then each rank's own random draws
        generator.manual_seed(_rank_seed(tc.seed, w.rank))
        torch.manual_seed(_rank_seed(tc.seed, w.rank))
    pipeline, runtime = _runtime(pipeline, tc, device)

    optimizer, scheduler = _optimizer(pipeline, tc, len(train))
    class_weights = (
        _class_weights(train.labels, len(labels)).to(device) if tc.class_weighted else None
    )

    history: list[dict] = []
    best = {"epoch": -1, "ua": -1.0, "state": None}
    start_epoch, elapsed = 0, 0.0
    checkpoint_path = out_dir / CHECKPOINT
    if resume and checkpoint_path.exists():
        # On the CPU: RNG states must stay CPU tensors; the load_state_dict calls move the rest.
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        for name, part in (("pipeline", pipeline), ("optimizer", optimizer),
                           ("scheduler", scheduler), ("scaler", runtime.scaler)):  # fmt: skip
            if name in state:
                part.load_state_dict(state[name])
        ranks = state.get("ranks", [{"generator": state["generator"],
                                     "torch_rng": state["torch_rng"]}])  # fmt: skip
        if len(ranks) != w.size:
            raise ValueError(
                f"{checkpoint_path} was written by {len(ranks)} process(es), not {w.size}: "
                "resume with as many, or use a new output folder"
            )
        generator.set_state(ranks[w.rank]["generator"])
        torch.set_rng_state(ranks[w.rank]["torch_rng"])
        history, best, elapsed = state["history"], state["best"], state["elapsed"]
        start_epoch = state["epoch"] + 1

    bar = EpochProgress(tc.epochs, start_epoch) if progress and w.is_main else None
    for epoch in range(start_epoch, tc.epochs):
        if epoch - best["epoch"] > tc.patience and best["epoch"] >= 0:
            break
        began = time.perf_counter()
        loss = train_one_epoch(
            pipeline, train, optimizer, scheduler, tc, generator, class_weights,
            order=_epoch_order(len(train), tc, epoch, generator), runtime=runtime,
        )  # fmt: skip
        distributed.broadcast_buffers(pipeline)
        val_metrics = evaluate(pipeline, val, precision=tc.precision)
        elapsed += time.perf_counter() - began
        history.append({"epoch": epoch, "train_loss": loss, "val_ua": val_metrics["ua"],
                        "val_wa": val_metrics["wa"], "lr": scheduler.get_last_lr()[0],
                        "seconds": elapsed})  # fmt: skip
        if val_metrics["ua"] > best["ua"]:
            best = {
                "epoch": epoch,
                "ua": val_metrics["ua"],
                "state": {k: v.detach().cpu().clone() for k, v in pipeline.state_dict().items()},
            }
            if w.is_main:
                best_pipeline = new_pipeline()
                best_pipeline.load_state_dict(best["state"])
                save_pipeline(best_pipeline, out_dir / BEST_MODEL, epoch=epoch, val_ua=best["ua"],
                              normalised_per=tc.normalise)  # fmt: skip
        ranks = distributed.gather_objects(
            {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
        )
        if w.is_main:
            parts = (("pipeline", pipeline), ("optimizer", optimizer), ("scheduler", scheduler),
                     ("scaler", runtime.scaler))  # fmt: skip
            checkpoint = {name: part.state_dict() for name, part in parts}
            _save_atomic({**checkpoint, **ranks[0], "ranks": ranks, "history": history,
                          "best": best, "elapsed": elapsed, "epoch": epoch},
                         checkpoint_path)  # fmt: skip
        if bar is not None:
            bar.update(loss, val_metrics["ua"], best["ua"])
    if bar is not None:
        bar.close()
    distributed.check_same_weights(pipeline)
    distributed.barrier()  # rank 0's files are written before any rank goes on
    if best["state"] is None:
        raise RuntimeError("training produced no epoch (epochs already completed?)")
    result_pipeline = new_pipeline()
    result_pipeline.load_state_dict(best["state"])
    return FitResult(result_pipeline.to(device).eval(), best["epoch"], best["ua"], history, elapsed)
