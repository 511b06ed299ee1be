"""Evaluation of a pipeline on cached features: posteriors of whole utterances (each cut into
the pipeline's evaluation windows, window posteriors averaged) and their metrics; in one
process or sharded over several under torchrun (:mod:`emofuse.training.distributed`)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import Tensor

from emofuse.metrics import summarize
from emofuse.pipeline import EmotionPipeline
from emofuse.training import distributed
from emofuse.training.batches import FeatureSet, stack_windows, utterance_windows

__all__ = ["AUTOCAST_DTYPES", "autocast", "evaluate", "predict_posteriors", "to_device"]

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device``'s type (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def to_device(features: dict[str, tuple[Tensor, Tensor]], device: torch.device) -> dict:
    return {name: (x.to(device, non_blocking=True), n.to(device, non_blocking=True))
            for name, (x, n) in features.items()}  # fmt: skip


@torch.no_grad()
def _shard_posteriors(
    pipeline: EmotionPipeline, data: FeatureSet, indices: list[int], batch_size: int,
    precision: str,
) -> np.ndarray:  # fmt: skip
    """Posteriors (len(indices), C) of utterances ``indices``."""
    device = next(pipeline.parameters()).device
    pipeline.eval()
    w = pipeline.windows
    segments, owner = [], []
    for row, i in enumerate(indices):
        parts = utterance_windows(data, i, w.window_seconds, w.hop_fraction)
        segments.extend(parts)
        owner.extend([row] * len(parts))
    owner_t = torch.tensor(owner, dtype=torch.long)
    sums = torch.zeros(len(indices), pipeline.model_config.n_classes, dtype=torch.float64)
    for start in range(0, len(segments), batch_size):
        features = stack_windows(segments[start : start + batch_size])
        with autocast(precision, device):
            logits = pipeline.forward_features(to_device(features, device))
        probs = logits.float().softmax(dim=1)
        sums.index_add_(0, owner_t[start : start + batch_size], probs.double().cpu())
    counts = torch.bincount(owner_t, minlength=len(indices)).double()
    return (sums / counts[:, None]).numpy()


def predict_posteriors(
    pipeline: EmotionPipeline, data: FeatureSet, batch_size: int = 64, precision: str = "fp32"
) -> np.ndarray:
    """Posteriors (N, C): each utterance cut into the pipeline's evaluation windows, window
    posteriors averaged. Among several processes each computes a share of the utterances and
    every process gets all of them (so every rank must call this)."""
    w = distributed.world()
    shards = [distributed.shard(range(len(data)), rank) for rank in range(w.size)]
    mine = _shard_posteriors(pipeline, data, shards[w.rank], batch_size, precision)
    posteriors = np.zeros((len(data), pipeline.model_config.n_classes))
    for indices, values in zip(shards, distributed.gather_objects(mine), strict=True):
        posteriors[indices] = values
    return posteriors


def evaluate(pipeline: EmotionPipeline, data: FeatureSet, precision: str = "fp32") -> dict:
    """WA, UA, macro-F1 and the posteriors of ``data`` (cut into the pipeline's windows)."""
    posteriors = predict_posteriors(pipeline, data, precision=precision)
    metrics = summarize(data.labels.numpy(), posteriors.argmax(axis=1), posteriors.shape[1])
    return {**metrics, "posteriors": posteriors}
