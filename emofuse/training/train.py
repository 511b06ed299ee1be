"""Plain training functions: ``train_one_epoch``, ``evaluate`` and ``fit``.

``fit`` trains on random crops, validates every epoch on windowed validation utterances,
keeps the weights of the best validation UA (early stopping on it too), and writes an atomic
checkpoint after every epoch so a killed run resumes where it stopped (``resume=True``).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from emofuse.config import ExperimentConfig, TrainConfig
from emofuse.device import resolve_device, set_threads
from emofuse.files import atomic_path
from emofuse.metrics import summarize
from emofuse.pipeline import EmotionPipeline, pipeline_from_config, save_pipeline
from emofuse.training.augment import augment
from emofuse.training.batches import FeatureSet, random_crops, stack_windows, utterance_windows

__all__ = [
    "FitResult",
    "train_one_epoch",
    "predict_posteriors",
    "evaluate",
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


def train_one_epoch(
    pipeline: EmotionPipeline,
    data: FeatureSet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    generator: torch.Generator,
    class_weights: Tensor | None = None,
) -> float:
    """One pass over ``data`` in random order, one random crop per utterance; mean loss."""
    device = next(pipeline.parameters()).device
    pipeline.train()
    order = torch.randperm(len(data), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        if len(idx) < 2 and len(order) > 1:  # BatchNorm needs more than one item
            continue
        batch = augment(
            random_crops(data, idx, config.crop_seconds, generator),
            pipeline.kinds,
            reference=data.reference,
            n_classes=pipeline.model_config.n_classes,
            generator=generator,
            time_masks=config.time_masks,
            time_mask_frames=config.time_mask_frames,
            freq_masks=config.freq_masks,
            freq_mask_bins=config.freq_mask_bins,
            gain_db=config.gain_db,
            mixup_alpha=config.mixup_alpha,
        )
        logits = pipeline.forward_features(_to(batch.streams, device))
        loss = _loss(logits, batch.targets.to(device), class_weights, config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(pipeline.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(idx)
        count += len(idx)
    return total / max(count, 1)


def _to(streams: dict[str, tuple[Tensor, Tensor]], device: torch.device) -> dict:
    return {name: (x.to(device), n.to(device)) for name, (x, n) in streams.items()}


@torch.no_grad()
def predict_posteriors(
    pipeline: EmotionPipeline, data: FeatureSet, batch_size: int = 64
) -> np.ndarray:
    """Posteriors (N, C): each utterance cut into the pipeline's evaluation windows, window
    posteriors averaged."""
    device = next(pipeline.parameters()).device
    pipeline.eval()
    w = pipeline.windows
    segments, owner = [], []
    for i in range(len(data)):
        parts = utterance_windows(data, i, w.window_seconds, w.hop_fraction)
        segments.extend(parts)
        owner.extend([i] * len(parts))
    owner_t = torch.tensor(owner)
    sums = torch.zeros(len(data), pipeline.model_config.n_classes, dtype=torch.float64)
    for start in range(0, len(segments), batch_size):
        streams = stack_windows(segments[start : start + batch_size])
        probs = pipeline.forward_features(_to(streams, device)).softmax(dim=1)
        sums.index_add_(0, owner_t[start : start + batch_size], probs.double().cpu())
    counts = torch.bincount(owner_t, minlength=len(data)).double()
    return (sums / counts[:, None]).numpy()


def evaluate(pipeline: EmotionPipeline, data: FeatureSet) -> dict:
    """WA, UA, macro-F1 and the posteriors of ``data`` (cut into the pipeline's windows)."""
    posteriors = predict_posteriors(pipeline, data)
    metrics = summarize(data.labels.numpy(), posteriors.argmax(axis=1), posteriors.shape[1])
    return {**metrics, "posteriors": posteriors}


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
    """AdamW with linear warm-up then cosine decay, per step."""
    optimizer = torch.optim.AdamW(pipeline.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = max(1, n_train // tc.batch_size + (n_train % tc.batch_size >= 2))
    total_steps, warmup = tc.epochs * steps_per_epoch, tc.warmup_epochs * steps_per_epoch

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (
            1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup)))
        )

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


class _EpochBar:
    """A tqdm bar over epochs showing loss, validation UA and the best so far."""

    def __init__(self, total: int, initial: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc="epochs", unit="epoch", leave=False)

    def update(self, loss: float, val_ua: float, best_ua: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}", val_ua=f"{val_ua:.3f}", best=f"{best_ua:.3f}")

    def close(self) -> None:
        self.bar.close()


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
    ``out_dir/model.pt`` (the best pipeline) whenever validation UA improves.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tc = config.train
    set_threads(tc.num_threads)
    device = resolve_device(tc.device)
    generator = _seed_everything(tc.seed)

    def new_pipeline() -> EmotionPipeline:
        return pipeline_from_config(config, labels)

    pipeline = new_pipeline()
    pipeline.fit_normalizers(train.moments())
    pipeline.to(device)

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
                           ("scheduler", scheduler)):  # fmt: skip
            part.load_state_dict(state[name])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best, elapsed = state["history"], state["best"], state["elapsed"]
        start_epoch = state["epoch"] + 1

    bar = _EpochBar(tc.epochs, start_epoch) if progress else None
    for epoch in range(start_epoch, tc.epochs):
        if epoch - best["epoch"] > tc.patience and best["epoch"] >= 0:
            break
        began = time.perf_counter()
        loss = train_one_epoch(pipeline, train, optimizer, scheduler, tc, generator, class_weights)
        val_metrics = evaluate(pipeline, val)
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
            best_pipeline = new_pipeline()
            best_pipeline.load_state_dict(best["state"])
            save_pipeline(best_pipeline, out_dir / BEST_MODEL, epoch=epoch, val_ua=best["ua"])
        parts = (("pipeline", pipeline), ("optimizer", optimizer), ("scheduler", scheduler))
        checkpoint = {name: part.state_dict() for name, part in parts}
        _save_atomic({**checkpoint, "generator": generator.get_state(),
                      "torch_rng": torch.get_rng_state(), "history": history, "best": best,
                      "elapsed": elapsed, "epoch": epoch}, checkpoint_path)  # fmt: skip
        if bar is not None:
            bar.update(loss, val_metrics["ua"], best["ua"])
    if bar is not None:
        bar.close()
    if best["state"] is None:
        raise RuntimeError("training produced no epoch (epochs already completed?)")
    result_pipeline = new_pipeline()
    result_pipeline.load_state_dict(best["state"])
    return FitResult(result_pipeline.eval(), best["epoch"], best["ua"], history, elapsed)
