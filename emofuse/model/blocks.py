"""Residual multi-scale (Res2Net-style) convolution blocks, 1D and 2D, and their plain counterparts.

Every block takes ``(x, mask)``: ``x`` is ``(batch, channels, time)`` (1D) or
``(batch, channels, freq, time)`` (2D); ``mask`` is a float tensor of 1 on valid and 0 on padded
time frames, broadcastable to ``x`` (``(batch, 1, time)`` or ``(batch, 1, 1, time)``). Blocks
re-zero the padded frames after every convolution whose output feeds a kernel wider than one frame,
so a frame beyond an utterance's length never leaks (through a conv bias or BatchNorm shift) into
the valid frames of the next layer. Together with zero padding this makes each item's output
independent of how much padding its batch carries.

A multi-scale block (scale ``s``) splits its channels into ``s`` groups of ``channels // s``; group
``i`` is convolved after adding the output of group ``i - 1``, so later groups see growing receptive
fields. The group outputs are concatenated, mixed by a 1x1 convolution, added to the block input and
passed through BatchNorm and ReLU. A plain block keeps the same width and the same residual shape,
with one full convolution instead of the hierarchy (the ``multiscale: false`` ablation).

>>> block = MultiScaleBlock2d(32, scale=4)
>>> x, mask = torch.randn(2, 32, 16, 50), torch.ones(2, 1, 1, 50)
>>> block(x, mask).shape
torch.Size([2, 32, 16, 50])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "MultiScaleBlock1d",
    "MultiScaleBlock2d",
    "PlainBlock1d",
    "PlainBlock2d",
    "make_block",
]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def _check_sizes(channels: int, scale: int, kernel_size: int) -> None:
    if channels <= 0:
        raise ValueError(f"channels must be positive, got {channels}")
    if scale <= 0 or channels % scale:
        raise ValueError(f"channels ({channels}) must be divisible by a positive scale ({scale})")
    if kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")


class _MultiScaleBlock(nn.Module):
    """Res2Net-style residual block over ``dims`` (1 or 2) axes; see the module docstring."""

    def __init__(self, channels: int, *, scale: int, kernel_size: int, dims: int) -> None:
        super().__init__()
        _check_sizes(channels, scale, kernel_size)
        conv, norm = _CONV[dims], _NORM[dims]
        width = channels // scale
        self.scale = scale
        self.width = width
        self.convs = nn.ModuleList(
            conv(width, width, kernel_size, padding=kernel_size // 2, bias=False)
            for _ in range(scale)
        )
        self.norms = nn.ModuleList(norm(width) for _ in range(scale))
        self.mix = conv(channels, channels, 1, bias=False)
        self.norm = norm(channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x``: (B, C, [F,] T), zero on padded frames; returns the same shape, zero there too."""
        groups = torch.split(x, self.width, dim=1)  # s x (B, C/s, [F,] T)
        outs = []
        prev = None
        for xi, conv, norm in zip(groups, self.convs, self.norms, strict=True):
            inp = xi if prev is None else xi + prev  # group i sees group i-1's output
            prev = self.act(norm(conv(inp))) * mask  # (B, C/s, [F,] T), re-zeroed
            outs.append(prev)
        mixed = self.mix(torch.cat(outs, dim=1))  # (B, C, [F,] T)
        return self.act(self.norm(x + mixed)) * mask  # residual, BN, ReLU, re-zeroed


class _PlainBlock(nn.Module):
    """Residual block of the same width without the multi-scale split (the ablation)."""

    def __init__(self, channels: int, *, kernel_size: int, dims: int) -> None:
        super().__init__()
        _check_sizes(channels, 1, kernel_size)
        conv, norm = _CONV[dims], _NORM[dims]
        self.conv = conv(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.conv_norm = norm(channels)
        self.mix = conv(channels, channels, 1, bias=False)
        self.norm = norm(channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x``: (B, C, [F,] T), zero on padded frames; returns the same shape, zero there too."""
        h = self.act(self.conv_norm(self.conv(x))) * mask  # (B, C, [F,] T)
        return self.act(self.norm(x + self.mix(h))) * mask  # residual, BN, ReLU, re-zeroed


class MultiScaleBlock1d(_MultiScaleBlock):
    """Multi-scale residual block on ``(batch, channels, time)``.

    >>> MultiScaleBlock1d(64)(torch.randn(3, 64, 20), torch.ones(3, 1, 20)).shape
    torch.Size([3, 64, 20])
    """

    def __init__(self, channels: int, *, scale: int = 4, kernel_size: int = 3) -> None:
        super().__init__(channels, scale=scale, kernel_size=kernel_size, dims=1)


class MultiScaleBlock2d(_MultiScaleBlock):
    """Multi-scale residual block on ``(batch, channels, freq, time)``."""

    def __init__(self, channels: int, *, scale: int = 4, kernel_size: int = 3) -> None:
        super().__init__(channels, scale=scale, kernel_size=kernel_size, dims=2)


class PlainBlock1d(_PlainBlock):
    """Plain residual block on ``(batch, channels, time)``."""

    def __init__(self, channels: int, *, kernel_size: int = 3) -> None:
        super().__init__(channels, kernel_size=kernel_size, dims=1)


class PlainBlock2d(_PlainBlock):
    """Plain residual block on ``(batch, channels, freq, time)``."""

    def __init__(self, channels: int, *, kernel_size: int = 3) -> None:
        super().__init__(channels, kernel_size=kernel_size, dims=2)


def make_block(
    channels: int, *, dims: int, multiscale: bool, scale: int = 4, kernel_size: int = 3
) -> nn.Module:
    """A multi-scale block (``multiscale=True``) or a plain block of the same width.

    >>> type(make_block(32, dims=2, multiscale=False)).__name__
    'PlainBlock2d'
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    if multiscale:
        cls = MultiScaleBlock1d if dims == 1 else MultiScaleBlock2d
        return cls(channels, scale=scale, kernel_size=kernel_size)
    cls = PlainBlock1d if dims == 1 else PlainBlock2d
    return cls(channels, kernel_size=kernel_size)
