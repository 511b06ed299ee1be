"""Fusion of the MFCC and log-Mel streams: bidirectional cross-attention, and concat/sum ablations.

All fusion modules take two time-aligned sequences ``a`` (MFCC) and ``b`` (log-Mel) of shape
``(batch, time, d_model)``, a ``(batch, time)`` bool mask (True on valid frames) and, when built
with ``n_streams=3``, a third sequence ``c`` (prosody); they return ``(batch, time, out_dim)``
with padded frames set to zero. ``out_dim`` is an attribute.

>>> fuse = CrossAttentionFusion(128, n_heads=4)
>>> a, b = torch.randn(2, 10, 128), torch.randn(2, 10, 128)
>>> mask = torch.ones(2, 10, dtype=torch.bool)
>>> fuse(a, b, mask).shape, fuse.out_dim
(torch.Size([2, 10, 256]), 256)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConcatFusion", "CrossAttentionFusion", "SumFusion", "make_fusion"]


class _CrossAttention(nn.Module):
    """One direction: queries from one stream attend the other; residual + LayerNorm."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, padding: torch.Tensor
    ) -> torch.Tensor:
        """``query``, ``context``: (B, T, D); ``padding``: (B, T) bool, True on padded keys."""
        attended, _ = self.attn(
            query, context, context, key_padding_mask=padding, need_weights=False
        )  # (B, T, D)
        return self.norm(query + self.dropout(attended))  # (B, T, D)


def _valid_streams(n_streams: int) -> int:
    if n_streams not in (2, 3):
        raise ValueError(f"n_streams must be 2 or 3, got {n_streams}")
    return n_streams


def _check_streams(n_streams: int, c: torch.Tensor | None) -> None:
    if (c is not None) != (n_streams == 3):
        raise ValueError(f"built for {n_streams} streams, called with {2 + (c is not None)}")


class CrossAttentionFusion(nn.Module):
    """Bidirectional cross-attention (Li & Zhang 2025), optionally over a third stream.

    MFCC queries attend the log-Mel stream and log-Mel queries attend the MFCC stream, each with
    ``n_heads`` heads, a residual connection and LayerNorm; the results are concatenated. With
    ``n_streams=3`` every stream's queries attend the frames of both other streams (keys
    concatenated in time). Padded key frames are excluded through ``key_padding_mask``.

    Args:
        d_model: width ``D`` of the input streams; must be divisible by ``n_heads``.
        n_heads: attention heads per direction.
        dropout: dropout on the attention weights and on the attended values.
        n_streams: 2 (MFCC, log-Mel) or 3 (and prosody).

    Shape: ``(B, T, D), (B, T, D), (B, T)[, (B, T, D)] -> (B, T, n_streams * D)``.
    """

    def __init__(
        self, d_model: int, *, n_heads: int = 4, dropout: float = 0.0, n_streams: int = 2
    ) -> None:
        super().__init__()
        if d_model <= 0 or n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be positive and divisible by n_heads ({n_heads})"
            )
        self.n_streams = _valid_streams(n_streams)
        self.mfcc_to_logmel = _CrossAttention(d_model, n_heads, dropout)
        self.logmel_to_mfcc = _CrossAttention(d_model, n_heads, dropout)
        if n_streams == 3:
            self.prosody_to_spectral = _CrossAttention(d_model, n_heads, dropout)
        self.out_dim = n_streams * d_model

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_streams(self.n_streams, c)
        streams = [a, b] if c is None else [a, b, c]  # (B, T, D) each
        attend = [self.mfcc_to_logmel, self.logmel_to_mfcc]
        if c is not None:
            attend.append(self.prosody_to_spectral)
        # Keys: the frames of every other stream, concatenated in time, with their padding.
        padding = torch.cat([~mask] * (len(streams) - 1), dim=1)  # (B, (n - 1) T)
        fused = torch.cat(
            [
                attention(query, torch.cat(streams[:i] + streams[i + 1 :], dim=1), padding)
                for i, (query, attention) in enumerate(zip(streams, attend, strict=True))
            ],
            dim=-1,
        )  # (B, T, n_streams * D)
        return fused * mask.unsqueeze(-1)  # (B, T, n_streams * D), padded frames zero


class ConcatFusion(nn.Module):
    """Frame-wise concatenation (ablation). Shape: ``(B, T, D) x n_streams -> (B, T, n D)``."""

    def __init__(self, d_model: int, n_streams: int = 2) -> None:
        super().__init__()
        self.n_streams = _valid_streams(n_streams)
        self.out_dim = n_streams * d_model

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_streams(self.n_streams, c)
        streams = [a, b] if c is None else [a, b, c]
        return torch.cat(streams, dim=-1) * mask.unsqueeze(-1)  # (B, T, n D)


class SumFusion(nn.Module):
    """Frame-wise sum (ablation). Shape: ``(B, T, D) x n_streams -> (B, T, D)``."""

    def __init__(self, d_model: int, n_streams: int = 2) -> None:
        super().__init__()
        self.n_streams = _valid_streams(n_streams)
        self.out_dim = d_model

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_streams(self.n_streams, c)
        total = a + b if c is None else a + b + c
        return total * mask.unsqueeze(-1)  # (B, T, D)


def make_fusion(
    name: str, d_model: int, *, n_heads: int = 4, dropout: float = 0.0, n_streams: int = 2
) -> nn.Module:
    """Build a fusion module by name: ``cross_attention``, ``concat`` or ``sum``.

    >>> make_fusion("sum", 128).out_dim
    128
    >>> make_fusion("concat", 128, n_streams=3).out_dim
    384
    """
    if name == "cross_attention":
        return CrossAttentionFusion(d_model, n_heads=n_heads, dropout=dropout, n_streams=n_streams)
    if name == "concat":
        return ConcatFusion(d_model, n_streams)
    if name == "sum":
        return SumFusion(d_model, n_streams)
    raise ValueError(f"unknown fusion {name!r}; expected 'cross_attention', 'concat' or 'sum'")
