"""Log-Mel and MFCC front ends and the per-row normaliser, as batched, device-agnostic
``nn.Module``\\ s over the pure functions of :mod:`emofuse.signal.functional`.

Front ends take padded waveforms ``(batch, samples)`` with their lengths and return
``(batch, rows, frames)`` with frame lengths. Frames are centred (zero padding, as librosa's
``center=True, pad_mode="constant"``), so a clip gives the same frames alone as inside a
zero-padded batch. Frames past a clip's frame length are padding; :class:`FeatureNormalizer`
zeroes them. A ``memo`` dict passed to several front ends in one call shares their work: MFCC
reuses the log-Mel of the same spectral settings.

>>> import torch
>>> mfcc, frames = MFCC(MfccSettings())(torch.randn(2, 16000), torch.tensor([16000, 8000]))
>>> tuple(mfcc.shape), frames.tolist()
((2, 40, 101), [101, 51])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from emofuse.signal.functional import dct_matrix, frame_lengths, mel_filterbank, power_spectrogram

__all__ = ["SpectralSettings", "MfccSettings", "LogMel", "MFCC", "FeatureNormalizer"]


@dataclass(frozen=True)
class SpectralSettings:
    """Log-Mel settings (defaults: docs/design.md §4.1)."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 64
    f_min: float = 20.0
    f_max: float = 8000.0
    log_offset: float = 1e-6

    def __post_init__(self) -> None:
        where = type(self).__name__
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{where}.{name} must be a positive integer, got {value!r}")
        if self.win_length > self.n_fft:
            raise ValueError(
                f"{where}.win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"{where} needs 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        if self.log_offset <= 0:
            raise ValueError(f"{where}.log_offset must be positive, got {self.log_offset}")

    def spectral(self) -> SpectralSettings:
        """Only the log-Mel settings (drops what a subclass adds)."""
        return SpectralSettings(**{f.name: getattr(self, f.name) for f in fields(SpectralSettings)})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MfccSettings(SpectralSettings):
    """MFCC settings: the log-Mel settings plus the number of coefficients kept."""

    n_mfcc: int = 40

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.n_mfcc, int) or isinstance(self.n_mfcc, bool) or self.n_mfcc <= 0:
            raise ValueError(f"MfccSettings.n_mfcc must be a positive integer, got {self.n_mfcc!r}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(
                f"MfccSettings.n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})"
            )


class LogMel(nn.Module):
    """Log-Mel spectrogram: (batch, samples) -> (batch, n_mels, frames), frame lengths."""

    def __init__(self, settings: SpectralSettings = SpectralSettings()) -> None:
        super().__init__()
        self.settings = settings.spectral()
        s = self.settings
        self.register_buffer(
            "window", torch.hamming_window(s.win_length, periodic=True), persistent=False
        )
        filterbank = mel_filterbank(s.sample_rate, s.n_fft, s.n_mels, s.f_min, s.f_max)
        self.register_buffer("filterbank", torch.from_numpy(filterbank), persistent=False)

    def forward(
        self, waveforms: Tensor, lengths: Tensor, memo: dict | None = None
    ) -> tuple[Tensor, Tensor]:
        key = ("logmel", self.settings)
        if memo is not None and key in memo:
            return memo[key]
        s = self.settings
        power = power_spectrogram(waveforms, s.n_fft, s.hop_length, self.window)  # (B, F, T)
        mel = torch.matmul(self.filterbank, power)  # (B, n_mels, frames)
        result = torch.log(mel + s.log_offset), frame_lengths(lengths, s.hop_length)
        if memo is not None:
            memo[key] = result
        return result


class MFCC(nn.Module):
    """MFCC (orthonormal DCT-II of the log-Mel): (batch, samples) -> (batch, n_mfcc, frames)."""

    def __init__(self, settings: MfccSettings = MfccSettings()) -> None:
        super().__init__()
        self.settings = settings
        self.logmel = LogMel(settings)
        self.register_buffer(
            "dct", torch.from_numpy(dct_matrix(settings.n_mfcc, settings.n_mels)), persistent=False
        )

    def forward(
        self, waveforms: Tensor, lengths: Tensor, memo: dict | None = None
    ) -> tuple[Tensor, Tensor]:
        logmel, frames = self.logmel(waveforms, lengths, memo)  # (B, n_mels, T)
        return torch.matmul(self.dct, logmel), frames  # (B, n_mfcc, T)


class FeatureNormalizer(nn.Module):
    """Per-row standardisation with stored statistics; zeroes padded frames.

    The statistics come from a training fold (:meth:`fit`) and are saved in the state dict.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, sums: Tensor, squares: Tensor, count: int) -> None:
        """Set statistics from per-row sums, sums of squares and a frame count."""
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
