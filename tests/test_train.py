"""Tests of emofuse.training.train: outputs of ``fit``, determinism, resuming, and that the
model learns."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import emofuse.training.train
from emofuse.config import ExperimentConfig, TrainConfig
from emofuse.features import FeatureFrontEnd, default_features, feature_spec, frame_rates
from emofuse.model import ModelConfig
from emofuse.pipeline import load_pipeline
from emofuse.training.batches import FeatureSet
from emofuse.training.evaluation import evaluate, predict_posteriors
from emofuse.training.train import BEST_MODEL, CHECKPOINT, fit

N_MFCC, N_MELS = 8, 16
LABELS = ["neutral", "happy", "sad"]
FEATURES = [feature_spec("mfcc", n_mfcc=N_MFCC, n_mels=N_MELS, channels=16),
           feature_spec("logmel", n_mels=N_MELS, channels=8)]  # fmt: skip
DIMS = {"mfcc": N_MFCC, "logmel": N_MELS}
TINY = ModelConfig(d_model=16, n_heads=2, lstm_hidden=16, scale=4)


def _feature_set(n: int, seed: int, offset: float = 0.0) -> FeatureSet:
    """Random raw features whose level depends on the class, 40-90 frames each."""
    rng = np.random.default_rng(seed)
    labels = [i % len(LABELS) for i in range(n)]
    arrays = []
    for y in labels:
        frames = int(rng.integers(40, 90))
        arrays.append({
            name: (rng.standard_normal((dims, frames)) + 2.0 * y + offset).astype(np.float32)
            for name, dims in DIMS.items()
        })  # fmt: skip
    return FeatureSet.from_arrays(
        arrays, labels, [f"u{seed}_{i}" for i in range(n)], frame_rates(FEATURES)
    )


def _config(**train) -> ExperimentConfig:
    settings = dict(epochs=3, batch_size=6, crop_seconds=0.4, eval_window_seconds=0.4,
                    warmup_epochs=1, device="cpu", seed=0, time_mask_frames=5,
                    freq_mask_bins=3)  # fmt: skip
    settings.update(train)
    return ExperimentConfig(features=FEATURES, model=TINY, train=TrainConfig(**settings))


@pytest.fixture(scope="module")
def data():
    return _feature_set(14, seed=1), _feature_set(6, seed=2), _feature_set(6, seed=3)


def _plain(history):
    """History without wall-clock times."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _assert_same_weights(a: dict, b: dict, atol: float = 0.0):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


def test_fit_writes_files_and_fits_normaliser_on_train_only(tmp_path, data):
    train, _, test = data
    val = _feature_set(6, seed=2, offset=100.0)  # far-off validation data must not matter
    result = fit(train, val, LABELS, _config(epochs=2), tmp_path, progress=False)
    assert (tmp_path / BEST_MODEL).is_file()
    assert (tmp_path / CHECKPOINT).is_file()
    assert not list(tmp_path.glob("*.tmp"))
    assert [h["epoch"] for h in result.history] == [0, 1]
    for h in result.history:
        assert np.isfinite(h["train_loss"]) and 0 <= h["val_ua"] <= 1 and 0 <= h["val_wa"] <= 1
    assert result.best_epoch in (0, 1)
    assert result.best_val_ua == max(h["val_ua"] for h in result.history)
    assert result.pipeline.labels == tuple(LABELS)
    assert result.pipeline.model_config.n_classes == 3
    assert not result.pipeline.training

    p = result.pipeline
    assert p.windows.window_seconds == 0.4 and p.windows.hop_fraction == 0.5
    for name in DIMS:
        frames = torch.cat(train.features[name], dim=1).double()  # (dims, all frames)
        mean, std = frames.mean(dim=1), frames.std(dim=1, unbiased=False)
        torch.testing.assert_close(p.normalizers[name].mean, mean.float())
        torch.testing.assert_close(p.normalizers[name].std, std.float())

    # model.pt is the best pipeline, normalisation statistics included.
    saved = load_pipeline(tmp_path / BEST_MODEL)
    _assert_same_weights(saved.state_dict(), p.state_dict())
    assert saved.extra == {"epoch": result.best_epoch, "val_ua": result.best_val_ua,
                           "normalised_per": "global"}  # fmt: skip
    assert saved.windows == p.windows
    np.testing.assert_array_equal(predict_posteriors(saved, test), predict_posteriors(p, test))
    np.testing.assert_allclose(  # windows batched differently: the same posteriors
        predict_posteriors(p, test, batch_size=2), predict_posteriors(p, test), atol=1e-5
    )


