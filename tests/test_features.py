"""Features against librosa, batching, devices and config validation."""

import librosa
import numpy as np
import pytest
import torch

from emofuse.signal.transforms import (
    MFCC,
    FeatureConfig,
    FeatureExtractor,
    FeatureNormalizer,
    LogMel,
    dct_matrix,
    mel_filterbank,
)

CONFIG = FeatureConfig()


def librosa_logmel(wave: np.ndarray, c: FeatureConfig) -> np.ndarray:
    power = librosa.feature.melspectrogram(
        y=wave,
        sr=c.sample_rate,
        n_fft=c.n_fft,
        hop_length=c.hop_length,
        win_length=c.win_length,
        window="hamming",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=c.n_mels,
        fmin=c.f_min,
        fmax=c.f_max,
    )
    return np.log(power + c.log_offset)


@pytest.fixture(scope="module")
def speechlike() -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(int(2.3 * 16000)) / 16000
    voiced = 0.3 * np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * 3 * t)) * t)
    return (voiced + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_filterbank_matches_librosa():
    reference = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=20, fmax=8000)
    np.testing.assert_allclose(mel_filterbank(CONFIG), reference, atol=1e-7)


def test_dct_is_orthonormal():
    basis = dct_matrix(64, 64)
    np.testing.assert_allclose(basis @ basis.T, np.eye(64), atol=1e-5)


def test_logmel_matches_librosa(speechlike: np.ndarray):
    logmel, frames = LogMel(CONFIG)(
        torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size])
    )
    reference = librosa_logmel(speechlike, CONFIG)
    assert logmel.shape == (1, 64, reference.shape[1]) and frames.item() == reference.shape[1]
    np.testing.assert_allclose(logmel[0].numpy(), reference, atol=1e-3)


def test_mfcc_matches_librosa(speechlike: np.ndarray):
    mfcc, _ = MFCC(CONFIG)(torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size]))
    reference = librosa.feature.mfcc(
        S=librosa_logmel(speechlike, CONFIG), n_mfcc=40, dct_type=2, norm="ortho"
    )
    np.testing.assert_allclose(mfcc[0].numpy(), reference, atol=2e-3, rtol=1e-4)


def test_other_settings_match_librosa(speechlike: np.ndarray):
    config = FeatureConfig(
        n_fft=1024, win_length=1024, hop_length=256, n_mels=80, f_min=0, n_mfcc=13
    )
    logmel, _ = LogMel(config)(torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size]))
    np.testing.assert_allclose(logmel[0].numpy(), librosa_logmel(speechlike, config), atol=1e-3)


def test_batch_equals_single(speechlike: np.ndarray):
    extract = FeatureExtractor(CONFIG)
    short = speechlike[:12345]
    batch = torch.zeros(2, speechlike.size)
    batch[0] = torch.from_numpy(speechlike)
    batch[1, : short.size] = torch.from_numpy(short)
    mfcc, logmel, frames = extract(batch, torch.tensor([speechlike.size, short.size]))
    alone_mfcc, alone_logmel, alone_frames = extract(
        torch.from_numpy(short)[None], torch.tensor([short.size])
    )
    n = alone_frames.item()
    assert frames[1].item() == n
    torch.testing.assert_close(logmel[1, :, :n], alone_logmel[0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(mfcc[1, :, :n], alone_mfcc[0], atol=1e-4, rtol=1e-5)


def test_frame_lengths():
    _, _, frames = FeatureExtractor(CONFIG)(torch.zeros(3, 4000), torch.tensor([4000, 160, 1]))
    assert frames.tolist() == [26, 2, 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(speechlike: np.ndarray):
    extract = FeatureExtractor(CONFIG)
    wave, lengths = torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size])
    cpu = extract(wave, lengths)[1]
    gpu = extract.cuda()(wave.cuda(), lengths.cuda())[1].cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-4)


def test_normalizer_standardises_and_masks():
    rng = torch.Generator().manual_seed(0)
    features = 3 + 2 * torch.randn(2, 5, 50, generator=rng)
    norm = FeatureNormalizer(5)
    norm.fit(features.sum(dim=(0, 2)), features.square().sum(dim=(0, 2)), 100)
    out = norm(features, torch.tensor([50, 20]))
    assert out[1, :, 20:].abs().max() == 0
    full = norm(features, torch.tensor([50, 50]))
    torch.testing.assert_close(full.mean(dim=(0, 2)), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(full.std(dim=(0, 2), correction=0), torch.ones(5), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="zero frames"):
        norm.fit(torch.zeros(5), torch.zeros(5), 0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n_mels": 0}, "n_mels must be positive"),
        ({"win_length": 1024}, "win_length"),
        ({"f_max": 9000}, "f_max"),
        ({"n_mfcc": 80}, "n_mfcc"),
        ({"log_offset": 0}, "log_offset"),
    ],
)
def test_bad_config(values: dict, message: str):
    with pytest.raises(ValueError, match=message):
        FeatureConfig(**values)


def test_from_dict_rejects_unknown_keys():
    assert FeatureConfig.from_dict({"n_mels": 80}).n_mels == 80
    with pytest.raises(ValueError, match="n_mel"):
        FeatureConfig.from_dict({"n_mel": 80})
