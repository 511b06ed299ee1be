"""Training augmentation on raw (unnormalised) feature frames: level change, SpecAugment-style
masks and mixup, applied to every feature consistently.

Random draws happen once per batch in this order: gain, time masks, frequency masks, mixup;
time masks are drawn on the reference feature's frames and mapped to every feature by time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from emofuse.features import FeatureKind
from emofuse.training.batches import Batch

__all__ = ["augment"]


def _valid(lengths: Tensor, total: int) -> Tensor:
    return torch.arange(total)[None, :] < lengths[:, None]  # (B, T)


def augment(
    batch: Batch,
    kinds: Mapping[str, FeatureKind],
    *,
    reference: str,
    n_classes: int,
    generator: torch.Generator,
    time_masks: int = 0,
    time_mask_frames: int = 0,
    freq_masks: int = 0,
    freq_mask_bins: int = 0,
    gain_db: float = 0.0,
    mixup_alpha: float = 0.0,
) -> Batch:
    """Augmented copy of ``batch``.

    A gain of g dB changes every feature exactly as scaling the waveform would
    (:meth:`FeatureKind.apply_gain`). Time masks (up to ``time_mask_frames`` frames of the
    reference feature) replace a span of every feature with the utterance's mean; frequency masks
    do the same over rows of the features whose kind is ``freq_maskable`` (log-Mel). Mixup blends
    pairs and returns soft targets (B, C).
    """
    x = {name: frames.clone() for name, (frames, _) in batch.features.items()}
    lengths = {name: frames for name, (_, frames) in batch.features.items()}
    valid = {name: _valid(lengths[name], x[name].shape[-1]) for name in x}  # (B, T_s)
    bsz = x[reference].shape[0]
    if gain_db > 0:
        gain = (torch.rand(bsz, generator=generator) * 2 - 1) * gain_db * math.log(10) / 10
        for name, frames in x.items():
            kinds[name].apply_gain(frames, gain)
    mean = {
        name: (frames * valid[name][:, None]).sum(-1, keepdim=True) / lengths[name][:, None, None]
        for name, frames in x.items()
    }  # (B, dims, 1)
    ref_rate = kinds[reference].frame_rate
    for _ in range(time_masks):
        width = torch.randint(time_mask_frames + 1, (bsz, 1), generator=generator)
        start = (
            torch.rand(bsz, 1, generator=generator)
            * (lengths[reference][:, None] - width).clamp_min(0)
        ).long()
        for name, frames in x.items():
            ratio = kinds[name].frame_rate / ref_rate
            steps = torch.arange(frames.shape[-1])[None, :]
            lo, hi = start * ratio, (start + width) * ratio
            masked = (steps >= lo) & (steps < hi)  # (B, T_s)
            x[name] = torch.where(masked[:, None, :], mean[name], frames)
    for _ in range(freq_masks):
        for name, frames in x.items():
            if not kinds[name].freq_maskable:
                continue
            n_bins = frames.shape[1]
            width = torch.randint(freq_mask_bins + 1, (bsz, 1), generator=generator)
            start = torch.randint(max(1, n_bins - freq_mask_bins), (bsz, 1), generator=generator)
            bins = torch.arange(n_bins)[None, :]
            masked = (bins >= start) & (bins < start + width)  # (B, dims)
            x[name] = torch.where(masked[:, :, None], mean[name], frames)
    x = {name: frames * valid[name][:, None, :] for name, frames in x.items()}
    targets = batch.targets
    if mixup_alpha > 0:
        seed = int(torch.randint(2**31, (1,), generator=generator))
        lam = float(np.random.default_rng(seed).beta(mixup_alpha, mixup_alpha))
        lam = max(lam, 1 - lam)  # the first item dominates, so its length is the one kept
        perm = torch.randperm(bsz, generator=generator)
        x = {name: lam * f + (1 - lam) * f[perm] * valid[name][:, None, :] for name, f in x.items()}
        one_hot = torch.nn.functional.one_hot(targets, n_classes).float()
        targets = lam * one_hot + (1 - lam) * one_hot[perm]
    return Batch({name: (x[name], lengths[name]) for name in x}, targets)
