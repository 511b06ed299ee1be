"""MFCC and log-Mel features as batched, device-agnostic ``nn.Module``s.

Both take padded waveforms ``(batch, samples)`` with their lengths and return
``(batch, n, frames)`` with frame lengths. Frames are centred (zero padding, as librosa's
``center=True, pad_mode="constant"``), so a clip gives the same frames alone as inside a
zero-padded batch. Frames past a clip's frame length are padding; :class:`FeatureNormalizer`
zeroes them.

>>> import torch
>>> extract = FeatureExtractor(FeatureConfig())
>>> mfcc, logmel, frames = extract(torch.randn(2, 16000), torch.tensor([16000, 8000]))
>>> tuple(mfcc.shape), tuple(logmel.shape), frames.tolist()
((2, 40, 101), (2, 64, 101), [101, 51])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import scipy.fft
import torch
from torch import Tensor, nn

from emofuse.signal.prosody import N_PROSODY, Prosody
from emofuse.signal.functional import frame_lengths, power_spectrogram

__all__ = [
    "FeatureConfig",
    "LogMel",
    "MFCC",
    "FeatureExtractor",
    "FeatureNormalizer",
    "mel_filterbank",
    "dct_matrix",
    "frame_lengths",
]


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings (defaults: DESIGN.md section 1)."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 64
    f_min: float = 20.0
    f_max: float = 8000.0
    n_mfcc: int = 40
    log_offset: float = 1e-6
    prosody: bool = False  # also energy, pitch and voicing rows (emofuse.signal.prosody)

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "n_mfcc"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"FeatureConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if self.win_length > self.n_fft:
            raise ValueError(
                f"FeatureConfig.win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"FeatureConfig needs 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        if self.n_mfcc > self.n_mels:
            raise ValueError(
                f"FeatureConfig.n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})"
            )
        if self.log_offset <= 0:
            raise ValueError(f"FeatureConfig.log_offset must be positive, got {self.log_offset}")
        if not isinstance(self.prosody, bool):
            raise ValueError(f"FeatureConfig.prosody must be true or false, got {self.prosody!r}")

    @property
    def n_rows(self) -> int:
        """Feature rows per frame: MFCC, then log-Mel, then the prosody rows if enabled."""
        return self.n_mfcc + self.n_mels + (N_PROSODY if self.prosody else 0)

    @property
    def stream_rows(self) -> tuple[slice, slice, slice | None]:
        """Rows of each stream in the stacked features: MFCC, log-Mel, prosody (None if off)."""
        m, n = self.n_mfcc, self.n_mels
        prosody = slice(m + n, m + n + N_PROSODY) if self.prosody else None
        return slice(0, m), slice(m, m + n), prosody

    @classmethod
    def from_dict(cls, values: dict) -> FeatureConfig:
        """Build from a plain dict, rejecting unknown keys."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown feature setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    mel = hz / f_sp
    log_region = hz >= min_log_hz
    mel[log_region] = min_log_mel + np.log(hz[log_region] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    hz = f_sp * mel
    log_region = mel >= min_log_mel
    hz[log_region] = min_log_hz * np.exp(logstep * (mel[log_region] - min_log_mel))
    return hz


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Slaney-normalised triangular mel filters (n_mels, n_fft // 2 + 1).

    The same construction as ``librosa.filters.mel(htk=False, norm="slaney")``; the tests
    check equality with librosa.
    """
    fft_freqs = np.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1)
    mel_points = np.linspace(
        _hz_to_mel(np.array([config.f_min]))[0],
        _hz_to_mel(np.array([config.f_max]))[0],
        config.n_mels + 2,
    )
    hz_points = _mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    return weights.astype(np.float32)


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n_mfcc, n_mels), from ``scipy.fft.dct``."""
    basis = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)
    return basis[:n_mfcc].astype(np.float32)


class LogMel(nn.Module):
    """Log-Mel spectrogram: (batch, samples) -> (batch, n_mels, frames), frame lengths."""

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer(
            "window", torch.hamming_window(config.win_length, periodic=True), persistent=False
        )
        self.register_buffer(
            "filterbank", torch.from_numpy(mel_filterbank(config)), persistent=False
        )

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        power = power_spectrogram(waveforms, c.n_fft, c.hop_length, self.window)  # (B, F, T)
        mel = torch.matmul(self.filterbank, power)  # (B, n_mels, frames)
        return torch.log(mel + c.log_offset), frame_lengths(lengths, c.hop_length)


class MFCC(nn.Module):
    """MFCC (orthonormal DCT-II of the log-Mel): (batch, samples) -> (batch, n_mfcc, frames)."""

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()
        self.logmel = LogMel(config)
        self.register_buffer(
            "dct", torch.from_numpy(dct_matrix(config.n_mfcc, config.n_mels)), persistent=False
        )

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        logmel, frames = self.logmel(waveforms, lengths)
        return torch.matmul(self.dct, logmel), frames


class FeatureExtractor(nn.Module):
    """MFCC and log-Mel from one STFT (and prosody if ``config.prosody``).

    ``forward``: (batch, samples) -> mfcc, logmel, frame lengths. ``rows``: every stream
    stacked, (batch, ``config.n_rows``, frames): MFCC rows, then log-Mel, then prosody.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()
        self.config = config
        self.mfcc = MFCC(config)
        self.prosody = Prosody(config.sample_rate, config.hop_length) if config.prosody else None

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logmel, frames = self.mfcc.logmel(waveforms, lengths)  # (B, n_mels, T)
        mfcc = torch.matmul(self.mfcc.dct, logmel)  # (B, n_mfcc, T)
        return mfcc, logmel, frames

    def rows(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, samples), lengths (B,) -> stacked features (B, n_rows, T), frame lengths (B,)."""
        mfcc, logmel, frames = self(waveforms, lengths)
        streams = [mfcc, logmel]
        if self.prosody is not None:
            streams.append(self.prosody(waveforms, lengths)[0])  # (B, 3, T)
        return torch.cat(streams, dim=1), frames


class FeatureNormalizer(nn.Module):
    """Per-coefficient standardisation with stored statistics; zeroes padded frames.

    The statistics come from a training fold (:meth:`fit`) and are saved in the state dict.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, sums: Tensor, squares: Tensor, count: int) -> None:
        """Set statistics from per-coefficient sums, sums of squares and a frame count."""
        if count <= 0:
            raise ValueError("cannot fit normalisation statistics on zero frames")
        mean = sums.double() / count
        var = (squares.double() / count - mean.square()).clamp_min(1e-8)
        self.mean.copy_(mean.float())
        self.std.copy_(var.sqrt().float())

    def forward(self, features: Tensor, lengths: Tensor) -> Tensor:
        """(B, n, T), frame lengths (B,) -> normalised (B, n, T), zero past each length."""
        mask = torch.arange(features.shape[-1], device=features.device)[None, :] < lengths[:, None]
        normed = (features - self.mean[:, None]) / self.std[:, None]
        return normed * mask[:, None, :].to(normed.dtype)
