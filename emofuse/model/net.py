"""The multi-scale, multi-feature cross-attention emotion model (Li & Zhang, 2025) and its config.

Pipeline (``B`` batch, ``T`` frames at 100 per second, ``T' = ceil(T / 4)``, ``D = d_model``)::

    mfcc   (B, n_mfcc, T) -> Conv1d stem -> block -> pool/2 -> block -> pool/2 -> (B, D, T')
    logmel (B, n_mels, T) -> (B, 1, n_mels, T) -> Conv2d stem -> pool/2x2 -> block -> pool/2x2
                          -> block -> flatten freq, Linear -> (B, D, T')
    prosody (B, 3, T), optional -> Conv1d stem -> block -> pool/2 -> block -> pool/2 -> (B, D, T')
    fusion (cross-attention both ways, or concat/sum) -> (B, T', 2D) (3D with prosody)
    BiLSTM (packed by lengths) -> (B, T', 2H) -> masked mean/attention pooling -> (B, 2H)
    dropout -> Linear -> logits (B, n_classes)

Time is padded internally to a multiple of 4; valid lengths after pooling are ``ceil(len / 4)``.
Padding is masked everywhere (re-zeroed after every conv block, attention ``key_padding_mask``,
packed BiLSTM, masked pooling), so in eval mode an utterance gives the same logits alone as in a
padded batch. BatchNorm in train mode still counts padded frames in its batch statistics.

>>> model = EmotionNet(ModelConfig()).eval()
>>> logits = model(torch.randn(2, 40, 300), torch.randn(2, 64, 300), torch.tensor([300, 123]))
>>> logits.shape
torch.Size([2, 4])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emofuse.model.blocks import lengths_to_mask, make_block
from emofuse.model.fusion import make_fusion
from emofuse.signal.prosody import N_PROSODY

__all__ = ["EmotionNet", "ModelConfig"]

FUSIONS = ("cross_attention", "concat", "sum")
BRANCHES = ("both", "mfcc", "logmel")
TEMPORALS = ("bilstm", "none")
POOLINGS = ("mean", "attention")
POOL_FACTOR = 4


@dataclass
class ModelConfig:
    """Hyperparameters of :class:`EmotionNet`; plain values only, so it round-trips YAML/JSON.

    Attributes:
        n_classes: number of output classes.
        n_mfcc: MFCC coefficients per frame (MFCC branch input channels).
        n_mels: log-Mel bands per frame (log-Mel branch input height).
        mfcc_channels: width of the MFCC branch convolutions.
        logmel_channels: width of the log-Mel branch convolutions.
        d_model: width ``D`` of each branch output and of the cross-attention.
        n_heads: attention heads per cross-attention direction.
        scale: multi-scale groups per block (channels must be divisible by it).
        lstm_hidden: BiLSTM hidden size per direction.
        dropout: dropout before the classifier and inside the cross-attention.
        pooling: ``"mean"`` or ``"attention"`` pooling over valid frames.
        multiscale: Res2Net-style blocks (True) or plain residual blocks of the same width.
        fusion: ``"cross_attention"``, ``"concat"`` or ``"sum"`` (used with both branches).
        branches: ``"both"``, ``"mfcc"`` or ``"logmel"``.
        temporal: ``"bilstm"`` or ``"none"`` (pool the fused sequence directly).
        prosody: a third, 1D-CNN stream over the 3 prosody rows (energy, pitch, voicing; see
            :mod:`emofuse.signal.prosody`), fused with the other two by the same fusion module.
        prosody_channels: width of the prosody branch convolutions.

    >>> ModelConfig(fusion="concat").fusion
    'concat'
    >>> ModelConfig(d_model=100, n_heads=3)
    Traceback (most recent call last):
    ...
    ValueError: d_model (100) must be divisible by n_heads (3)
    """

    n_classes: int = 4
    n_mfcc: int = 40
    n_mels: int = 64
    mfcc_channels: int = 128
    logmel_channels: int = 16
    d_model: int = 128
    n_heads: int = 4
    scale: int = 4
    lstm_hidden: int = 128
    dropout: float = 0.2
    pooling: str = "mean"
    multiscale: bool = True
    fusion: str = "cross_attention"
    branches: str = "both"
    temporal: str = "bilstm"
    prosody: bool = False
    prosody_channels: int = 32

    def __post_init__(self) -> None:
        for name in (
            "n_mfcc",
            "n_mels",
            "mfcc_channels",
            "logmel_channels",
            "d_model",
            "n_heads",
            "scale",
            "lstm_hidden",
            "prosody_channels",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.n_classes, int) or isinstance(self.n_classes, bool):
            raise ValueError(f"n_classes must be an integer >= 2, got {self.n_classes!r}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {self.n_classes!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        for name in ("mfcc_channels", "logmel_channels", "prosody_channels"):
            if getattr(self, name) % self.scale:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must be divisible by scale ({self.scale})"
                )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("multiscale", "prosody"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, allowed in (
            ("pooling", POOLINGS),
            ("fusion", FUSIONS),
            ("branches", BRANCHES),
            ("temporal", TEMPORALS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {list(allowed)}")
        if self.prosody and self.branches != "both":
            raise ValueError(
                f"prosody is a third stream fused with both others; it needs branches 'both', "
                f"got {self.branches!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Build from a plain mapping (e.g. parsed YAML); unknown keys raise ``ValueError``.

        >>> ModelConfig.from_dict({"fusion": "sum"}).fusion
        'sum'
        >>> ModelConfig.from_dict({"fusoin": "sum"})
        Traceback (most recent call last):
        ...
        ValueError: unknown ModelConfig key(s): ['fusoin']; known: ...
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown ModelConfig key(s): {unknown}; known: {known}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of all fields (inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)


def _halve(lengths: torch.Tensor) -> torch.Tensor:
    """Valid lengths after a stride-2 pool: ``ceil(len / 2)``."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling of non-negative ``(B, C, F, T)`` with even ``T``; an odd ``F`` rounds up.

    Same result as ``nn.MaxPool2d(2, ceil_mode=True)`` on such inputs, several times faster on CPU
    (and plain slicing for ONNX).

    >>> x = torch.rand(2, 3, 5, 6)
    >>> torch.equal(_max_pool_2x2(x), nn.MaxPool2d(2, ceil_mode=True)(x))
    True
    """
    if x.shape[2] % 2:
        x = F.pad(x, (0, 0, 0, 1))  # zero row: a no-op for the max of non-negative values
    top = torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])  # (B, C, F/2, T/2)
    bottom = torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2])  # (B, C, F/2, T/2)
    return torch.maximum(top, bottom)


class MfccBranch(nn.Module):
    """Conv1d stem, two residual blocks with a x2 time pooling after each, projection to ``D``.

    Shape: ``(B, n_mfcc, T), (B,) -> (B, D, T / 4)``; ``T`` must be a multiple of 4.
    """

    def __init__(
        self, n_mfcc: int, channels: int, d_model: int, *, multiscale: bool, scale: int
    ) -> None:
        super().__init__()
        self.stem = nn.Conv1d(n_mfcc, channels, 3, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm1d(channels)
        self.act = nn.ReLU()
        self.block1 = make_block(channels, dims=1, multiscale=multiscale, scale=scale)
        self.block2 = make_block(channels, dims=1, multiscale=multiscale, scale=scale)
        self.pool = nn.MaxPool1d(2)
        self.proj = nn.Conv1d(channels, d_model, 1) if channels != d_model else nn.Identity()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = x.shape[-1]
        mask = lengths_to_mask(lengths, T).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = self.act(self.stem_norm(self.stem(x))) * mask  # (B, C, T)
        h = self.block1(h, mask)  # (B, C, T)
        h, lengths = self.pool(h), _halve(lengths)  # (B, C, T/2)
        mask = lengths_to_mask(lengths, T // 2).unsqueeze(1).to(x.dtype)  # (B, 1, T/2)
        h = self.block2(h, mask)  # (B, C, T/2)
        h, lengths = self.pool(h), _halve(lengths)  # (B, C, T/4)
        mask = lengths_to_mask(lengths, T // 4).unsqueeze(1).to(x.dtype)  # (B, 1, T/4)
        return self.proj(h) * mask  # (B, D, T/4)


class LogMelBranch(nn.Module):
    """Stride-2 Conv2d stem, residual 2D block, 2x2 pooling, residual 2D block; frequency
    flattened and projected to ``D``. Halving before each block (not after, as in the 1D branch)
    keeps every 2D activation off the full-resolution spectrogram, which would dominate the cost
    (a stride-1 stem made training 2.4x slower).

    Shape: ``(B, n_mels, T), (B,) -> (B, D, T / 4)``; ``T`` must be a multiple of 4.
    """

    def __init__(
        self, n_mels: int, channels: int, d_model: int, *, multiscale: bool, scale: int
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, stride=2, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()
        self.block1 = make_block(channels, dims=2, multiscale=multiscale, scale=scale)
        self.block2 = make_block(channels, dims=2, multiscale=multiscale, scale=scale)
        freq_out = ((n_mels + 1) // 2 + 1) // 2  # ceil(ceil(n_mels / 2) / 2)
        self.proj = nn.Linear(channels * freq_out, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, _, T = x.shape
        h = x.unsqueeze(1)  # (B, 1, F, T), zero past each length
        lengths = _halve(lengths)  # a stride-2 stem: ceil(len / 2) valid frames
        mask = lengths_to_mask(lengths, T // 2)[:, None, None, :].to(x.dtype)  # (B, 1, 1, T/2)
        h = self.act(self.stem_norm(self.stem(h))) * mask  # (B, C, F/2, T/2)
        h = self.block1(h, mask)  # (B, C, F/2, T/2)
        h, lengths = _max_pool_2x2(h), _halve(lengths)  # (B, C, F/4, T/4)
        mask = lengths_to_mask(lengths, T // 4)[:, None, None, :].to(x.dtype)  # (B, 1, 1, T/4)
        h = self.block2(h, mask)  # (B, C, F/4, T/4)
        h = h.permute(0, 3, 1, 2).flatten(2)  # (B, T/4, C * F/4)
        h = self.proj(h) * mask.squeeze(1).transpose(1, 2)  # (B, T/4, D), padded frames zero
        return h.transpose(1, 2)  # (B, D, T/4)


def _exporting() -> bool:
    """True while traced or compiled (ONNX export, torch.export, torch.compile)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each item's first ``lengths[b]`` frames, leaving its padding in place.

    >>> _reverse_within_lengths(torch.arange(4.0).view(1, 4, 1), torch.tensor([3])).flatten()
    tensor([2., 1., 0., 3.])
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    index = lengths.unsqueeze(1) - 1 - steps  # (B, T)
    index = torch.where(index >= 0, index, steps)  # padded frames stay where they are
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, T, H)


