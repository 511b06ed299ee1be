"""Fusion of N time-aligned features: cross-attention (the paper's module), concat and sum.

Every fusion module takes a list of ``n_features`` sequences ``(batch, time, d_model)`` (one per
feature, in the order of the feature names it was built with) and a ``(batch, time)`` bool mask
(True on valid frames), and returns ``(batch, time, out_dim)`` with padded frames set to zero.
``out_dim`` is an attribute.

>>> fuse = CrossAttentionFusion(128, ("mfcc", "logmel"), n_heads=4)
>>> a, b = torch.randn(2, 10, 128), torch.randn(2, 10, 128)
>>> mask = torch.ones(2, 10, dtype=torch.bool)
>>> fuse([a, b], mask).shape, fuse.out_dim
(torch.Size([2, 10, 256]), 256)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConcatFusion", "CrossAttentionFusion", "SumFusion", "make_fusion", "FUSIONS"]

FUSIONS = ("cross_attention", "concat", "sum")


class _CrossAttention(nn.Module):
    """One direction: queries from one feature attend the others; residual + LayerNorm."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, padding: torch.Tensor
    ) -> torch.Tensor:
        """``query``: (B, T, D); ``context``: (B, T_k, D); ``padding``: (B, T_k) bool, True on
        padded keys."""
        attended, _ = self.attn(
            query, context, context, key_padding_mask=padding, need_weights=False
        )  # (B, T, D)
        return self.norm(query + self.dropout(attended))  # (B, T, D)


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"fusion needs at least 2 distinct feature names, got {list(names)}")
    return names


class _Fusion(nn.Module):
    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = _check_names(names)

    def _check(self, features: Sequence[torch.Tensor]) -> None:
        if len(features) != len(self.names):
            raise ValueError(
                f"built for {len(self.names)} features {list(self.names)}, called with "
                f"{len(features)}"
            )


class CrossAttentionFusion(_Fusion):
    """Cross-attention over N features (Li & Zhang 2025 for N = 2).

    Each feature's queries attend the frames of every other feature (their keys concatenated in
    time), with ``n_heads`` heads, a residual connection and LayerNorm; the N results are
    concatenated. With two features this is exactly the paper's bidirectional module: MFCC queries
    attend log-Mel, log-Mel queries attend MFCC. Padded key frames are excluded through
    ``key_padding_mask``.

    Args:
        d_model: width ``D`` of the input features; must be divisible by ``n_heads``.
        names: the features, in input order (one attention direction each, ``attend.<name>``).
        n_heads: attention heads per direction.
        dropout: dropout on the attention weights and on the attended values.

    Shape: ``[(B, T, D)] * N, (B, T) -> (B, T, N * D)``.
    """

    def __init__(
        self, d_model: int, names: Sequence[str], *, n_heads: int = 4, dropout: float = 0.0
    ) -> None:
        super().__init__(names)
        if d_model <= 0 or n_heads <= 0 or d_model % n_heads:
            raise ValueError(
                f"d_model ({d_model}) must be positive and divisible by n_heads ({n_heads})"
            )
        self.attend = nn.ModuleDict(
            {name: _CrossAttention(d_model, n_heads, dropout) for name in self.names}
        )
        self.out_dim = len(self.names) * d_model

    def forward(self, features: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        self._check(features)
        features = list(features)  # (B, T, D) each
        # Keys: the frames of every other feature, concatenated in time, with their padding.
        padding = torch.cat([~mask] * (len(features) - 1), dim=1)  # (B, (N - 1) T)
        fused = torch.cat(
            [
                attention(query, torch.cat(features[:i] + features[i + 1 :], dim=1), padding)
                for i, (query, attention) in enumerate(
                    zip(features, self.attend.values(), strict=True)
                )
            ],
            dim=-1,
        )  # (B, T, N * D)
        return fused * mask.unsqueeze(-1)  # (B, T, N * D), padded frames zero


class ConcatFusion(_Fusion):
    """Frame-wise concatenation (ablation). Shape: ``[(B, T, D)] * N -> (B, T, N D)``."""

    def __init__(self, d_model: int, names: Sequence[str]) -> None:
        super().__init__(names)
        self.out_dim = len(self.names) * d_model

    def forward(self, features: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        self._check(features)
        return torch.cat(list(features), dim=-1) * mask.unsqueeze(-1)  # (B, T, N D)


class SumFusion(_Fusion):
    """Frame-wise sum (ablation). Shape: ``[(B, T, D)] * N -> (B, T, D)``."""

    def __init__(self, d_model: int, names: Sequence[str]) -> None:
        super().__init__(names)
        self.out_dim = d_model

    def forward(self, features: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        self._check(features)
        total = features[0]
        for feature in features[1:]:
            total = total + feature
        return total * mask.unsqueeze(-1)  # (B, T, D)


def make_fusion(
    name: str, d_model: int, names: Sequence[str], *, n_heads: int = 4, dropout: float = 0.0
) -> nn.Module:
    """Build a fusion module by name: ``cross_attention``, ``concat`` or ``sum``.

    >>> make_fusion("sum", 128, ("a", "b")).out_dim
    128
    >>> make_fusion("concat", 128, ("a", "b", "c")).out_dim
    384
    """
    if name == "cross_attention":
        return CrossAttentionFusion(d_model, names, n_heads=n_heads, dropout=dropout)
    if name == "concat":
        return ConcatFusion(d_model, names)
    if name == "sum":
        return SumFusion(d_model, names)
    raise ValueError(f"unknown fusion {name!r}; expected one of {list(FUSIONS)}")
