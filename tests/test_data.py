"""Tests of emofuse.training.batches and augment: padding, crops, evaluation windows and
augmentation, on every feature alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emofuse.features import FeatureFrontEnd, default_features, feature_spec
from emofuse.training.augment import augment
from emofuse.training.batches import (
    Batch,
    FeatureSet,
    pad_batch,
    random_crops,
    stack_windows,
    utterance_windows,
    windows,
)

N_MFCC, N_MELS = 4, 6
SPECS = [feature_spec("mfcc", n_mfcc=N_MFCC, n_mels=N_MELS), feature_spec("logmel", n_mels=N_MELS)]
KINDS = FeatureFrontEnd(SPECS).kinds
RATES = {"mfcc": 100.0, "logmel": 100.0}


def _set(lengths: list[int]) -> FeatureSet:
    """Utterance i holds the values i*1000 + frame index (negated in log-Mel), so crops show
    where they come from."""
    arrays = [
        {"mfcc": (1000 * i + np.arange(n, dtype=np.float32))[None].repeat(N_MFCC, 0),
         "logmel": -(1000 * i + np.arange(n, dtype=np.float32))[None].repeat(N_MELS, 0)}
        for i, n in enumerate(lengths)
    ]  # fmt: skip
    return FeatureSet.from_arrays(
        arrays, [i % 3 for i in range(len(lengths))], list("abcdefgh")[: len(lengths)], RATES
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
    one = {"x": np.zeros((2, 3), np.float32)}
    with pytest.raises(ValueError, match="2 feature arrays, 1 labels"):
        FeatureSet.from_arrays([one] * 2, [0], ["a", "b"], {"x": 100.0})
    with pytest.raises(ValueError, match="must name the same"):
        FeatureSet({"x": []}, {"y": 100.0}, torch.zeros(0, dtype=torch.long), [])
    with pytest.raises(ValueError, match="differ in length"):
        FeatureSet({"x": [torch.zeros(1, 2)]}, {"x": 100.0}, torch.zeros(2, dtype=torch.long),
                   ["a", "b"])  # fmt: skip
    data = FeatureSet.from_arrays(
        [{"x": np.array([[1.0, 2.0]], np.float32), "y": np.zeros((2, 1), np.float32)},
         {"x": np.array([[3.0, 4.0, 5.0]], np.float32), "y": np.ones((2, 2), np.float32)}],
        [0, 1],
        ["a", "b"],
        {"x": 100.0, "y": 50.0},
    )  # fmt: skip
    assert len(data) == 2 and data.reference == "x"
    moments = data.moments()
    sums, squares, count = moments["x"]
    assert count == 5 and sums.tolist() == [15.0] and squares.tolist() == [55.0]
    sums, squares, count = moments["y"]
    assert count == 3 and sums.tolist() == [2.0, 2.0] and squares.tolist() == [2.0, 2.0]


def test_reference_is_the_highest_rate_then_the_first():
    def reference(rates):
        arrays = [{n: np.zeros((1, 4), np.float32) for n in rates}]
        return FeatureSet.from_arrays(arrays, [0], ["a"], rates).reference

    assert reference({"a": 100.0, "b": 100.0}) == "a"
    assert reference({"b": 100.0, "a": 100.0}) == "b"
    assert reference({"a": 50.0, "b": 100.0}) == "b"


def test_random_crops_length_and_origin():
    data = _set([300, 120, 50])
    gen = torch.Generator().manual_seed(0)
    batch = random_crops(data, torch.tensor([0, 1, 2]), 1.0, gen)  # 1 s = 100 frames
    mfcc, frames = batch.features["mfcc"]
    logmel, logmel_frames = batch.features["logmel"]
    assert mfcc.shape == (3, N_MFCC, 100) and logmel.shape == (3, N_MELS, 100)
    assert frames.tolist() == logmel_frames.tolist() == [100, 100, 50]
    assert batch.targets.tolist() == [0, 1, 2]
    for i, n in enumerate([300, 120]):
        crop = mfcc[i, 0]
        start = int(crop[0]) - 1000 * i
        assert 0 <= start <= n - 100
        assert torch.equal(crop, 1000 * i + torch.arange(start, start + 100, dtype=torch.float32))
        assert torch.equal(logmel[i, 0], -crop)  # the same frames of both features
    # A short clip is kept whole and padded with zeros.
    assert torch.equal(mfcc[2, 0, :50], 2000 + torch.arange(50, dtype=torch.float32))
    assert mfcc[2, :, 50:].abs().sum() == 0 and logmel[2, :, 50:].abs().sum() == 0


def test_random_crops_are_deterministic_per_seed_and_vary():
    data = _set([400] * 4)
    idx = torch.arange(4)

    def crop_starts(seed):
        batch = random_crops(data, idx, 0.5, torch.Generator().manual_seed(seed))
        return [int(batch.features["mfcc"][0][i, 0, 0]) - 1000 * i for i in range(4)]

    assert crop_starts(3) == crop_starts(3)
    assert len({tuple(crop_starts(s)) for s in range(5)}) > 1


def test_random_crop_exact_length_has_start_zero():
    data = _set([100])
    batch = random_crops(data, torch.tensor([0]), 1.0, torch.Generator().manual_seed(0))
    assert int(batch.features["mfcc"][0][0, 0, 0]) == 0


@pytest.mark.parametrize(
    "total, window, hop", [(700, 300, 150), (301, 300, 150), (1000, 100, 30), (450, 200, 200)]
)
def test_windows_cover_every_frame_and_end_at_t(total, window, hop):
    parts = windows(total, window, hop)
    assert all(size == window for _, size in parts)
    covered = torch.zeros(total, dtype=torch.bool)
    for start, size in parts:
        covered[start : start + size] = True
    assert covered.all()
    assert parts[0][0] == 0
    assert parts[-1][0] + parts[-1][1] == total
    starts = [start for start, _ in parts]
    assert starts == sorted(set(starts))  # no repeated window


def test_windows_short_clip_is_one_window():
    assert windows(120, 300, 150) == [(0, 120)]


def test_utterance_windows_cut_every_feature_alike():
    data = _set([700, 120])
    parts = utterance_windows(data, 0, 3.0, 0.5)
    assert [int(p["mfcc"][0, 0]) for p in parts] == [0, 150, 300, 400]
    for p in parts:
        assert p["mfcc"].shape == (N_MFCC, 300) and p["logmel"].shape == (N_MELS, 300)
        assert torch.equal(p["logmel"][0], -p["mfcc"][0])
    (short,) = utterance_windows(data, 1, 3.0, 0.5)
    assert short["mfcc"].shape == (N_MFCC, 120)
    batch = stack_windows(parts[:2] + [short])
    frames, lengths = batch["mfcc"]
    assert frames.shape == (3, N_MFCC, 300) and lengths.tolist() == [300, 300, 120]
    assert batch["logmel"][1].tolist() == [300, 300, 120]


def _noise_waves(lengths, seed=0, amplitude=1.0):
    """Loud noise: the claim is exact up to ``log_offset``, which matters only in quiet bins."""
    rng = np.random.default_rng(seed)
    waves = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        waves[i, :n] = torch.from_numpy(amplitude * rng.standard_normal(n).astype(np.float32))
    return waves, torch.tensor(lengths)


def test_gain_equals_scaling_the_waveform():
    """The docstring's claim: +g dB on raw features == features of the waveform x 10^(g/20)."""
    specs = [*default_features(), feature_spec("prosody")]
    frontend = FeatureFrontEnd(specs)
    waves, lengths = _noise_waves([8000, 5600, 8000])
    with torch.no_grad():
        features = frontend(waves, lengths)
    batch = Batch(features, torch.tensor([0, 1, 2]))
    gain_db = 10.0
    seed = 5
    # augment draws the gains first: (U * 2 - 1) * gain_db, U uniform per item.
    gains = (torch.rand(3, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * gain_db
    assert gains.abs().min() > 1  # a real change for every item
    out = augment(batch, frontend.kinds, reference="mfcc", n_classes=3,
                  generator=torch.Generator().manual_seed(seed), gain_db=gain_db)  # fmt: skip
    scaled = waves * (10 ** (gains / 20))[:, None]
    with torch.no_grad():
        expected = frontend(scaled, lengths)
    frames = features["mfcc"][1]
    for b in range(3):
        n = int(frames[b])
        for name in ("mfcc", "logmel"):  # MFCC: c0 moves, the other coefficients do not
            torch.testing.assert_close(out.features[name][0][b, :, :n],
                                       expected[name][0][b, :, :n], atol=1e-3, rtol=0)  # fmt: skip
        # the prosody energy row moves by g dB, the pitch and voicing rows do not
        torch.testing.assert_close(out.features["prosody"][0][b, 0, :n],
                                   expected["prosody"][0][b, 0, :n], atol=1e-3, rtol=0)  # fmt: skip
        torch.testing.assert_close(out.features["prosody"][0][b, 1:, :n],
                                   features["prosody"][0][b, 1:, :n])  # fmt: skip
        shift = float(gains[b]) * math.log(10) / 10
        logmel = features["logmel"][0]
        torch.testing.assert_close(
            out.features["logmel"][0][b, :, :n] - logmel[b, :, :n],
            torch.full_like(logmel[b, :, :n], shift),
        )
    valid = torch.arange(frames.max())[None, :] < frames[:, None]
    for name, (x, _) in out.features.items():
        assert (x * ~valid[:, None, :]).abs().sum() == 0, name


def _batch(lengths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    features = {
        name: pad_batch([torch.randn(dims, n, generator=gen) + 3 for n in lengths])
        for name, dims in (("mfcc", N_MFCC), ("logmel", N_MELS))
    }
    return Batch(features, torch.tensor([i % 3 for i in range(len(lengths))]))


def _augment(batch, seed, **kwargs):
    return augment(batch, KINDS, reference="mfcc", n_classes=3,
                   generator=torch.Generator().manual_seed(seed), **kwargs)  # fmt: skip


def test_masks_keep_padding_zero_and_use_the_mean():
    batch = _batch([40, 25, 10, 33])
    out = _augment(batch, 1, time_masks=3, time_mask_frames=8, freq_masks=2, freq_mask_bins=3,
                   gain_db=6.0)  # fmt: skip
    assert torch.equal(out.targets, batch.targets)
    for name, (x, lengths) in out.features.items():
        assert x.shape == batch.features[name][0].shape
        assert torch.equal(lengths, batch.features[name][1])
        for b, n in enumerate(lengths.tolist()):
            assert x[b, :, n:].abs().sum() == 0
        assert not torch.equal(x, batch.features[name][0])
    # The input is left untouched.
    for name, (x, _) in _batch([40, 25, 10, 33]).features.items():
        assert torch.equal(batch.features[name][0], x)


def test_time_mask_replaces_the_same_span_of_every_feature_with_the_utterance_mean():
    batch = _batch([30, 30])
    out = _augment(batch, 0, time_masks=1, time_mask_frames=10)
    spans = {}
    for name, (x, _) in batch.features.items():
        mean = x.mean(dim=-1, keepdim=True)
        changed = (out.features[name][0] != x).any(dim=1)  # (B, T)
        spans[name] = [changed[b].nonzero().flatten().tolist() for b in range(2)]
        for b, cols in enumerate(spans[name]):
            if cols:
                assert cols[-1] - cols[0] + 1 == len(cols)  # one contiguous span
                torch.testing.assert_close(out.features[name][0][b][:, cols],
                                           mean[b].expand(-1, len(cols)))  # fmt: skip
    assert spans["mfcc"] == spans["logmel"] and any(spans["mfcc"])


def test_frequency_masks_only_touch_the_log_mel():
    batch = _batch([30, 30])
    out = _augment(batch, 0, freq_masks=3, freq_mask_bins=4)
    assert torch.equal(out.features["mfcc"][0], batch.features["mfcc"][0])
    assert not torch.equal(out.features["logmel"][0], batch.features["logmel"][0])


def test_augment_is_deterministic_per_generator():
    batch = _batch([20, 15, 12])
    kwargs = dict(time_masks=2, time_mask_frames=5, freq_masks=1, freq_mask_bins=2, gain_db=3.0,
                  mixup_alpha=0.4)  # fmt: skip
    a, b = _augment(batch, 9, **kwargs), _augment(batch, 9, **kwargs)
    assert torch.equal(a.targets, b.targets)
    for name in a.features:
        assert torch.equal(a.features[name][0], b.features[name][0])


def test_mixup_soft_targets():
    batch = _batch([20, 15, 12, 20, 9])
    out = _augment(batch, 2, mixup_alpha=0.4)
    assert out.targets.shape == (5, 3)
    torch.testing.assert_close(out.targets.sum(dim=1), torch.ones(5))
    assert (out.targets >= 0).all()
    # The item's own class dominates (lam >= 0.5), so argmax keeps the label where classes differ.
    own = out.targets[torch.arange(5), batch.targets]
    assert (own >= 0.5 - 1e-6).all()
    for x, lengths in out.features.values():
        for b, n in enumerate(lengths.tolist()):
            assert x[b, :, n:].abs().sum() == 0
