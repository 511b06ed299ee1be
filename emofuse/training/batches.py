"""Cached feature frames in memory, random training crops and evaluation windows, cut in seconds.

An utterance is one array per feature, ``(dims, frames)`` at that feature's frame rate. Crops and
windows are placed on the *reference* feature (the highest frame rate; the first of equal ones)
and mapped to every other feature by time, so features of different rates stay aligned. A batch
holds, per feature, ``(frames (B, dims, T), lengths (B,))`` zero-padded past each length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FeatureSet",
    "Batch",
    "pad_batch",
    "random_crops",
    "windows",
    "utterance_windows",
    "stack_windows",
]

FeatureBatch = dict[str, tuple[Tensor, Tensor]]  # name -> (frames (B, dims, T), lengths (B,))


@dataclass
class FeatureSet:
    """Utterance frames per feature with integer labels (-1 where unlabelled).

    ``features[name][i]`` is utterance ``i``'s ``(dims, frames)`` tensor; ``rates[name]`` is that
    feature's frames per second.
    """

    features: dict[str, list[Tensor]]
    rates: dict[str, float]
    labels: Tensor  # (N,) int64
    ids: list[str]

    def __post_init__(self) -> None:
        if set(self.features) != set(self.rates) or not self.features:
            raise ValueError(f"features {sorted(self.features)} and rates {sorted(self.rates)} "
                             "must name the same one or more features")  # fmt: skip
        sizes = {len(v) for v in self.features.values()} | {len(self.labels), len(self.ids)}
        if len(sizes) != 1:
            raise ValueError(f"features, labels and ids differ in length: {sorted(sizes)}")
        # reference: the highest rate, the first of equal ones
        self.reference = max(self.rates, key=lambda n: (self.rates[n], -list(self.rates).index(n)))

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_arrays(
        cls,
        arrays: Sequence[Mapping[str, np.ndarray]],
        labels: Sequence[int],
        ids: Sequence[str],
        rates: Mapping[str, float],
    ) -> FeatureSet:
        """From one ``{feature: (dims, frames)}`` mapping per utterance."""
        if not len(arrays) == len(labels) == len(ids):
            raise ValueError(f"{len(arrays)} feature arrays, {len(labels)} labels, {len(ids)} ids")
        features = {name: [torch.from_numpy(a[name]) for a in arrays] for name in rates}
        return cls(features, dict(rates), torch.tensor(list(labels), dtype=torch.long), list(ids))

    def moments(self) -> dict[str, tuple[Tensor, Tensor, int]]:
        """Per feature: per-row sums, sums of squares and the frame count over all utterances."""
        return {
            name: (
                sum(f.double().sum(dim=1) for f in frames),
                sum(f.double().square().sum(dim=1) for f in frames),
                sum(f.shape[1] for f in frames),
            )
            for name, frames in self.features.items()
        }

    def utterance(self, index: int) -> dict[str, Tensor]:
        return {name: frames[index] for name, frames in self.features.items()}


@dataclass
class Batch:
    features: FeatureBatch
    targets: Tensor  # (B,) int64, or (B, C) soft targets after mixup

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory (called by a ``DataLoader`` with ``pin_memory``), so
        the copy to a GPU can overlap compute."""
        features = {
            name: (x.pin_memory(), n.pin_memory()) for name, (x, n) in self.features.items()
        }
        return Batch(features, self.targets.pin_memory())


def pad_batch(segments: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """List of (F, T_i) -> zero-padded (B, F, max T_i) and lengths (B,)."""
    frames = torch.tensor([s.shape[1] for s in segments])
    out = segments[0].new_zeros(len(segments), segments[0].shape[0], int(frames.max()))
    for i, s in enumerate(segments):
        out[i, :, : s.shape[1]] = s
    return out, frames


def _cut(
    utterance: Mapping[str, Tensor], rates: Mapping[str, float], reference: str, start: int,
    size: int,
) -> dict[str, Tensor]:  # fmt: skip
    """Frames ``[start, start + size)`` of the reference feature and the same time of the others:
    the start rounded to the nearest frame (halves up), the length ``size`` converted to the
    feature's rate, so equal windows give equal frame counts (at least one frame each)."""
    ref_rate = rates[reference]
    cut = {}
    for name, feats in utterance.items():
        if name == reference:
            cut[name] = feats[:, start : start + size]
            continue
        ratio = rates[name] / ref_rate
        lo = min(math.floor(start * ratio + 0.5), feats.shape[1] - 1)
        cut[name] = feats[:, lo : lo + max(1, round(size * ratio))]
    return cut


def stack_windows(parts: Sequence[Mapping[str, Tensor]]) -> FeatureBatch:
    """Crops or windows (one ``{feature: (dims, T_i)}`` each) -> a padded batch per feature."""
    return {name: pad_batch([p[name] for p in parts]) for name in parts[0]}


def random_crops(
    data: FeatureSet, indices: Tensor, crop_seconds: float, generator: torch.Generator
) -> Batch:
    """One random crop of at most ``crop_seconds`` from each utterance in ``indices``."""
    reference = data.reference
    crop = round(crop_seconds * data.rates[reference])
    parts = []
    for i in indices.tolist():
        spare = data.features[reference][i].shape[1] - crop
        start = int(torch.randint(spare + 1, (1,), generator=generator)) if spare > 0 else 0
        parts.append(_cut(data.utterance(i), data.rates, reference, start, crop))
    return Batch(stack_windows(parts), data.labels[indices])


def windows(total: int, window: int, hop: int) -> list[tuple[int, int]]:
    """(start, size) of windows of ``window`` frames every ``hop`` covering ``total`` frames; the
    last one ends at ``total``.

    >>> windows(700, 300, 150)
    [(0, 300), (150, 300), (300, 300), (400, 300)]
    >>> windows(120, 300, 150)
    [(0, 120)]
    """
    if total <= window:
        return [(0, total)]
    starts = list(range(0, total - window + 1, hop))
    if starts[-1] + window < total:
        starts.append(total - window)
    return [(s, window) for s in starts]


def utterance_windows(
    data: FeatureSet, index: int, window_seconds: float, hop_fraction: float
) -> list[dict[str, Tensor]]:
    """Utterance ``index`` cut into evaluation windows (every feature aligned in time)."""
    reference = data.reference
    window = round(window_seconds * data.rates[reference])
    hop = max(1, round(window * hop_fraction))
    utterance = data.utterance(index)
    return [
        _cut(utterance, data.rates, reference, start, size)
        for start, size in windows(utterance[reference].shape[1], window, hop)
    ]
