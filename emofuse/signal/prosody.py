"""Frame-wise prosody in torch: loudness, pitch and voicing, on the MFCC/log-Mel frame grid.

``Prosody`` maps padded waveforms ``(batch, samples)`` to ``(batch, 3, frames)``, with the same
centred frames (``1 + samples // hop``) as :class:`emofuse.signal.transforms.LogMel`, so the
``prosody`` feature (:mod:`emofuse.features`) lies on the MFCC and log-Mel frame grid:

- row 0, **energy**: mean power of a 40 ms Hann-windowed frame in dB re full scale (a sine of
  amplitude 1 is -3 dB; digital silence -100 dB). Not normalised per utterance, so the
  loudness level, an arousal cue, survives.
- row 1, **pitch**: F0 in semitones re 100 Hz, from the normalised autocorrelation peak in
  60-500 Hz (Boersma 1993: the frame's autocorrelation divided by the window's, with a small
  octave cost against subharmonics); 0 on unvoiced or silent frames.
- row 2, **voicing**: that autocorrelation peak, clipped to [0, 1] (about 1 for a periodic
  frame, near 0 for noise).

The autocorrelation is the cosine transform of the frame's power spectrum, written as one
matrix product, so the module runs on any device and exports to ONNX with the rest of the
pipeline.

>>> prosody = Prosody()
>>> t = torch.arange(16000) / 16000
>>> rows, frames = prosody(0.5 * torch.sin(2 * torch.pi * 200 * t)[None], torch.tensor([16000]))
>>> tuple(rows.shape), frames.tolist()
((1, 3, 101), [101])
>>> round(float(2 ** (rows[0, 1, 50] / 12) * 100))  # Hz
200
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from emofuse.signal.functional import frame_lengths, power_spectrogram

__all__ = ["Prosody", "N_PROSODY"]

N_PROSODY = 3
WINDOW_SECONDS = 0.04  # two periods of the lowest pitch searched
F0_MIN, F0_MAX = 60.0, 500.0
VOICING_THRESHOLD = 0.45  # Praat's default voicing threshold
SILENCE_DB = -60.0
OCTAVE_COST = 0.02  # per octave of lag, against subharmonic (octave-down) errors
FLOOR_DB = -100.0


class Prosody(nn.Module):
    """Energy, pitch and voicing per frame: (B, samples), lengths -> (B, 3, frames), lengths."""

    def __init__(self, sample_rate: int = 16000, hop_length: int = 160) -> None:
        super().__init__()
        sr = sample_rate
        self.hop_length = hop_length
        self.win_length = round(WINDOW_SECONDS * sr)
        min_lag, max_lag = math.floor(sr / F0_MAX), math.ceil(sr / F0_MIN)
        # No circular wrap-around: the FFT holds the frame plus the largest lag.
        self.n_fft = 2 ** math.ceil(math.log2(self.win_length + max_lag))
        window = torch.hann_window(self.win_length, periodic=False, dtype=torch.float64)
        lags = torch.arange(min_lag, max_lag + 1, dtype=torch.float64)
        all_lags = torch.cat([torch.zeros(1, dtype=torch.float64), lags])  # lag 0 first
        # r[k] = sum_f c_f P[f] cos(2 pi f k / n_fft) / n_fft: the inverse real FFT of the power
        # spectrum P at the needed lags only (c_f = 2 except at DC and Nyquist).
        freqs = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)
        weights = torch.full_like(freqs, 2.0)
        weights[0] = weights[-1] = 1.0
        cosines = torch.cos(2 * math.pi * all_lags[:, None] * freqs[None, :] / self.n_fft)
        window_acf = torch.stack(
            [(window[: self.win_length - int(k)] * window[int(k) :]).sum() for k in all_lags]
        )  # (1 + L,)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer(
            "acf_matrix", (weights * cosines / self.n_fft).float(), persistent=False
        )  # (1 + L, n_fft/2 + 1)
        self.register_buffer(
            "window_acf", (window_acf / window_acf[0]).float(), persistent=False
        )  # (1 + L,), 1 at lag 0
        self.register_buffer(
            "octave_cost", (OCTAVE_COST * torch.log2(lags / min_lag)).float(), persistent=False
        )  # (L,)
        self.register_buffer(
            "semitones", (12 * torch.log2(sr / lags / 100.0)).float(), persistent=False
        )  # (L,): pitch of each lag, semitones re 100 Hz
        self.window_power = float(window.square().sum())

    def forward(
        self, waveforms: Tensor, lengths: Tensor, memo: dict | None = None
    ) -> tuple[Tensor, Tensor]:
        """``memo`` is accepted for the feature front end's uniform call and not used."""
        power = power_spectrogram(waveforms, self.n_fft, self.hop_length, self.window)  # (B, F, T)
        acf = torch.matmul(self.acf_matrix, power)  # (B, 1 + L, T)
        energy = acf[:, 0]  # (B, T): windowed frame energy
        floor = 10 ** (FLOOR_DB / 10)
        energy_db = 10 * torch.log10((energy / self.window_power).clamp_min(floor))  # (B, T)
        tiny = 1e-10
        normalised = acf[:, 1:] / (energy[:, None] + tiny) / self.window_acf[None, 1:, None]
        score = normalised - self.octave_cost[None, :, None]  # (B, L, T)
        best = score.argmax(dim=1)  # (B, T)
        peak = normalised.gather(1, best[:, None]).squeeze(1).clamp(0.0, 1.0)  # (B, T)
        sounding = energy_db > SILENCE_DB  # (B, T)
        voiced = (peak >= VOICING_THRESHOLD) & sounding
        voicing = torch.where(sounding, peak, torch.zeros_like(peak))
        pitch = torch.where(voiced, self.semitones[best], torch.zeros_like(peak))
        rows = torch.stack([energy_db, pitch, voicing], dim=1)  # (B, 3, T)
        return rows, frame_lengths(lengths, self.hop_length)
