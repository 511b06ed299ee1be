"""Pure feature math in torch and numpy: the centred power spectrogram every feature starts from,
its frame count, the mel filterbank and the DCT basis; and the two tensor helpers the front ends
and the model share: padding masks (:func:`lengths_to_mask`) and :func:`exporting`."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["frame_lengths", "power_spectrogram", "mel_filterbank", "dct_matrix", "lengths_to_mask",
           "exporting"]  # fmt: skip


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


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float
) -> np.ndarray:
    """Slaney-normalised triangular mel filters (n_mels, n_fft // 2 + 1).

    The same construction as ``librosa.filters.mel(htk=False, norm="slaney")``; the tests
    check equality with librosa.
    """
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = np.linspace(
        _hz_to_mel(np.array([f_min]))[0],
        _hz_to_mel(np.array([f_max]))[0],
        n_mels + 2,
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
    """Orthonormal DCT-II basis (n_mfcc, n_mels), as ``scipy.fft.dct(np.eye(n_mels), type=2,
    norm="ortho", axis=0)[:n_mfcc]``, written out (importing scipy.fft costs 0.3 s)."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.sqrt(2.0 / n_mels) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels))
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean mask of valid frames.

    Args:
        lengths: ``(batch,)`` integer valid-frame counts.
        max_len: the padded time length ``T``.

    Returns:
        ``(batch, T)`` bool, True on valid frames.

    >>> lengths_to_mask(torch.tensor([3, 1]), 4)
    tensor([[ True,  True,  True, False],
            [ True, False, False, False]])
    """
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def exporting() -> bool:
    """True while traced or compiled (ONNX export, torch.export, torch.compile)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()
