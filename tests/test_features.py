"""Features against librosa, batching, devices and settings validation."""

import librosa
import numpy as np
import pytest
import torch

from emofuse.features import FeatureFrontEnd, default_features, feature_spec
from emofuse.signal.functional import dct_matrix, frame_lengths, mel_filterbank
from emofuse.signal.transforms import (
    MFCC,
    FeatureNormalizer,
    LogMel,
    MfccSettings,
    SpectralSettings,
)

SETTINGS = MfccSettings()


def librosa_logmel(wave: np.ndarray, c: SpectralSettings) -> np.ndarray:
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
    np.testing.assert_allclose(mel_filterbank(16000, 512, 64, 20.0, 8000.0), reference, atol=1e-7)


def test_dct_is_orthonormal():
    basis = dct_matrix(64, 64)
    np.testing.assert_allclose(basis @ basis.T, np.eye(64), atol=1e-5)


def test_dct_equals_scipy():
    import scipy.fft

    reference = scipy.fft.dct(np.eye(64), type=2, norm="ortho", axis=0)[:40]
    np.testing.assert_allclose(dct_matrix(40, 64), reference, atol=1e-6)


def test_logmel_matches_librosa(speechlike: np.ndarray):
    logmel, frames = LogMel(SpectralSettings())(
        torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size])
    )
    reference = librosa_logmel(speechlike, SpectralSettings())
    assert logmel.shape == (1, 64, reference.shape[1]) and frames.item() == reference.shape[1]
    np.testing.assert_allclose(logmel[0].numpy(), reference, atol=1e-3)


def test_mfcc_matches_librosa(speechlike: np.ndarray):
    mfcc, _ = MFCC(SETTINGS)(torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size]))
    reference = librosa.feature.mfcc(
        S=librosa_logmel(speechlike, SETTINGS), n_mfcc=40, dct_type=2, norm="ortho"
    )
    np.testing.assert_allclose(mfcc[0].numpy(), reference, atol=2e-3, rtol=1e-4)


def test_other_settings_match_librosa(speechlike: np.ndarray):
    settings = MfccSettings(
        n_fft=1024, win_length=1024, hop_length=256, n_mels=80, f_min=0, n_mfcc=13
    )
    wave, lengths = torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size])
    logmel, _ = LogMel(settings)(wave, lengths)
    reference = librosa_logmel(speechlike, settings)
    np.testing.assert_allclose(logmel[0].numpy(), reference, atol=1e-3)
    mfcc, _ = MFCC(settings)(wave, lengths)
    expected = librosa.feature.mfcc(S=reference, n_mfcc=13, dct_type=2, norm="ortho")
    np.testing.assert_allclose(mfcc[0].numpy(), expected, atol=2e-3, rtol=1e-4)


def test_memo_shares_the_log_mel_between_mfcc_and_logmel(speechlike: np.ndarray):
    wave, lengths = torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size])
    memo: dict = {}
    logmel, _ = LogMel(SpectralSettings())(wave, lengths, memo)
    assert len(memo) == 1
    mfcc, _ = MFCC(SETTINGS)(wave, lengths, memo)
    assert len(memo) == 1  # the MFCC reused the log-Mel of the same spectral settings
    torch.testing.assert_close(mfcc, MFCC(SETTINGS)(wave, lengths)[0], atol=0, rtol=0)
    MFCC(MfccSettings(n_mels=40))(wave, lengths, memo)
    assert len(memo) == 2  # other spectral settings: another log-Mel


def test_batch_equals_single(speechlike: np.ndarray):
    extract = FeatureFrontEnd(default_features())
    short = speechlike[:12345]
    batch = torch.zeros(2, speechlike.size)
    batch[0] = torch.from_numpy(speechlike)
    batch[1, : short.size] = torch.from_numpy(short)
    together = extract(batch, torch.tensor([speechlike.size, short.size]))
    alone = extract(torch.from_numpy(short)[None], torch.tensor([short.size]))
    assert list(together) == ["mfcc", "logmel"]
    for name in ("mfcc", "logmel"):
        frames, lengths = together[name]
        alone_frames, alone_lengths = alone[name]
        n = alone_lengths.item()
        assert lengths[1].item() == n
        torch.testing.assert_close(frames[1, :, :n], alone_frames[0], atol=1e-4, rtol=1e-5)


def test_frame_lengths():
    assert frame_lengths(torch.tensor([4000, 160, 1]), 160).tolist() == [26, 2, 1]
    out = FeatureFrontEnd(default_features())(torch.zeros(3, 4000), torch.tensor([4000, 160, 1]))
    assert all(lengths.tolist() == [26, 2, 1] for _, lengths in out.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(speechlike: np.ndarray):
    extract = FeatureFrontEnd([*default_features(), feature_spec("prosody")])
    wave, lengths = torch.from_numpy(speechlike)[None], torch.tensor([speechlike.size])
    cpu = extract(wave, lengths)
    gpu = extract.cuda()(wave.cuda(), lengths.cuda())
    for name, (frames, _) in cpu.items():
        torch.testing.assert_close(gpu[name][0].cpu(), frames, atol=1e-3, rtol=1e-4, msg=name)


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
        ({"n_mels": 0}, "n_mels must be a positive integer"),
        ({"hop_length": 16.5}, "hop_length must be a positive integer"),
        ({"win_length": 1024}, "win_length"),
        ({"f_max": 9000}, "f_max"),
        ({"n_mfcc": 80}, "n_mfcc"),
        ({"n_mfcc": 0}, "n_mfcc must be a positive integer"),
        ({"log_offset": 0}, "log_offset"),
    ],
)
def test_bad_settings(values: dict, message: str):
    with pytest.raises(ValueError, match=message):
        MfccSettings(**values)


def test_settings_are_checked_through_the_feature_entry():
    assert feature_spec("logmel", n_mels=80).settings["n_mels"] == 80
    with pytest.raises(ValueError, match="n_mel"):
        feature_spec("logmel", n_mel=80)
    with pytest.raises(ValueError, match="n_mfcc"):
        feature_spec("logmel", n_mfcc=13)  # an MFCC setting is not a log-Mel setting
    with pytest.raises(ValueError, match="win_length"):
        feature_spec("mfcc", win_length=1024)


def test_spectral_drops_the_mfcc_settings():
    assert MfccSettings(n_mels=48, n_mfcc=20).spectral() == SpectralSettings(n_mels=48)
    assert MfccSettings().to_dict()["n_mfcc"] == 40
