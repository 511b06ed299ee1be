"""The centred power spectrogram that every feature stream starts from, and its frame count."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["frame_lengths", "power_spectrogram"]


def power_spectrogram(waveforms: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """|STFT|^2 of (B, samples) -> (B, n_fft // 2 + 1, 1 + samples // hop_length).

    Frames are centred with zero padding (librosa's ``center=True, pad_mode="constant"``), so a
    clip gives the same frames alone as inside a zero-padded batch. ``window`` (at most
    ``n_fft`` long) is centred in each ``n_fft`` frame.
    """
    spec = torch.stft(
        waveforms,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=window.numel(),
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.real.square() + spec.imag.square()


def frame_lengths(lengths: Tensor, hop_length: int) -> Tensor:
    """Number of centred frames for each sample count: ``1 + samples // hop``."""
    return 1 + torch.div(lengths, hop_length, rounding_mode="floor")
