"""Cached features in memory, random training crops, evaluation windows and augmentation.

Features of one utterance are one tensor ``(n_rows, frames)``: MFCC rows, log-Mel, then prosody
(as :class:`emofuse.pipeline.cache.FeatureCache` stores them). A batch is
``(features (B, F, T), frames (B,))``, zero-padded past each length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["FeatureSet", "Batch", "pad_batch", "random_crops", "windows", "augment"]


@dataclass
class FeatureSet:
    """Utterance features with integer labels (-1 where unlabelled)."""

    features: list[Tensor]
    labels: Tensor  # (N,) int64
    ids: list[str]

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray], labels: list[int], ids: list[str]) -> FeatureSet:
        if not len(arrays) == len(labels) == len(ids):
            raise ValueError(f"{len(arrays)} feature arrays, {len(labels)} labels, {len(ids)} ids")
        return cls([torch.from_numpy(a) for a in arrays], torch.tensor(labels), list(ids))

    def moments(self) -> tuple[Tensor, Tensor, int]:
        """Per-row sums, sums of squares and the frame count over all utterances."""
        sums = sum(f.double().sum(dim=1) for f in self.features)
        squares = sum(f.double().square().sum(dim=1) for f in self.features)
        return sums, squares, sum(f.shape[1] for f in self.features)


@dataclass
class Batch:
    features: Tensor  # (B, F, T)
    frames: Tensor  # (B,)
    targets: Tensor  # (B,) int64, or (B, C) soft targets after mixup


def pad_batch(segments: list[Tensor]) -> tuple[Tensor, Tensor]:
    """List of (F, T_i) -> zero-padded (B, F, max T_i) and lengths (B,)."""
    frames = torch.tensor([s.shape[1] for s in segments])
    out = segments[0].new_zeros(len(segments), segments[0].shape[0], int(frames.max()))
    for i, s in enumerate(segments):
        out[i, :, : s.shape[1]] = s
    return out, frames


def random_crops(
    data: FeatureSet, indices: Tensor, crop_frames: int, generator: torch.Generator
) -> Batch:
    """One random crop of at most ``crop_frames`` from each utterance in ``indices``."""
    segments = []
    for i in indices.tolist():
        feats = data.features[i]
        spare = feats.shape[1] - crop_frames
        start = int(torch.randint(spare + 1, (1,), generator=generator)) if spare > 0 else 0
        segments.append(feats[:, start : start + crop_frames])
    features, frames = pad_batch(segments)
    return Batch(features, frames, data.labels[indices])


def windows(feats: Tensor, window: int, hop: int) -> list[Tensor]:
    """Cover (F, T) with windows of ``window`` frames every ``hop``; the last one ends at T.

    >>> [(w.shape[1]) for w in windows(torch.zeros(2, 700), 300, 150)]
    [300, 300, 300, 300]
    >>> [w.shape[1] for w in windows(torch.zeros(2, 120), 300, 150)]
    [120]
    """
    total = feats.shape[1]
    if total <= window:
        return [feats]
    starts = list(range(0, total - window + 1, hop))
    if starts[-1] + window < total:
        starts.append(total - window)
    return [feats[:, s : s + window] for s in starts]


def augment(
    batch: Batch,
    *,
    n_mfcc: int,
    n_classes: int,
    n_mels: int | None = None,
    generator: torch.Generator,
    time_masks: int = 0,
    time_mask_frames: int = 0,
    freq_masks: int = 0,
    freq_mask_bins: int = 0,
    gain_db: float = 0.0,
    mixup_alpha: float = 0.0,
) -> Batch:
    """Level change, SpecAugment-style masks and mixup on raw (unnormalised) features.

    Rows are MFCC (``n_mfcc``), log-Mel (``n_mels``, default: all the rest), then the prosody
    rows (energy dB, pitch, voicing) if any. A gain of g dB adds ``g ln(10)/10`` to every log-Mel
    bin, ``sqrt(n_mels)`` times that to MFCC c0 (the orthonormal DCT's constant row) and g to the
    energy row, the exact effect of scaling the waveform. Masks replace a span with the
    utterance's mean, in time on every row and in frequency on the log-Mel. Mixup blends pairs
    and returns soft targets (B, C).
    """
    x = batch.features.clone()
    bsz, n_feats, total = x.shape
    n_mels = n_feats - n_mfcc if n_mels is None else n_mels
    mel_rows = slice(n_mfcc, n_mfcc + n_mels)
    has_prosody = n_feats > n_mfcc + n_mels
    frame_idx = torch.arange(total)[None, :]
    valid = frame_idx < batch.frames[:, None]  # (B, T)
    if gain_db > 0:
        gain = (torch.rand(bsz, generator=generator) * 2 - 1) * gain_db * math.log(10) / 10
        x[:, mel_rows] += gain[:, None, None]
        x[:, 0] += gain[:, None] * math.sqrt(n_mels)
        if has_prosody:  # the energy row is in dB
            x[:, n_mfcc + n_mels] += gain[:, None] * 10 / math.log(10)
    mean = (x * valid[:, None]).sum(-1, keepdim=True) / batch.frames[:, None, None]  # (B, F, 1)
    for _ in range(time_masks):
        width = torch.randint(time_mask_frames + 1, (bsz, 1), generator=generator)
        start = (
            torch.rand(bsz, 1, generator=generator) * (batch.frames[:, None] - width).clamp_min(0)
        ).long()
        masked = (frame_idx >= start) & (frame_idx < start + width)  # (B, T)
        x = torch.where(masked[:, None, :], mean, x)
    bins = torch.arange(n_mels)[None, :]
    for _ in range(freq_masks):
        width = torch.randint(freq_mask_bins + 1, (bsz, 1), generator=generator)
        start = torch.randint(max(1, n_mels - freq_mask_bins), (bsz, 1), generator=generator)
        masked = (bins >= start) & (bins < start + width)  # (B, n_mels)
        x[:, mel_rows] = torch.where(masked[:, :, None], mean[:, mel_rows], x[:, mel_rows])
    x = x * valid[:, None, :]
    targets = batch.targets
    frames = batch.frames
    if mixup_alpha > 0:
        lam = float(
            np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator))).beta(
                mixup_alpha, mixup_alpha
            )
        )
        lam = max(lam, 1 - lam)  # the first item dominates, so its length is the one kept
        perm = torch.randperm(bsz, generator=generator)
        x = lam * x + (1 - lam) * x[perm] * valid[:, None, :]
        one_hot = torch.nn.functional.one_hot(targets, n_classes).float()
        targets = lam * one_hot + (1 - lam) * one_hot[perm]
    return Batch(x, frames, targets)
