"""Fusion of the MFCC and log-Mel streams: bidirectional cross-attention, and concat/sum ablations.

All fusion modules take two time-aligned sequences ``a`` (MFCC) and ``b`` (log-Mel) of shape
``(batch, time, d_model)`` and a ``(batch, time)`` bool mask (True on valid frames), and return
``(batch, time, out_dim)`` with padded frames set to zero. ``out_dim`` is an attribute.

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


class CrossAttentionFusion(nn.Module):
    """Bidirectional cross-attention (Li & Zhang 2025).

    MFCC queries attend the log-Mel stream and log-Mel queries attend the MFCC stream, each with
    ``n_heads`` heads, a residual connection and LayerNorm; the two results are concatenated.
    Padded key frames are excluded through ``key_padding_mask``.

    Args:
        d_model: width ``D`` of both input streams; must be divisible by ``n_heads``.
        n_heads: attention heads per direction.
        dropout: dropout on the attention weights and on the attended values.

    Shape: ``(B, T, D), (B, T, D), (B, T) -> (B, T, 2D)``.
    """

    def __init__(self, d_model: int, *, n_heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model <= 0 or n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be positive and divisible by n_heads ({n_heads})"
            )
        self.mfcc_to_logmel = _CrossAttention(d_model, n_heads, dropout)
        self.logmel_to_mfcc = _CrossAttention(d_model, n_heads, dropout)
        self.out_dim = 2 * d_model

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padding = ~mask  # (B, T) True on padded frames
        a_att = self.mfcc_to_logmel(a, b, padding)  # (B, T, D): MFCC queries, log-Mel keys
        b_att = self.logmel_to_mfcc(b, a, padding)  # (B, T, D): log-Mel queries, MFCC keys
        fused = torch.cat([a_att, b_att], dim=-1)  # (B, T, 2D)
        return fused * mask.unsqueeze(-1)  # (B, T, 2D), padded frames zero


class ConcatFusion(nn.Module):
    """Frame-wise concatenation (ablation). Shape: ``(B, T, D), (B, T, D) -> (B, T, 2D)``."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.out_dim = 2 * d_model

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b], dim=-1) * mask.unsqueeze(-1)  # (B, T, 2D)


class SumFusion(nn.Module):
    """Frame-wise sum (ablation). Shape: ``(B, T, D), (B, T, D) -> (B, T, D)``."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.out_dim = d_model

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (a + b) * mask.unsqueeze(-1)  # (B, T, D)


def make_fusion(name: str, d_model: int, *, n_heads: int = 4, dropout: float = 0.0) -> nn.Module:
    """Build a fusion module by name: ``cross_attention``, ``concat`` or ``sum``.

    >>> make_fusion("sum", 128).out_dim
    128
    """
    if name == "cross_attention":
        return CrossAttentionFusion(d_model, n_heads=n_heads, dropout=dropout)
    if name == "concat":
        return ConcatFusion(d_model)
    if name == "sum":
        return SumFusion(d_model)
    raise ValueError(f"unknown fusion {name!r}; expected 'cross_attention', 'concat' or 'sum'")