def test_same_seed_same_result(tmp_path, data):
    train, val, test = data
    config = _config(time_masks=1, freq_masks=1, mixup_alpha=0.3)  # every random draw in use
    a = fit(train, val, LABELS, config, tmp_path / "a", progress=False)
    b = fit(train, val, LABELS, config, tmp_path / "b", progress=False)
    assert _plain(a.history) == _plain(b.history)
    assert a.best_epoch == b.best_epoch
    _assert_same_weights(a.pipeline.state_dict(), b.pipeline.state_dict())
    np.testing.assert_array_equal(
        evaluate(a.pipeline, test)["posteriors"],
        evaluate(b.pipeline, test)["posteriors"],
    )
    other = fit(train, val, LABELS, _config(seed=1, epochs=1), tmp_path / "c", progress=False)
    assert other.history[0]["train_loss"] != a.history[0]["train_loss"]


class _Interrupt:
    """Stands in for ``evaluate``; raises KeyboardInterrupt on call number ``at`` (1-based)."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)


def test_resume_after_interrupt_equals_uninterrupted(tmp_path, data, monkeypatch):
    train, val, _ = data
    config = _config(epochs=4, time_masks=1, mixup_alpha=0.2)
    full = fit(train, val, LABELS, config, tmp_path / "full", progress=False)

    out = tmp_path / "resumed"
    monkeypatch.setattr(emofuse.training.train, "evaluate", _Interrupt(at=3))  # dies in epoch 2
    with pytest.raises(KeyboardInterrupt):
        fit(train, val, LABELS, config, out, progress=False)
    monkeypatch.undo()
    state = torch.load(out / CHECKPOINT, weights_only=False)
    assert state["epoch"] == 1 and len(state["history"]) == 2
    (out / f"{CHECKPOINT}.tmp").write_bytes(b"half a checkpoint")  # a save killed midway

    calls = []
    original = emofuse.training.train.train_one_epoch
    monkeypatch.setattr(
        emofuse.training.train,
        "train_one_epoch",
        lambda *a, **k: calls.append(1) or original(*a, **k),
    )
    resumed = fit(train, val, LABELS, config, out, resume=True, progress=False)
    assert len(calls) == 2  # epochs 2 and 3 only
    assert _plain(resumed.history) == _plain(full.history)
    assert resumed.best_epoch == full.best_epoch
    assert resumed.best_val_ua == full.best_val_ua
    _assert_same_weights(resumed.pipeline.state_dict(), full.pipeline.state_dict(), atol=1e-6)
    final = torch.load(out / CHECKPOINT, weights_only=False)["pipeline"]
    reference = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=False)["pipeline"]
    _assert_same_weights(final, reference, atol=1e-6)
    _assert_same_weights(
        load_pipeline(out / BEST_MODEL).state_dict(),
        load_pipeline(tmp_path / "full" / BEST_MODEL).state_dict(),
        atol=1e-6,
    )

    # Resuming a finished run trains nothing and returns the same best pipeline.
    calls.clear()
    again = fit(train, val, LABELS, config, out, resume=True, progress=False)
    assert calls == []
    assert again.best_epoch == full.best_epoch
    _assert_same_weights(again.pipeline.state_dict(), full.pipeline.state_dict(), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_on_cuda(tmp_path, data, monkeypatch):
    """The checkpoint's RNG states are CPU tensors even when training runs on the GPU."""
    train, val, _ = data
    config = _config(epochs=2, device="cuda")
    monkeypatch.setattr(emofuse.training.train, "evaluate", _Interrupt(at=2))
    with pytest.raises(KeyboardInterrupt):
        fit(train, val, LABELS, config, tmp_path, progress=False)
    monkeypatch.undo()
    result = fit(train, val, LABELS, config, tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in result.history] == [0, 1]