class BiLSTM(nn.Module):
    """Bidirectional LSTM over packed sequences. Shape: ``(B, T, I), (B,) -> (B, T, 2H)``.

    Packing does not survive ``torch.export`` (the ONNX exporter), so while tracing or compiling
    the same result is computed without packing: the forward direction runs over the padded
    sequence (padding only follows the valid frames), the backward direction over each item
    reversed within its length. Padded output frames are zero on both paths.
    """

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if _exporting():
            return self.forward_unpacked(x, lengths, mask)
        packed = pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )  # only the valid frames of each item
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, 2H)
        return out

    def forward_unpacked(
        self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Same result as :meth:`forward` without packing (used for export)."""
        lstm = self.lstm
        B, hidden = x.shape[0], lstm.hidden_size
        state = x.new_zeros(1, B, hidden)
        forward_weights = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
        backward_weights = [
            lstm.weight_ih_l0_reverse,
            lstm.weight_hh_l0_reverse,
            lstm.bias_ih_l0_reverse,
            lstm.bias_hh_l0_reverse,
        ]
        # torch.lstm(x, (h0, c0), weights, has_biases, layers, dropout, train, bidir, batch_first)
        fwd = torch.lstm(x, (state, state), forward_weights, True, 1, 0.0, False, False, True)[0]
        x_rev = _reverse_within_lengths(x, lengths)  # (B, T, I)
        bwd = torch.lstm(x_rev, (state, state), backward_weights, True, 1, 0.0, False, False, True)
        bwd = _reverse_within_lengths(bwd[0], lengths)  # (B, T, H)
        out = torch.cat([fwd, bwd], dim=-1)  # (B, T, 2H)
        return out * mask.unsqueeze(-1).to(out.dtype)  # padded frames zero, as after packing


class FrameProjection(nn.Module):
    """The ``temporal: none`` stage: a frame-wise Linear to ``out_dim`` when the width differs.

    Shape: ``(B, T, I), (B,), (B, T) -> (B, T, out_dim)``, padded frames zero.
    """

    def __init__(self, input_size: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_size, out_dim) if input_size != out_dim else nn.Identity()
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.proj(x) * mask.unsqueeze(-1).to(x.dtype)  # (B, T, out_dim)


class MeanPooling(nn.Module):
    """Mean over valid frames. Shape: ``(B, T, H), (B, T) -> (B, H)``."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, H)


class AttentionPooling(nn.Module):
    """Additive attention over valid frames. Shape: ``(B, T, H), (B, T) -> (B, H)``.

    The final score layer has no bias: softmax ignores a constant shift, so it would get no
    gradient.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1, bias=False)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(x).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # padded frames out
        weights = torch.softmax(scores, dim=1)  # (B, T)
        return torch.einsum("bt,bth->bh", weights, x)  # (B, H)


class EmotionNet(nn.Module):
    """Speech emotion classifier over MFCC and log-Mel inputs; see the module docstring.

    Args:
        config: hyperparameters and ablation switches; defaults to ``ModelConfig()``.

    Inputs to :meth:`forward`: ``mfcc`` (B, n_mfcc, T) and ``logmel`` (B, n_mels, T), normalised
    (frames beyond each length are zeroed here anyway), and ``lengths`` (B,) int64 valid frame
    counts in ``[1, T]`` (``None``: all ``T``). A branch that the config leaves out may get
    ``None``. Output: logits (B, n_classes).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else ModelConfig()
        self.config = cfg
        D = cfg.d_model
        self.mfcc_branch = None
        self.logmel_branch = None
        self.prosody_branch = None
        self.fusion = None
        if cfg.branches in ("both", "mfcc"):
            self.mfcc_branch = MfccBranch(
                cfg.n_mfcc, cfg.mfcc_channels, D, multiscale=cfg.multiscale, scale=cfg.scale
            )
        if cfg.branches in ("both", "logmel"):
            self.logmel_branch = LogMelBranch(
                cfg.n_mels, cfg.logmel_channels, D, multiscale=cfg.multiscale, scale=cfg.scale
            )
        if cfg.prosody:
            self.prosody_branch = MfccBranch(
                N_PROSODY, cfg.prosody_channels, D, multiscale=cfg.multiscale, scale=cfg.scale
            )
        stream_dim = D
        if cfg.branches == "both":
            self.fusion = make_fusion(
                cfg.fusion, D, n_heads=cfg.n_heads, dropout=cfg.dropout,
                n_streams=3 if cfg.prosody else 2,
            )  # fmt: skip
            stream_dim = self.fusion.out_dim
        if cfg.temporal == "bilstm":
            self.temporal = BiLSTM(stream_dim, cfg.lstm_hidden)
        else:
            self.temporal = FrameProjection(stream_dim, 2 * cfg.lstm_hidden)
        width = self.temporal.out_dim
        self.pooling = MeanPooling() if cfg.pooling == "mean" else AttentionPooling(width)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(width, cfg.n_classes)

    def forward(
        self,
        mfcc: torch.Tensor | None,
        logmel: torch.Tensor | None,
        lengths: torch.Tensor | None = None,
        prosody: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for ``mfcc`` (B, n_mfcc, T), ``logmel`` (B, n_mels, T) and,
        with ``config.prosody``, ``prosody`` (B, 3, T)."""
        inputs = [x for x in (mfcc, logmel) if x is not None]
        if not inputs:
            raise ValueError("forward needs at least one of mfcc and logmel")
        B, T = inputs[0].shape[0], inputs[0].shape[-1]
        device = inputs[0].device
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=device)
        lengths = lengths.to(device=device, dtype=torch.long)  # (B,)
        if not _exporting():  # data-dependent checks cannot be traced
            self._check_inputs(mfcc, logmel, prosody, lengths, B, T)
        pad = (-T) % POOL_FACTOR
        mask = lengths_to_mask(lengths, T + pad).unsqueeze(1)  # (B, 1, T + pad)
        lengths4 = torch.div(lengths + POOL_FACTOR - 1, POOL_FACTOR, rounding_mode="floor")
        mask4 = lengths_to_mask(lengths4, (T + pad) // POOL_FACTOR)  # (B, T')

        streams = []
        if self.mfcc_branch is not None:
            x = F.pad(mfcc, (0, pad)) * mask  # (B, n_mfcc, T + pad), zero beyond lengths
            streams.append(self.mfcc_branch(x, lengths).transpose(1, 2))  # (B, T', D)
        if self.logmel_branch is not None:
            x = F.pad(logmel, (0, pad)) * mask  # (B, n_mels, T + pad), zero beyond lengths
            streams.append(self.logmel_branch(x, lengths).transpose(1, 2))  # (B, T', D)
        if self.prosody_branch is not None:
            x = F.pad(prosody, (0, pad)) * mask  # (B, 3, T + pad), zero beyond lengths
            streams.append(self.prosody_branch(x, lengths).transpose(1, 2))  # (B, T', D)
        if self.fusion is not None:
            h = self.fusion(*streams[:2], mask4, *streams[2:])  # (B, T', kD), or (B, T', D): sum
        else:
            h = streams[0]  # (B, T', D): single branch, no fusion
        h = self.temporal(h, lengths4, mask4)  # (B, T', 2H)
        pooled = self.pooling(h, mask4)  # (B, 2H)
        return self.classifier(self.dropout(pooled))  # (B, n_classes)

    def _check_inputs(
        self,
        mfcc: torch.Tensor | None,
        logmel: torch.Tensor | None,
        prosody: torch.Tensor | None,
        lengths: torch.Tensor,
        B: int,
        T: int,
    ) -> None:
        cfg = self.config
        for name, x, used, n in (
            ("mfcc", mfcc, self.mfcc_branch is not None, cfg.n_mfcc),
            ("logmel", logmel, self.logmel_branch is not None, cfg.n_mels),
            ("prosody", prosody, self.prosody_branch is not None, N_PROSODY),
        ):
            if not used:
                continue
            if x is None:
                raise ValueError(f"branches={cfg.branches!r} needs a {name} input, got None")
            if x.dim() != 3 or x.shape[0] != B or x.shape[1] != n or x.shape[2] != T:
                raise ValueError(
                    f"{name} must have shape (batch={B}, {n}, time={T}), got {tuple(x.shape)}"
                )
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},), got {tuple(lengths.shape)}")
        if bool((lengths < 1).any()) or bool((lengths > T).any()):
            raise ValueError(f"lengths must lie in [1, {T}], got {lengths.tolist()}")

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those with ``requires_grad``).

        >>> 300_000 <= EmotionNet().num_parameters() <= 2_000_000
        True
        """
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def summary(self) -> str:
        """Human-readable listing: the config, each stage and its layers, parameter counts."""
        settings = ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
        lines = [f"EmotionNet({settings})", f"{'stage / layer':<32}{'type':<24}{'params':>10}"]
        for name, child in self.named_children():
            lines.append(f"{name:<32}{type(child).__name__:<24}{_count(child):>10,}")
            for sub_name, sub in child.named_children():
                n = _count(sub)
                if n:
                    lines.append(f"  {sub_name:<30}{type(sub).__name__:<24}{n:>10,}")
        lines.append(f"{'total':<56}{self.num_parameters():>10,}")
        return "\n".join(lines)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
