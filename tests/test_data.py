"""Tests of emofuse.training.batches: padding, crops, evaluation windows and augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emofuse.training.batches import Batch, FeatureSet, augment, pad_batch, random_crops, windows
from emofuse.signal.transforms import FeatureConfig, FeatureExtractor

N_MFCC, N_MELS = 4, 6


def _set(lengths: list[int], n_feats: int = N_MFCC + N_MELS) -> FeatureSet:
    """Utterance i holds the values i*1000 + frame index, so crops show where they come from."""
    arrays = [
        (1000 * i + np.arange(n, dtype=np.float32))[None].repeat(n_feats, 0)
        for i, n in enumerate(lengths)
    ]
    return FeatureSet.from_arrays(
        arrays, [i % 3 for i in range(len(lengths))], list("abcdefgh")[: len(lengths)]
    )


def test_pad_batch():
    a, b = torch.ones(3, 5), 2 * torch.ones(3, 2)
    out, frames = pad_batch([a, b])
    assert out.shape == (2, 3, 5)
    assert frames.tolist() == [5, 2]
    assert torch.equal(out[0], a)
    assert torch.equal(out[1, :, :2], b)
    assert out[1, :, 2:].abs().sum() == 0


def test_feature_set_checks_lengths_and_moments():
    with pytest.raises(ValueError, match="2 feature arrays, 1 labels"):
        FeatureSet.from_arrays([np.zeros((2, 3), np.float32)] * 2, [0], ["a", "b"])
    data = FeatureSet.from_arrays(
        [np.array([[1.0, 2.0]], np.float32), np.array([[3.0, 4.0, 5.0]], np.float32)],
        [0, 1],
        ["a", "b"],
    )
    sums, squares, count = data.moments()
    assert count == 5
    assert sums.tolist() == [15.0]
    assert squares.tolist() == [55.0]


def test_random_crops_length_and_origin():
    data = _set([300, 120, 50])
    gen = torch.Generator().manual_seed(0)
    batch = random_crops(data, torch.tensor([0, 1, 2]), 100, gen)
    assert batch.features.shape == (3, N_MFCC + N_MELS, 100)
    assert batch.frames.tolist() == [100, 100, 50]
    assert batch.targets.tolist() == [0, 1, 2]
    for i, n in enumerate([300, 120]):
        crop = batch.features[i, 0]
        start = int(crop[0]) - 1000 * i
        assert 0 <= start <= n - 100
        assert torch.equal(crop, 1000 * i + torch.arange(start, start + 100, dtype=torch.float32))
    # A short clip is kept whole and padded with zeros.
    assert torch.equal(batch.features[2, 0, :50], 2000 + torch.arange(50, dtype=torch.float32))
    assert batch.features[2, :, 50:].abs().sum() == 0


def test_random_crops_are_deterministic_per_seed_and_vary():
    data = _set([400] * 4)
    idx = torch.arange(4)

    def crop_starts(seed):
        batch = random_crops(data, idx, 50, torch.Generator().manual_seed(seed))
        return [int(batch.features[i, 0, 0]) - 1000 * i for i in range(4)]

    assert crop_starts(3) == crop_starts(3)
    assert len({tuple(crop_starts(s)) for s in range(5)}) > 1


def test_random_crop_exact_length_has_start_zero():
    data = _set([100])
    batch = random_crops(data, torch.tensor([0]), 100, torch.Generator().manual_seed(0))
    assert int(batch.features[0, 0, 0]) == 0


@pytest.mark.parametrize(
    "total, window, hop", [(700, 300, 150), (301, 300, 150), (1000, 100, 30), (450, 200, 200)]
)
def test_windows_cover_every_frame_and_end_at_t(total, window, hop):
    feats = torch.arange(total, dtype=torch.float32)[None].repeat(2, 1)
    parts = windows(feats, window, hop)
    assert all(p.shape == (2, window) for p in parts)
    covered = torch.zeros(total, dtype=torch.bool)
    for p in parts:
        covered[p[0].long()] = True
        assert torch.equal(p[0], torch.arange(int(p[0, 0]), int(p[0, 0]) + window).float())
    assert covered.all()
    assert int(parts[0][0, 0]) == 0
    assert int(parts[-1][0, -1]) == total - 1
    starts = [int(p[0, 0]) for p in parts]
    assert starts == sorted(set(starts))  # no repeated window


def test_windows_short_clip_is_one_window():
    feats = torch.zeros(3, 120)
    parts = windows(feats, 300, 150)
    assert len(parts) == 1 and parts[0].shape == (3, 120)


def _noise_waves(lengths, seed=0, amplitude=1.0):
    """Loud noise: the claim is exact up to ``log_offset``, which matters only in quiet bins."""
    rng = np.random.default_rng(seed)
    waves = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        waves[i, :n] = torch.from_numpy(amplitude * rng.standard_normal(n).astype(np.float32))
    return waves, torch.tensor(lengths)


def test_gain_equals_scaling_the_waveform():
    """The docstring's claim: +g dB on raw features == features of the waveform x 10^(g/20)."""
    config = FeatureConfig()
    extract = FeatureExtractor(config)
    waves, lengths = _noise_waves([8000, 5600, 8000])
    with torch.no_grad():
        mfcc, logmel, frames = extract(waves, lengths)
    batch = Batch(torch.cat([mfcc, logmel], dim=1), frames, torch.tensor([0, 1, 2]))
    gain_db = 10.0
    seed = 5
    # augment draws the gains first: (U * 2 - 1) * gain_db, U uniform per item.
    gains = (torch.rand(3, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * gain_db
    assert gains.abs().min() > 1  # a real change for every item
    out = augment(
        batch,
        n_mfcc=config.n_mfcc,
        n_classes=3,
        generator=torch.Generator().manual_seed(seed),
        gain_db=gain_db,
    )
    scaled = waves * (10 ** (gains / 20))[:, None]
    with torch.no_grad():
        mfcc_s, logmel_s, _ = extract(scaled, lengths)
    valid = torch.arange(frames.max())[None, :] < frames[:, None]
    for b in range(3):
        n = int(frames[b])
        # log-Mel: every bin moves by g ln(10)/10
        torch.testing.assert_close(
            out.features[b, config.n_mfcc :, :n], logmel_s[b, :, :n], atol=1e-3, rtol=0
        )
        # MFCC c0 moves by sqrt(n_mels) times that; the other coefficients do not move
        torch.testing.assert_close(out.features[b, 0, :n], mfcc_s[b, 0, :n], atol=1e-3, rtol=0)
        torch.testing.assert_close(
            out.features[b, 1 : config.n_mfcc, :n], mfcc_s[b, 1:, :n], atol=1e-3, rtol=0
        )
        shift = float(gains[b]) * math.log(10) / 10
        torch.testing.assert_close(
            out.features[b, config.n_mfcc :, :n] - logmel[b, :, :n],
            torch.full_like(logmel[b, :, :n], shift),
        )
    assert (out.features * ~valid[:, None, :]).abs().sum() == 0


def _batch(lengths, n_feats=N_MFCC + N_MELS, seed=0):
    gen = torch.Generator().manual_seed(seed)
    segments = [torch.randn(n_feats, n, generator=gen) + 3 for n in lengths]
    features, frames = pad_batch(segments)
    return Batch(features, frames, torch.tensor([i % 3 for i in range(len(lengths))]))


def test_masks_keep_padding_zero_and_use_the_mean():
    batch = _batch([40, 25, 10, 33])
    out = augment(
        batch,
        n_mfcc=N_MFCC,
        n_classes=3,
        generator=torch.Generator().manual_seed(1),
        time_masks=3,
        time_mask_frames=8,
        freq_masks=2,
        freq_mask_bins=3,
        gain_db=6.0,
    )
    assert out.features.shape == batch.features.shape
    assert torch.equal(out.frames, batch.frames)
    assert torch.equal(out.targets, batch.targets)
    for b, n in enumerate(batch.frames.tolist()):
        assert out.features[b, :, n:].abs().sum() == 0
    assert not torch.equal(out.features, batch.features)
    # The input is left untouched.
    assert torch.equal(batch.features, _batch([40, 25, 10, 33]).features)


def test_time_mask_replaces_a_span_with_the_utterance_mean():
    batch = _batch([30, 30])
    out = augment(
        batch,
        n_mfcc=N_MFCC,
        n_classes=3,
        generator=torch.Generator().manual_seed(0),
        time_masks=1,
        time_mask_frames=10,
    )
    mean = batch.features.mean(dim=-1, keepdim=True)
    changed = (out.features != batch.features).any(dim=1)  # (B, T)
    for b in range(2):
        cols = changed[b].nonzero().flatten()
        if len(cols):
            assert cols.max() - cols.min() + 1 == len(cols)  # one contiguous span
            torch.testing.assert_close(out.features[b][:, cols], mean[b].expand(-1, len(cols)))


def test_augment_is_deterministic_per_generator():
    batch = _batch([20, 15, 12])
    kwargs = dict(n_mfcc=N_MFCC, n_classes=3, time_masks=2, time_mask_frames=5, freq_masks=1,
                  freq_mask_bins=2, gain_db=3.0, mixup_alpha=0.4)  # fmt: skip
    a = augment(batch, generator=torch.Generator().manual_seed(9), **kwargs)
    b = augment(batch, generator=torch.Generator().manual_seed(9), **kwargs)
    assert torch.equal(a.features, b.features) and torch.equal(a.targets, b.targets)


def test_mixup_soft_targets():
    batch = _batch([20, 15, 12, 20, 9])
    out = augment(
        batch,
        n_mfcc=N_MFCC,
        n_classes=3,
        generator=torch.Generator().manual_seed(2),
        mixup_alpha=0.4,
    )
    assert out.targets.shape == (5, 3)
    torch.testing.assert_close(out.targets.sum(dim=1), torch.ones(5))
    assert (out.targets >= 0).all()
    # The item's own class dominates (lam >= 0.5), so argmax keeps the label where classes differ.
    own = out.targets[torch.arange(5), batch.targets]
    assert (own >= 0.5 - 1e-6).all()
    for b, n in enumerate(batch.frames.tolist()):
        assert out.features[b, :, n:].abs().sum() == 0
