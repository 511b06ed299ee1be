"""The prosody feature: pitch/energy/voicing extraction, the third model branch, augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emofuse.config import load_config
from emofuse.features import FeatureFrontEnd, branch_spec, default_features, feature_spec
from emofuse.model import EmotionNet, ModelConfig
from emofuse.pipeline import EmotionPipeline, load_pipeline, save_pipeline
from emofuse.signal.functional import lengths_to_mask
from emofuse.signal.prosody import N_PROSODY, Prosody
from emofuse.signal.transforms import LogMel
from emofuse.testing import synthetic_voice, tiny_pipeline
from emofuse.training.augment import augment
from emofuse.training.batches import Batch

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


def test_front_end_gives_the_three_features_on_one_grid():
    specs = [*default_features(), feature_spec("prosody")]
    assert branch_spec(specs[2]).in_dims == N_PROSODY == 3
    wave = torch.from_numpy(synthetic_voice(0.5))[None]
    lengths = torch.tensor([wave.shape[1]])
    out = FeatureFrontEnd(specs)(wave, lengths)
    assert list(out) == ["mfcc", "logmel", "prosody"]
    assert {n: tuple(x.shape) for n, (x, _) in out.items()} == {
        "mfcc": (1, 40, 51), "logmel": (1, 64, 51), "prosody": (1, 3, 51)}  # fmt: skip
    torch.testing.assert_close(out["prosody"][0], Prosody()(wave, lengths)[0])
    with pytest.raises(ValueError, match="unknown setting"):
        feature_spec("prosody", n_mels=40)


SPECS = [feature_spec("mfcc", channels=16), feature_spec("logmel", channels=8),
         feature_spec("prosody", channels=8)]  # fmt: skip
SMALL = dict(d_model=16, n_heads=2, lstm_hidden=8)
BRANCHES = [branch_spec(s) for s in SPECS]


def _inputs(lengths: list[int]) -> dict:
    T = max(lengths)
    lengths_t = torch.tensor(lengths)
    mask = lengths_to_mask(lengths_t, T).unsqueeze(1)
    return {b.name: (torch.randn(len(lengths), b.in_dims, T) * mask, lengths_t) for b in BRANCHES}


@pytest.mark.parametrize("fusion", ["cross_attention", "concat", "sum"])
def test_three_feature_model_is_batch_consistent_and_trains_every_part(fusion):
    torch.manual_seed(0)
    model = EmotionNet(ModelConfig(fusion=fusion, **SMALL), BRANCHES).eval()
    lengths = [37, 58, 13, 6]
    inputs = _inputs(lengths)
    with torch.no_grad():
        batch = model(inputs)
        for i, n in enumerate(lengths):
            alone = model({k: (x[i : i + 1, :, :n], m[i : i + 1]) for k, (x, m) in inputs.items()})
            torch.testing.assert_close(alone, batch[i : i + 1], atol=1e-5, rtol=0)
    model.train()
    model(inputs).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not unused
    assert any(n.startswith("branches.prosody.") for n, _ in model.named_parameters())
    if fusion == "cross_attention":
        assert model.fusion.out_dim == 3 * 16 and "prosody" in model.fusion.attend


def test_the_prosody_input_changes_the_output_and_is_checked():
    torch.manual_seed(0)
    model = EmotionNet(ModelConfig(**SMALL), BRANCHES).eval()
    inputs = _inputs([40, 40])
    prosody, lengths = inputs["prosody"]
    with torch.no_grad():
        a = model(inputs)
        b = model({**inputs, "prosody": (prosody + 1.0, lengths)})
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"missing input feature\(s\) \['prosody'\]"):
        model({k: v for k, v in inputs.items() if k != "prosody"})
    with pytest.raises(ValueError, match=r"feature 'prosody' must have shape \(batch, 3, time\)"):
        model({**inputs, "prosody": (prosody[:, :2], lengths)})


def test_v1_prosody_switch_needs_both_spectral_features(tmp_path):
    path = tmp_path / "v1.yaml"
    path.write_text("features: {prosody: true}\nmodel: {prosody: true, branches: mfcc}\n")
    with pytest.raises(ValueError, match="needs branches 'both'"):
        load_config(path)
    path.write_text("features: {prosody: false}\nmodel: {prosody: true}\n")
    with pytest.raises(ValueError, match="features.prosody is False but model.prosody is True"):
        load_config(path)
    path.write_text("features: {prosody: true, hop_length: 320}\nmodel: {prosody: true}\n")
    specs = load_config(path).features
    assert [s.name for s in specs] == ["mfcc", "logmel", "prosody"]
    assert {s.settings["hop_length"] for s in specs} == {320}  # one grid for the three


def test_pipeline_with_prosody_round_trips(tmp_path):
    pipeline = tiny_pipeline(prosody=True)
    waves = torch.from_numpy(synthetic_voice(1.2))[None]
    lengths = torch.tensor([waves.shape[1]])
    with torch.no_grad():
        logits = pipeline(waves, lengths)
    save_pipeline(pipeline, tmp_path / "m.pt")
    loaded = load_pipeline(tmp_path / "m.pt")
    assert loaded.names == ("mfcc", "logmel", "prosody")
    torch.testing.assert_close(
        loaded.normalizers["prosody"].mean, pipeline.normalizers["prosody"].mean
    )
    with torch.no_grad():
        torch.testing.assert_close(loaded(waves, lengths), logits)
    assert "prosody" not in tiny_pipeline().normalizers  # two-feature models have no prosody part


def test_normalizers_are_fitted_per_feature():
    pipeline = EmotionPipeline(SPECS, ModelConfig(**SMALL), ["a"] * 4)
    dims = {"mfcc": 40, "logmel": 64, "prosody": 3}
    start = {"mfcc": 0, "logmel": 40, "prosody": 104}
    moments = {
        name: (torch.arange(start[name], start[name] + n, dtype=torch.float64) * 10,
               torch.full((n,), 1e6), 10)
        for name, n in dims.items()
    }  # fmt: skip
    pipeline.fit_normalizers(moments)
    np.testing.assert_allclose(pipeline.normalizers["mfcc"].mean.numpy(), np.arange(40), atol=1e-5)
    np.testing.assert_allclose(
        pipeline.normalizers["logmel"].mean.numpy(), np.arange(40, 104), atol=1e-4
    )
    np.testing.assert_allclose(pipeline.normalizers["prosody"].mean.numpy(), [104, 105, 106],
                               atol=1e-4)  # fmt: skip


def test_gain_augmentation_moves_the_energy_row_by_the_gain_in_db():
    kinds = FeatureFrontEnd(SPECS).kinds
    lengths = torch.full((4,), 50)
    x = {b.name: torch.randn(4, b.in_dims, 50) for b in BRANCHES}
    batch = Batch({n: (v, lengths) for n, v in x.items()}, torch.zeros(4, dtype=torch.long))

    def run(**kwargs):
        out = augment(batch, kinds, reference="mfcc", n_classes=2,
                      generator=torch.Generator().manual_seed(0), **kwargs)  # fmt: skip
        return {n: v for n, (v, _) in out.features.items()}

    out = run(gain_db=6.0)
    shift_db = out["prosody"][:, 0] - x["prosody"][:, 0]  # (B, T): one gain per utterance
    shift_mel = out["logmel"] - x["logmel"]  # natural-log units
    torch.testing.assert_close(shift_db, shift_mel[:, 0] * 10 / math.log(10), atol=1e-4, rtol=0)
    assert shift_db.abs().max() <= 6.0 + 1e-4 and shift_db.abs().max() > 0
    # pitch and voicing are untouched
    torch.testing.assert_close(out["prosody"][:, 1:], x["prosody"][:, 1:])
    masked = run(freq_masks=4, freq_mask_bins=30)
    torch.testing.assert_close(masked["prosody"], x["prosody"])  # no frequency axis there
    torch.testing.assert_close(masked["mfcc"], x["mfcc"])
    assert not torch.equal(masked["logmel"], x["logmel"])


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
        features=SPECS,
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
    assert model.names == ("mfcc", "logmel", "prosody")
    norm = model.normalizers["prosody"]
    assert norm.std.gt(0).all()
    # Training-fold statistics of real prosody rows: energy in dB, below 0 and above the floor.
    assert -100 < float(norm.mean[0]) < 0