def test_resume_without_checkpoint_starts_fresh(tmp_path, data):
    train, val, _ = data
    (tmp_path / f"{CHECKPOINT}.tmp").write_bytes(b"junk")  # only a stray temporary file
    a = fit(train, val, LABELS, _config(epochs=1), tmp_path, resume=True, progress=False)
    b = fit(train, val, LABELS, _config(epochs=1), tmp_path / "b", progress=False)
    assert _plain(a.history) == _plain(b.history)


# --- Learning: the default model separates four synthetic sound classes --------------------

SR = 16000
CLASSES = ("neutral", "happy", "sad", "angry")  # four names for the four synthetic classes


def _synth(cls: int, rng: np.random.Generator) -> np.ndarray:
    """0: 200 Hz tone; 1: 800 Hz tone; 2: 500 Hz tone with 8 Hz amplitude modulation;
    3: upward chirp 300 -> 1500 Hz. Random length, phase, gain and a little noise."""
    n = int(rng.uniform(0.8, 1.5) * SR)
    t = np.arange(n) / SR
    phase = rng.uniform(0, 2 * np.pi)
    if cls == 0:
        wave = np.sin(2 * np.pi * 200 * t + phase)
    elif cls == 1:
        wave = np.sin(2 * np.pi * 800 * t + phase)
    elif cls == 2:
        am = 0.5 + 0.5 * np.sin(2 * np.pi * 8 * t + rng.uniform(0, 2 * np.pi))
        wave = am * np.sin(2 * np.pi * 500 * t + phase)
    else:
        f0, f1 = 300.0, 1500.0
        wave = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])) + phase)
    wave = rng.uniform(0.05, 0.5) * wave + 0.005 * rng.standard_normal(n)
    return wave.astype(np.float32)


def _synthetic_set(per_class: int, seed: int, frontend: FeatureFrontEnd) -> FeatureSet:
    rng = np.random.default_rng(seed)
    labels = [c for _ in range(per_class) for c in range(4)]
    arrays = []
    for c in labels:
        wave = torch.from_numpy(_synth(c, rng))
        with torch.no_grad():
            features = frontend(wave[None], torch.tensor([wave.numel()]))
        arrays.append({name: frames[0].numpy() for name, (frames, _) in features.items()})
    ids = [f"s{seed}_{i}" for i in range(len(labels))]
    return FeatureSet.from_arrays(arrays, labels, ids, frame_rates(frontend.specs))


def test_default_model_learns_separable_classes(tmp_path):
    frontend = FeatureFrontEnd(default_features())
    train = _synthetic_set(12, seed=10, frontend=frontend)
    val = _synthetic_set(4, seed=11, frontend=frontend)
    test = _synthetic_set(10, seed=12, frontend=frontend)
    config = ExperimentConfig(
        features=default_features(),
        model=ModelConfig(n_classes=4),  # the default model
        train=TrainConfig(
            epochs=6,
            batch_size=16,
            lr=2e-3,
            warmup_epochs=1,
            crop_seconds=0.8,
            eval_window_seconds=1.0,
            time_masks=0,
            freq_masks=0,
            gain_db=0.0,
            seed=0,
            device="cpu",
        ),  # fmt: skip
    )
    began = time.perf_counter()
    result = fit(train, val, list(CLASSES), config, tmp_path, progress=False)
    seconds = time.perf_counter() - began
    metrics = evaluate(result.pipeline, test)
    print(f"held-out accuracy {metrics['wa']:.3f}, UA {metrics['ua']:.3f}, fit {seconds:.1f} s")
    assert metrics["wa"] >= 0.95, result.history
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_progress_in_a_log_is_one_plain_line_per_epoch(tmp_path, data, capsys):
    train, val, _ = data
    fit(train, val, LABELS, _config(epochs=2), tmp_path, progress=True)
    lines = capsys.readouterr().err.splitlines()  # stderr is not a terminal here
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "validation UA" in lines[0] and "\r" not in "".join(lines)
