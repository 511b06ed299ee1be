"""The prosody stream: pitch/energy/voicing extraction, the third model branch, augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emofuse.training.batches import Batch, augment
from emofuse.signal.transforms import FeatureConfig, FeatureExtractor, LogMel
from emofuse.model import EmotionNet, ModelConfig
from emofuse.model.blocks import lengths_to_mask
from emofuse.pipeline.pipeline import EmotionPipeline, load_pipeline, save_pipeline
from emofuse.signal.prosody import N_PROSODY, Prosody
from emofuse.testing import synthetic_voice, tiny_pipeline

SR = 16000


def _harmonic(f0: float, seconds: float = 1.0, amplitude: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    wave = sum(amplitude / k * torch.sin(2 * math.pi * f0 * k * t) for k in range(1, 6))
    return wave.float()


def _prosody(wave: torch.Tensor) -> torch.Tensor:
    rows, frames = Prosody()(wave[None], torch.tensor([wave.numel()]))
    assert frames.item() == rows.shape[-1] == 1 + wave.numel() // 160
    return rows[0]  # (3, T)


@pytest.mark.parametrize("f0", [75.0, 110.0, 165.0, 240.0, 380.0, 480.0])
def test_pitch_of_harmonic_tones(f0):
    energy, pitch, voicing = _prosody(_harmonic(f0))[:, 10:-10]  # away from the edges
    hz = 100 * 2 ** (pitch / 12)
    assert abs(float(hz.median()) / f0 - 1) < 0.02
    assert float(voicing.min()) > 0.9


def test_noise_is_unvoiced_and_silence_is_the_floor():
    noise = 0.1 * torch.randn(SR, generator=torch.Generator().manual_seed(0))
    _, pitch, voicing = _prosody(noise)
    assert float((pitch != 0).float().mean()) < 0.1 and float(voicing.median()) < 0.45
    silence = _prosody(torch.zeros(SR))
    assert torch.isfinite(silence).all()
    assert silence[0].eq(-100.0).all() and silence[1:].eq(0).all()


def test_energy_is_the_level_in_db_and_scales_with_gain():
    t = torch.arange(SR) / SR
    energy = _prosody(0.5 * torch.sin(2 * math.pi * 200 * t))[0, 10:-10]
    torch.testing.assert_close(
        energy, torch.full_like(energy, 10 * math.log10(0.125)), atol=0.02, rtol=0
    )
    voice = torch.from_numpy(synthetic_voice(1.0))
    loud, quiet = _prosody(voice), _prosody(0.1 * voice)
    torch.testing.assert_close(quiet[0], loud[0] - 20, atol=1e-3, rtol=0)
    torch.testing.assert_close(quiet[1:], loud[1:], atol=1e-4, rtol=0)


def test_frames_match_the_log_mel_and_padding_changes_nothing():
    voice = torch.from_numpy(synthetic_voice(0.77))
    n = voice.numel()
    batch = torch.zeros(2, SR)
    batch[0], batch[1, :n] = torch.from_numpy(synthetic_voice(1.0, seed=1)), voice
    lengths = torch.tensor([SR, n])
    rows, frames = Prosody()(batch, lengths)
    _, mel_frames = LogMel()(batch, lengths)
    assert frames.tolist() == mel_frames.tolist()
    alone = _prosody(voice)
    torch.testing.assert_close(rows[1, :, : frames[1]], alone, atol=1e-4, rtol=0)


def test_extractor_rows_stack_mfcc_logmel_prosody():
    config = FeatureConfig(prosody=True)
    assert config.n_rows == 40 + 64 + N_PROSODY and FeatureConfig().n_rows == 104
    wave = torch.from_numpy(synthetic_voice(0.5))[None]
    lengths = torch.tensor([wave.shape[1]])
    extractor = FeatureExtractor(config)
    rows, frames = extractor.rows(wave, lengths)
    mfcc, logmel, _ = extractor(wave, lengths)
    assert rows.shape == (1, config.n_rows, frames.item())
    torch.testing.assert_close(rows[:, :40], mfcc)
    torch.testing.assert_close(rows[:, 40:104], logmel)
    torch.testing.assert_close(rows[:, 104:], Prosody()(wave, lengths)[0])
    with pytest.raises(ValueError, match="prosody must be true or false"):
        FeatureConfig(prosody="yes")


SMALL = dict(mfcc_channels=16, logmel_channels=8, d_model=16, n_heads=2, lstm_hidden=8,
             prosody=True, prosody_channels=8)  # fmt: skip


def _inputs(lengths: list[int]):
    T = max(lengths)
    lengths_t = torch.tensor(lengths)
    mask = lengths_to_mask(lengths_t, T).unsqueeze(1)
    return tuple(torch.randn(len(lengths), n, T) * mask for n in (40, 64, 3)) + (lengths_t,)


@pytest.mark.parametrize("fusion", ["cross_attention", "concat", "sum"])
def test_three_stream_model_is_batch_consistent_and_trains_every_part(fusion):
    torch.manual_seed(0)
    model = EmotionNet(ModelConfig(fusion=fusion, **SMALL)).eval()
    lengths = [37, 58, 13, 6]
    mfcc, logmel, prosody, lengths_t = _inputs(lengths)
    with torch.no_grad():
        batch = model(mfcc, logmel, lengths_t, prosody=prosody)
        for i, n in enumerate(lengths):
            alone = model(
                mfcc[i : i + 1, :, :n], logmel[i : i + 1, :, :n], lengths_t[i : i + 1],
                prosody=prosody[i : i + 1, :, :n],
            )  # fmt: skip
            torch.testing.assert_close(alone, batch[i : i + 1], atol=1e-5, rtol=0)
    model.train()
    model(mfcc, logmel, lengths_t, prosody=prosody).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not unused
    assert any(n.startswith("prosody_branch.") for n, _ in model.named_parameters())
    if fusion == "cross_attention":
        assert model.fusion.out_dim == 3 * 16 and hasattr(model.fusion, "prosody_to_spectral")


def test_the_prosody_input_changes_the_output_and_is_checked():
    torch.manual_seed(0)
    model = EmotionNet(ModelConfig(**SMALL)).eval()
    mfcc, logmel, prosody, lengths = _inputs([40, 40])
    with torch.no_grad():
        a = model(mfcc, logmel, lengths, prosody=prosody)
        b = model(mfcc, logmel, lengths, prosody=prosody + 1.0)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="needs a prosody input"):
        model(mfcc, logmel, lengths)
    with pytest.raises(ValueError, match=r"prosody must have shape \(batch=2, 3, time=40\)"):
        model(mfcc, logmel, lengths, prosody=prosody[:, :2])
    with pytest.raises(ValueError, match="needs branches 'both'"):
        ModelConfig(prosody=True, branches="mfcc")


def test_pipeline_with_prosody_round_trips_and_checks_its_configs(tmp_path):
    pipeline = tiny_pipeline(prosody=True)
    waves = torch.from_numpy(synthetic_voice(1.2))[None]
    lengths = torch.tensor([waves.shape[1]])
    with torch.no_grad():
        logits = pipeline(waves, lengths)
    save_pipeline(pipeline, tmp_path / "m.pt")
    loaded = load_pipeline(tmp_path / "m.pt")
    assert loaded.feature_config.prosody and loaded.prosody_norm is not None
    torch.testing.assert_close(loaded.prosody_norm.mean, pipeline.prosody_norm.mean)
    with torch.no_grad():
        torch.testing.assert_close(loaded(waves, lengths), logits)
    with pytest.raises(ValueError, match="features.prosody is False but model.prosody is True"):
        EmotionPipeline(FeatureConfig(), ModelConfig(prosody=True), ["a"] * 4)
    assert tiny_pipeline().prosody_norm is None  # older two-stream model files stay loadable


def test_normalizers_are_fitted_per_stream():
    pipeline = EmotionPipeline(FeatureConfig(prosody=True), ModelConfig(prosody=True), ["a"] * 4)
    n = FeatureConfig(prosody=True).n_rows
    sums, squares = torch.arange(n, dtype=torch.float64) * 10, torch.full((n,), 1e6)
    pipeline.fit_normalizers(sums, squares, 10)
    np.testing.assert_allclose(pipeline.mfcc_norm.mean.numpy(), np.arange(40), atol=1e-5)
    np.testing.assert_allclose(pipeline.logmel_norm.mean.numpy(), np.arange(40, 104), atol=1e-4)
    np.testing.assert_allclose(pipeline.prosody_norm.mean.numpy(), [104, 105, 106], atol=1e-4)


def test_gain_augmentation_moves_the_energy_row_by_the_gain_in_db():
    x = torch.randn(4, 40 + 64 + 3, 50)
    batch = Batch(x, torch.full((4,), 50), torch.zeros(4, dtype=torch.long))
    out = augment(batch, n_mfcc=40, n_mels=64, n_classes=2,
                  generator=torch.Generator().manual_seed(0), gain_db=6.0)  # fmt: skip
    shift_db = out.features[:, 104] - x[:, 104]  # (B, T): one gain per utterance
    shift_mel = out.features[:, 40:104] - x[:, 40:104]  # natural-log units
    torch.testing.assert_close(shift_db, shift_mel[:, 0] * 10 / math.log(10), atol=1e-4, rtol=0)
    assert shift_db.abs().max() <= 6.0 + 1e-4 and shift_db.abs().max() > 0
    torch.testing.assert_close(out.features[:, 105:], x[:, 105:])  # pitch, voicing untouched
    masked = augment(batch, n_mfcc=40, n_mels=64, n_classes=2, freq_masks=4, freq_mask_bins=30,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    torch.testing.assert_close(masked.features[:, 104:], x[:, 104:])  # no frequency axis there
    assert not torch.equal(masked.features[:, 40:104], x[:, 40:104])


def test_crossval_trains_and_tests_a_prosody_model(tmp_path):
    import fake_corpora

    from emofuse.config import CorpusSpec, DataConfig, ExperimentConfig, TrainConfig
    from emofuse.experiments.crossval import run_crossval

    for i, speaker in enumerate(("03", "08", "10")):
        for j, letter in enumerate("WLEAFTN"):
            stem = f"{speaker}a0{j % 5 + 1}{letter}a"
            fake_corpora.write_audio(
                tmp_path / "emodb" / "wav" / f"{stem}.wav", 0.5, seed=7 * i + j
            )
    config = ExperimentConfig(
        features=FeatureConfig(prosody=True),
        model=ModelConfig(**SMALL),
        train=TrainConfig(
            epochs=1,
            batch_size=8,
            crop_seconds=0.4,
            eval_window_seconds=0.4,
            warmup_epochs=1,
            device="cpu",
            time_mask_frames=5,
        ),  # fmt: skip
        data=DataConfig(corpora=[CorpusSpec("emodb", str(tmp_path / "emodb"))]),
    )
    summary = run_crossval(
        config, tmp_path / "cv", folds=[0], cache_dir=tmp_path / "c", progress=False
    )
    assert len(summary["folds"]) == 1 and 0 <= summary["mean"]["ua"] <= 1
    model = load_pipeline(tmp_path / "cv" / "fold_00" / "model.pt")
    assert model.model_config.prosody and model.prosody_norm.std.gt(0).all()
    # Training-fold statistics of real prosody rows: energy in dB, below 0 and above the floor.
    assert -100 < float(model.prosody_norm.mean[0]) < 0
